"""The Redis broker with doorbell wake-ups, on a real Redis."""

from __future__ import annotations

import threading
import time
import uuid

import dramatiq
import pytest
import redis as redis_lib

from tasks.doorbell import MAX_BLOCK_SECONDS, MAX_TOKENS, DoorbellRedisBroker

REDIS_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def broker():
    redis_lib.Redis.from_url(REDIS_URL).flushdb()
    broker = DoorbellRedisBroker(url=REDIS_URL, namespace=f"test-{uuid.uuid4().hex[:6]}")
    yield broker
    broker.close()


def test_idle_consumer_wakes_when_a_message_is_enqueued_not_at_its_timeout(broker):
    actor = dramatiq.Actor(lambda: None, broker=broker, actor_name="noop", queue_name="q",
                           priority=0, options={})
    # an idle consumer blocks up to MAX_BLOCK_SECONDS (4 s) before looking again
    consumer = broker.consume("q", timeout=int(MAX_BLOCK_SECONDS * 1000))
    assert next(consumer) is None  # nothing queued: fetch finds nothing, and it returns
    got = []

    def consume():
        start = time.monotonic()
        while (message := next(consumer)) is None and time.monotonic() - start < 15:
            pass
        got.append((message, time.monotonic() - start))

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.5)  # the consumer is now blocked on the doorbell
    sent = time.monotonic()
    actor.send()
    thread.join(15)
    message, _ = got[0]
    assert message is not None and message.actor_name == "noop"
    # woken by the enqueue, not at the end of its 4 s block (3.5 s after the send)
    assert time.monotonic() - sent < 1.0
    consumer.ack(message)


def test_doorbell_keeps_a_bounded_number_of_tokens(broker):
    actor = dramatiq.Actor(lambda: None, broker=broker, actor_name="noop", queue_name="q",
                           priority=0, options={})
    for _ in range(MAX_TOKENS + 20):
        actor.send()
    assert broker.client.llen(broker.doorbell("q")) == MAX_TOKENS


def test_worker_processes_every_message_on_the_doorbell_broker(broker):
    done = []
    lock = threading.Lock()

    def record(i):
        with lock:
            done.append(i)

    actor = dramatiq.Actor(record, broker=broker, actor_name="record", queue_name="q",
                           priority=0, options={})
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=1000)
    worker.start()
    try:
        for i in range(200):
            actor.send(i)
        deadline = time.monotonic() + 20
        while len(done) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(done) == list(range(200))
    finally:
        worker.stop()
