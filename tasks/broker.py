"""The Dramatiq broker named by ``DISPATCH_BROKER``, and whether it answers."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from engine.errors import Unavailable
from engine.observability.health import describe, redact_url

from .observability import JobObservability


def make_broker(url: str) -> dramatiq.Broker:
    """``stub://`` (in-process), ``redis://…`` (doorbell-woken Redis) or ``amqp://…``;
    each with :class:`~tasks.observability.JobObservability` (job metrics, log context)."""
    if url.startswith("stub:"):
        broker = StubBroker()
        broker.emit_after("process_boot")
    elif url.startswith(("redis:", "rediss:", "unix:")):
        from .doorbell import DoorbellRedisBroker

        broker = DoorbellRedisBroker(url=url)
    elif url.startswith(("amqp:", "amqps:")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url)
    else:
        raise ValueError(f"unknown broker URL {url!r}: use stub://, redis://… or amqp://… "
                         "(DISPATCH_BROKER)")
    broker.add_middleware(JobObservability())
    return broker


def observability(broker: dramatiq.Broker) -> JobObservability | None:
    for middleware in broker.middleware:
        if isinstance(middleware, JobObservability):
            return middleware
    return None


def check_broker(broker: dramatiq.Broker, url: str) -> str:
    """Where jobs go, if the broker answers now; Unavailable naming it otherwise."""
    where = f"broker {redact_url(url)}"
    if isinstance(broker, StubBroker):
        return "in-process broker"
    try:
        client = getattr(broker, "client", None)
        if client is not None:  # Redis
            client.ping()
        else:  # RabbitMQ: a channel on a (re)opened connection
            broker.connection.channel().close()
    except Exception as exc:  # noqa: BLE001 - whatever the client raises means the same
        raise Unavailable(f"{where}: {describe(exc)}") from exc
    return where
