"""The event scheduler: on one leader at a time (store lock ``cron``, separate from the
reconciler's), every ``cron_seconds`` emit due cron ticks and keep custom event drivers'
programs running. Runs in the Procfile ``scheduler`` process and in ``dispatch up``."""

from __future__ import annotations

import logging
import threading

from .leader import lead

log = logging.getLogger("dispatch.event_scheduler")

LOCK = "cron"


def lease_seconds(every: float) -> float:
    """The leader lock's lease for a period of ``every`` (as :func:`engine.scheduler.leader.lead`)."""
    return max(3 * every, 2.0)


def pass_once(system) -> None:
    """One leader pass: cron ticks first (they are time-bound), then driver programs."""
    try:
        system.cron.tick()
    finally:
        system.driver_supervisor.reconcile()


def start(system) -> tuple[list[threading.Thread], threading.Event]:
    """The leader loop and the programs' watchdog in daemon threads; set the returned
    event to stop both (which also stops every driver program)."""
    every = system.settings.cron_seconds
    stop = threading.Event()
    leader = threading.Thread(target=lead, name="leader-cron", daemon=True,
                              args=(system.store, LOCK, every, lambda: pass_once(system), stop))
    watchdog = threading.Thread(target=system.driver_supervisor.watchdog, name="driver-watchdog",
                                args=(lease_seconds(every), stop), daemon=True)
    leader.start()
    watchdog.start()
    return [leader, watchdog], stop
