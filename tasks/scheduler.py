"""The scheduler process (``python -m tasks.scheduler``): one leader at a time runs the
reconciler every ``DISPATCH_RECONCILE_SECONDS``; one leader at a time (another lock) runs the
event scheduler (cron ticks, custom event drivers) every ``DISPATCH_CRON_SECONDS``."""

from __future__ import annotations

import logging
import signal
import threading

from engine.scheduler import event_scheduler
from engine.scheduler.leader import lead
from engine.settings import Settings

from .actors import assemble
from .broker import make_broker


def main() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env()
    system = assemble(settings, make_broker(settings.broker_url))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    system.reconciler.follow()
    # cron ticks and custom event drivers: their own leader lock, in threads beside this
    threads, stop_events = event_scheduler.start(system)
    lead(system.store, "reconciler", settings.reconcile_seconds,
         system.reconciler.reconcile_once, stop)
    stop_events.set()
    for thread in threads:
        thread.join(timeout=10)
    system.close()


if __name__ == "__main__":
    main()
