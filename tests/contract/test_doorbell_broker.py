"""The Redis broker with doorbell wake-ups, on a real Redis."""

from __future__ import annotations

import threading
import time
import uuid

import dramatiq
import pytest
import redis as redis_lib

from tasks import doorbell
from tasks.doorbell import MAX_TOKENS, DoorbellRedisBroker

REDIS_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def broker():
    redis_lib.Redis.from_url(REDIS_URL).flushdb()
    broker = DoorbellRedisBroker(url=REDIS_URL, namespace=f"test-{uuid.uuid4().hex[:6]}")
    yield broker
    broker.close()


def test_idle_consumer_wakes_when_a_message_is_enqueued_not_at_its_timeout(broker,
                                                                          monkeypatch):
    actor = dramatiq.Actor(lambda: None, broker=broker, actor_name="noop", queue_name="q",
                           priority=0, options={})
    # an idle consumer blocks up to MAX_BLOCK_SECONDS before looking again: made an hour
    # here, so that only the doorbell can wake it within the test
    monkeypatch.setattr(doorbell, "MAX_BLOCK_SECONDS", 3600.0)
    consumer = broker.consume("q", timeout=3600 * 1000)
    got = []
    blocking = threading.Event()

    def consume():
        blocking.set()
        message = None
        while message is None:  # a wake-up returns None; the next call fetches
            message = next(consumer)
        got.append(message)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    blocking.wait(10)
    time.sleep(0.2)  # let it reach the doorbell (sent before, the message is simply found)
    actor.send()
    thread.join(60)
    assert not thread.is_alive(), "the consumer slept on: the enqueue did not ring"
    (message,) = got
    assert message is not None and message.actor_name == "noop"
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
