"""Wait for entities to settle, fed by one store watch per process (no polling)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from . import entities as E
from .store import Store

log = logging.getLogger("dispatch.waiter")


class SettleWaiter:
    """Blocks callers until the entity at a key reaches ``READY`` or ``ERROR``.

    One background thread follows ``store.watch(prefix)`` and wakes the waiters of the
    keys it sees settle. A waiter registers before it reads the entity, so a change
    between the read and the wait is never missed. If the watch breaks it is restarted
    from the last revision seen; as a safety net a waiter also re-reads every
    ``recheck_seconds``.
    """

    def __init__(self, store: Store, prefix: str, recheck_seconds: float = 2.0):
        self.store, self.prefix, self.recheck_seconds = store, prefix, recheck_seconds
        self._waiters: dict[str, list[threading.Event]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._watch = None
        self._next_revision = store.revision() + 1
        self._thread = threading.Thread(target=self._follow, name="settle-waiter", daemon=True)
        self._thread.start()

    def wait(self, key: str, read: Callable[[], E.Entity], timeout: float) -> E.Entity:
        """The entity once settled, or as it stands when ``timeout`` seconds have passed."""
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(key, []).append(event)
        try:
            deadline = time.monotonic() + timeout
            while True:
                entity = read()
                remaining = deadline - time.monotonic()
                if entity.get("status") in E.SETTLED or remaining <= 0:
                    return entity
                event.wait(min(remaining, self.recheck_seconds))
                event.clear()
        finally:
            with self._lock:
                events = self._waiters.get(key, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._waiters.pop(key, None)

    def _follow(self) -> None:
        while not self._closed:
            try:
                self._watch = self.store.watch(self.prefix, self._next_revision)
                for change in self._watch:
                    self._next_revision = change.revision + 1
                    if change.entity is None or change.entity.get("status") not in E.SETTLED:
                        continue
                    with self._lock:
                        events = list(self._waiters.get(change.key, ()))
                    for event in events:
                        event.set()
                if not self._closed:
                    time.sleep(0.1)  # the watch ended by itself (store closing): don't spin
            except Exception:
                if self._closed:
                    return
                log.warning("waiter.watch_broken prefix=%s; restarting", self.prefix, exc_info=True)
                time.sleep(0.5)

    def close(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.close()
