"""A no-op actor for the raw Dramatiq baseline: ``dramatiq bench.noop`` on the broker
``DISPATCH_BROKER`` names, run with the same processes and threads as the Procfile's
worker."""

import os

import dramatiq

from tasks.broker import make_broker

QUEUE = "bench"

broker = make_broker(os.environ.get("DISPATCH_BROKER", "stub://"))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, actor_name="bench_noop", max_retries=0)
def noop(i: int) -> None:
    """Does nothing: what is measured is the broker and Dramatiq around it."""
