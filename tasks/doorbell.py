"""A Redis broker whose idle consumers wake the moment a message arrives.

Dramatiq's Redis consumer polls an empty queue with an exponential backoff up to the
worker timeout, so an idle worker notices a new message up to a second late. Here
every enqueue also pushes a token onto a per-queue "doorbell" list, and an idle
consumer blocks on that list (``BLPOP``) instead of sleeping: it wakes at once when a
message is enqueued, and still re-checks the queue every worker timeout.
"""

from __future__ import annotations

import time

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed

#: tokens kept per doorbell; more would only wake consumers that find nothing
MAX_TOKENS = 64
#: the longest an idle consumer blocks at once: below redis-py's default 5 s socket
#: timeout, which would otherwise cut a longer BLPOP short with an error
MAX_BLOCK_SECONDS = 4.0


class DoorbellRedisBroker(RedisBroker):
    """:class:`RedisBroker` with push-style wake-ups for idle consumers."""

    def doorbell(self, queue_name: str) -> str:
        """The Redis key of ``queue_name``'s doorbell list."""
        return f"{self.namespace}:doorbell:{queue_name}"

    @property
    def consumer_class(self):
        return _DoorbellConsumer

    def enqueue(self, message, *, delay=None):
        message = super().enqueue(message, delay=delay)
        if delay is None:
            bell = self.doorbell(message.queue_name)
            self.client.pipeline(transaction=False).rpush(bell, 1).ltrim(
                bell, -MAX_TOKENS, -1).execute()
        return message


class _DoorbellConsumer(_RedisConsumer):
    def __next__(self):
        try:
            if not self.message_cache and self.outstanding_message_count < self.prefetch:
                self.message_cache = self.broker.do_fetch(
                    self.queue_name, self.prefetch - self.outstanding_message_count)
            if self.message_cache:
                return super().__next__()  # pops from the cache, never sleeps
            if self.outstanding_message_count >= self.prefetch:
                time.sleep(0.005)  # every worker thread is busy: nothing to wait on
                return None
            self.broker.client.blpop([self.broker.doorbell(self.queue_name)],
                                     timeout=min(self.timeout / 1000, MAX_BLOCK_SECONDS))
            return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None
