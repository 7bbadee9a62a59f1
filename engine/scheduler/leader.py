"""Periodic work done by one leader at a time, elected through a store lock."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from ..store import Store

log = logging.getLogger("dispatch.leader")


def lead(store: Store, name: str, every: float, tick: Callable[[], object],
         stop: threading.Event, ttl: float | None = None) -> None:
    """Run ``tick`` every ``every`` seconds while holding the lock ``name``, until ``stop``.

    Standbys wait on the lock; if the leader dies its lease expires after ``ttl``
    (default three periods) and a standby takes over. A failing tick is logged and
    retried on the next period; it never ends the loop.
    """
    ttl = ttl or max(3 * every, 2.0)
    lock = store.lock(name, ttl)
    while not stop.is_set():
        try:
            if not lock.acquire(timeout=every):
                continue
        except Exception:
            log.warning("leader.lock_failed name=%s", name, exc_info=True)
            stop.wait(every)
            continue
        log.info("leader.elected name=%s", name)
        try:
            while not stop.is_set():
                try:
                    tick()
                except Exception:
                    log.exception("leader.tick_failed name=%s", name)
                if stop.wait(every):
                    break
                lock.refresh()
        except Exception:
            log.warning("leader.lost name=%s", name, exc_info=True)
        finally:
            try:
                lock.release()
            except Exception:
                pass


def start_thread(store: Store, name: str, every: float, tick: Callable[[], object]
                 ) -> tuple[threading.Thread, threading.Event]:
    """:func:`lead` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=lead, args=(store, name, every, tick, stop),
                              name=f"leader-{name}", daemon=True)
    thread.start()
    return thread, stop
