"""The scheduler process (``python -m tasks.scheduler``): one leader at a time runs the
reconciler every ``DISPATCH_RECONCILE_SECONDS``; one leader at a time (another lock) runs the
event scheduler (cron ticks, custom event drivers) every ``DISPATCH_CRON_SECONDS``.

Until its engine is assembled (see :class:`tasks.process.Process`) it leads nothing and
says why on ``/readyz`` (``DISPATCH_HEALTH_PORT``)."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading

from engine.scheduler.runner import SchedulerThreads

from .process import Process

#: a stop slower than this writes every thread's stack to the log (stderr)
STOP_REPORT_SECONDS = 15


def main() -> None:
    process = Process("scheduler")
    process.serve_health()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if process.startup is None:  # bad configuration: stay up, unready, until stopped
        stop.wait()
        return
    while not process.startup.done.wait(0.5):
        if stop.is_set():
            process.close()
            return
    scheduler = SchedulerThreads(process.system, follow=True).start()
    stop.wait()
    # a stop that takes longer than this leaves every thread's stack in the log
    faulthandler.dump_traceback_later(STOP_REPORT_SECONDS)
    scheduler.stop()
    scheduler.join()
    process.close()
    faulthandler.cancel_dump_traceback_later()


def end() -> None:
    """End the process once :func:`main` has closed what it opened, without the
    interpreter's finalization: gRPC's stream threads are daemons, and a finalizing
    interpreter that stopped one while it held a call's lock waits for that lock forever
    (seen once: a scheduler stopped by SIGTERM hung in gRPC's ``_Rendezvous.__del__``)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
    end()
