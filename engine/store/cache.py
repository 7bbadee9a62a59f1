"""A process-local copy of the entities of one kind, kept current by a store watch."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .. import entities as E
from .base import Store

log = logging.getLogger("dispatch.cache")


class EntityCache:
    """Every entity of ``kind`` (that ``keep`` accepts), refreshed from the store's
    ordered watch.

    It serves the hot path's reads of entities that change rarely (functions, on every
    run). It may lag the store by the watch's delay, so callers use it only where a
    few milliseconds of staleness are harmless and read the store when it answers
    ``None`` or an entity they cannot act on. If the watch breaks, the cache is reloaded.
    """

    def __init__(self, store: Store, kind: str,
                 keep: Callable[[E.Entity], bool] | None = None):
        self.store, self.kind = store, kind
        self.keep = keep or (lambda entity: True)
        self._items: dict[str, E.Entity] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._watch = None
        self._loaded = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"cache-{kind}", daemon=True)
        self._thread.start()

    def get(self, org: str, name: str) -> E.Entity | None:
        """The cached entity (a copy), or None if unknown here or not loaded yet."""
        if not self._loaded.is_set():
            return None
        with self._lock:
            entity = self._items.get(E.key(self.kind, org, name))
        return dict(entity) if entity is not None else None

    def values(self) -> list[E.Entity] | None:
        """Copies of every cached entity, or None while the cache is not loaded."""
        if not self._loaded.is_set():
            return None
        with self._lock:
            return [dict(e) for e in self._items.values()]

    def _load(self) -> int:
        revision = self.store.revision()
        items = {E.key_of(e): e for e in self.store.list(self.kind) if self.keep(e)}
        with self._lock:
            self._items = items
        return revision

    def _apply(self, change) -> None:
        with self._lock:
            current = self._items.get(change.key)
            if current is not None and current["revision"] >= change.revision:
                return  # the load already saw this or a later write
            if change.entity is None or not self.keep(change.entity):
                self._items.pop(change.key, None)
            else:
                self._items[change.key] = change.entity

    def _follow(self) -> None:
        while not self._closed:
            try:
                # the watch starts at the revision read before the list, so nothing
                # written between the two is missed; _apply skips what the list saw
                revision = self._load()
                self._watch = self.store.watch(E.prefix(self.kind), revision + 1)
                self._loaded.set()
                for change in self._watch:
                    self._apply(change)
            except Exception:
                log.warning("cache.watch_broken kind=%s; reloading", self.kind, exc_info=True)
            self._loaded.clear()
            if not self._closed:
                time.sleep(0.5)

    def close(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.close()
