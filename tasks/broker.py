"""The Dramatiq broker named by ``DISPATCH_BROKER``."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker


def make_broker(url: str) -> dramatiq.Broker:
    """``stub://`` (in-process), ``redis://…`` (doorbell-woken Redis) or ``amqp://…``."""
    if url.startswith("stub:"):
        broker = StubBroker()
        broker.emit_after("process_boot")
        return broker
    if url.startswith(("redis:", "rediss:", "unix:")):
        from .doorbell import DoorbellRedisBroker

        return DoorbellRedisBroker(url=url)
    if url.startswith(("amqp:", "amqps:")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    raise ValueError(f"unknown broker URL {url!r}: use stub://, redis://… or amqp://…")
