"""The scheduler process (``python -m tasks.scheduler``): one leader at a time runs the
reconciler every ``DISPATCH_RECONCILE_SECONDS``; one leader at a time (another lock) runs the
event scheduler (cron ticks, custom event drivers) every ``DISPATCH_CRON_SECONDS``."""

from __future__ import annotations

import logging
import signal
import threading

from engine.scheduler.runner import SchedulerThreads
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
    scheduler = SchedulerThreads(system, follow=True).start()
    stop.wait()
    scheduler.stop()
    scheduler.join()
    system.close()


if __name__ == "__main__":
    main()
