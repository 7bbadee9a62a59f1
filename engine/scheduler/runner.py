"""What the scheduler process runs, started the same way by ``python -m tasks.scheduler``
and by ``dispatch up``: the reconciler on one leader lock, the event scheduler (cron ticks,
custom event drivers' programs) on another, each in daemon threads."""

from __future__ import annotations

import threading

from . import event_scheduler
from .leader import lead

RECONCILER_LOCK = "reconciler"


class SchedulerThreads:
    """The scheduler's loops over ``system`` (an :class:`engine.system.Dispatch`).

    :param follow: keep the reconciler's watch-fed index of transitional entities (on
        etcd, a pass then lists only the runs in transit, from their status keys); an
        embedded SQLite store filters statuses in SQL instead, and a watch would cost its
        one process a read on every write.
    """

    def __init__(self, system, follow: bool):
        self.system, self.follow = system, follow
        self._stop = threading.Event()
        self._stop_events: threading.Event | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> "SchedulerThreads":
        if self.follow:
            self.system.reconciler.follow()
        reconciler = threading.Thread(
            target=lead, name=f"leader-{RECONCILER_LOCK}", daemon=True,
            args=(self.system.store, RECONCILER_LOCK, self.system.settings.reconcile_seconds,
                  self.system.reconciler.reconcile_once, self._stop))
        reconciler.start()
        events, self._stop_events = event_scheduler.start(self.system)
        self._threads = [reconciler, *events]
        return self

    def stop(self) -> None:
        """Tell every loop to stop (the driver programs stop with theirs); idempotent."""
        self._stop.set()
        if self._stop_events is not None:
            self._stop_events.set()

    def join(self, timeout: float = 10) -> None:
        """Wait for the loops to end (each at most ``timeout`` seconds)."""
        for thread in self._threads:
            thread.join(timeout=timeout)
