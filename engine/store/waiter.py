"""Wait for entities to settle, fed by one store watch per process (no polling)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .. import entities as E
from .base import Store

log = logging.getLogger("dispatch.waiter")


class SettleWaiter:
    """Blocks callers until the entity at a key reaches ``READY`` or ``ERROR`` (or one of
    the ``settled`` statuses given).

    One background thread follows ``store.watch(prefix)`` and wakes the waiters of the
    keys it sees settle. A waiter registers before it reads the entity, so a change
    between the read and the wait is never missed. If the watch breaks it is restarted
    from the last revision seen; as a safety net a waiter also re-reads every
    ``recheck_seconds``.

    The watch is open only while it serves someone: the first waiter opens it (from the
    store's revision before that waiter reads the entity), and the first change it
    brings once nobody has waited for ``idle_seconds`` closes it. Where runs are
    executed by the process that accepted them (blocking runs with a warm instance
    here), nobody waits, and no process decodes every run's every change for nothing.
    """

    def __init__(self, store: Store, prefix: str, recheck_seconds: float = 2.0,
                 settled: tuple[str, ...] = E.SETTLED, idle_seconds: float = 5.0):
        self.store, self.prefix, self.recheck_seconds = store, prefix, recheck_seconds
        self.idle_seconds = idle_seconds
        #: the statuses that end a wait (workflow executions have their own)
        self.statuses = settled
        self._waiters: dict[str, list[threading.Event]] = {}
        #: the settled entity the watch saw for a waited-on key, handed to its waiters
        self._seen: dict[str, E.Entity] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._watch = None
        #: the follower thread while the watch is open (guarded by _lock)
        self._thread: threading.Thread | None = None
        self._last_wait = time.monotonic()

    @property
    def watching(self) -> bool:
        """Whether the watch is open (a waiter came within ``idle_seconds``)."""
        return self._thread is not None

    def wait(self, key: str, read: Callable[[], E.Entity], timeout: float) -> E.Entity:
        """The entity once settled, or as it stands when ``timeout`` seconds have passed."""
        event = threading.Event()
        try:  # (the store may fail to answer its revision: the waiter is removed all the same)
            with self._lock:
                self._waiters.setdefault(key, []).append(event)
                self._last_wait = time.monotonic()
                if self._thread is None and not self._closed:
                    # every change after this revision reaches the watch; read() sees the rest
                    start = self.store.revision() + 1
                    self._thread = threading.Thread(target=self._follow, args=(start,),
                                                    name="settle-waiter", daemon=True)
                    self._thread.start()
            deadline = time.monotonic() + timeout
            entity = read()
            while True:
                remaining = deadline - time.monotonic()
                if entity.get("status") in self.statuses or remaining <= 0:
                    return entity
                if event.wait(min(remaining, self.recheck_seconds)):
                    event.clear()
                    with self._lock:
                        seen = self._seen.get(key)
                    entity = seen if seen is not None else read()
                else:
                    entity = read()  # the safety net: no word from the watch for a while
        finally:
            with self._lock:
                events = self._waiters.get(key, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._waiters.pop(key, None)
                    self._seen.pop(key, None)
                self._last_wait = time.monotonic()

    def settled(self, key: str, entity: E.Entity) -> None:
        """Wake this process's waiters of ``key`` with ``entity`` now settled.

        Called by a writer in the same process, so that they need not wait for the
        watch thread to relay the write; the watch still wakes everyone else.
        """
        with self._lock:
            events = list(self._waiters.get(key, ()))
            if events:
                self._seen[key] = entity
        for event in events:
            event.set()

    def _idle(self) -> bool:
        """Whether the watch has served nobody for ``idle_seconds``; if so, the follower
        thread is let go (under the lock, so a waiter arriving now opens a new watch)."""
        with self._lock:
            if self._waiters or time.monotonic() - self._last_wait < self.idle_seconds:
                return False
            self._thread = None
            return True

    def _follow(self, next_revision: int) -> None:
        while not self._closed:
            try:
                self._watch = watch = self.store.watch(self.prefix, next_revision)
                for change in watch:
                    # a restart resumes at this revision: writes that share it (one etcd
                    # transaction) come again rather than not at all
                    next_revision = change.revision
                    if change.entity is not None and change.entity.get("status") in self.statuses:
                        self.settled(change.key, change.entity)
                    if self._idle():
                        watch.close()
                        return
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
