"""An in-process store for unit tests: a dict, a revision counter and one condition.

Values are kept encoded (JSON), as the other backends keep them, so that an entity which
would not survive SQLite or etcd does not survive here either, and so that returned
entities never share state with the store.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Iterable, Iterator, Mapping

from .. import entities
from ..entities import Entity
from ..errors import Conflict
from . import codec
from .base import Lock, Page, Store, Watch, WatchEvent, matches


class MemoryStore(Store):
    """Every guarantee of :class:`Store` within one process; nothing survives it."""

    def __init__(self) -> None:
        # One condition guards everything: writes are rare enough in unit tests that
        # sharing it between watches and locks costs nothing and keeps this simple.
        self._cond = threading.Condition()
        self._data: dict[str, tuple[int, str]] = {}
        #: (revision, key, type, value); contiguous revisions, oldest first
        self._history: list[tuple[int, str, str, str | None]] = []
        self._revision = 0
        #: lock name -> (holder, expires at on the monotonic clock)
        self._locks: dict[str, tuple[str, float]] = {}

    def _write(self, key: str, value: str | None) -> int:
        """Apply one put (or delete if ``value`` is None); the caller holds ``_cond``."""
        self._revision += 1
        if value is None:
            del self._data[key]
        else:
            self._data[key] = (self._revision, value)
        type_ = "put" if value is not None else "delete"
        self._history.append((self._revision, key, type_, value))
        if len(self._history) > 2 * codec.HISTORY:
            del self._history[: -codec.HISTORY]
        self._cond.notify_all()
        return self._revision

    def add(self, entity: Entity) -> Entity:
        """Write a new entity; Conflict if its key exists. Returns it with its revision."""
        key, stored = codec.for_add(entity)
        value = codec.encode(stored)
        with self._cond:
            if key in self._data:
                raise codec.already_exists(stored)
            revision = self._write(key, value)
        return codec.decode(value, revision)

    def get(self, kind: str, org: str, name: str) -> Entity:
        """The entity at ``/dispatch/<kind>/<org>/<name>``; NotFound if absent."""
        key = entities.key(kind, org, name)
        with self._cond:
            found = self._data.get(key)
        if found is None:
            raise codec.not_found(key)
        return codec.decode(found[1], found[0])

    def list(
        self,
        kind: str,
        org: str | None = None,
        *,
        status: str | Iterable[str] | None = None,
        tags: Mapping[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> list[Entity]:
        """Entities of ``kind`` in ``org`` (every org if None), ordered by key, filtered."""
        prefix = entities.prefix(kind, org)
        with self._cond:
            found = sorted((k, rv) for k, rv in self._data.items() if k.startswith(prefix))
        decoded = (codec.decode(value, revision) for _, (revision, value) in found)
        return [e for e in decoded if matches(e, status, tags, fields)]

    def page(self, kind: str, org: str, *, limit: int, token: str | None = None,
             field: tuple[str, Any] | None = None, oldest_first: bool = False) -> Page:
        """A page of an indexed kind, newest (or oldest) first (sorted here: unit tests)."""
        codec.indexed_field(kind, field)
        def position(sort: str, name: str) -> tuple[str, str]:
            return (sort if oldest_first else codec.newest_first_key(sort)), name

        ordered = sorted(
            (position(codec.sort_key(e), e["name"]), e) for e in self.list(kind, org)
            if field is None or e.get(field[0]) == field[1])
        if token:
            after = position(*codec.decode_token(token))
            ordered = [(p, e) for p, e in ordered if p > after]
        items = [e for _, e in ordered[:limit]]
        more = len(ordered) > limit
        return Page(items, codec.encode_token(items[-1]) if more and items else None)

    def count(self, kind: str, org: str, *, field: tuple[str, Any] | None = None) -> int:
        codec.indexed_field(kind, field)
        return sum(1 for e in self.list(kind, org)
                   if field is None or e.get(field[0]) == field[1])

    def update(self, entity: Entity) -> Entity:
        """Replace the stored entity if its revision equals ``entity["revision"]``."""
        key, stored = codec.for_update(entity)
        value = codec.encode(stored)
        with self._cond:
            current = self._data.get(key)
            if current is None:
                raise codec.not_found(key)
            if current[0] != entity.get("revision"):
                raise codec.stale(key, entity.get("revision"), current[0])
            revision = self._write(key, value)
        return codec.decode(value, revision)

    def delete(self, kind: str, org: str, name: str, revision: int | None = None) -> None:
        """Remove the entity (if ``revision`` is given, only if it still matches)."""
        key = entities.key(kind, org, name)
        with self._cond:
            current = self._data.get(key)
            if current is None:
                raise codec.not_found(key)
            if revision is not None and current[0] != revision:
                raise codec.stale(key, revision, current[0])
            self._write(key, None)

    def watch(self, prefix: str, from_revision: int | None = None) -> Watch:
        """Changes under ``prefix`` from ``from_revision`` (inclusive) or from now."""
        with self._cond:
            start = self._revision + 1 if from_revision is None else from_revision
        return _MemoryWatch(self, prefix, start)

    def lock(self, name: str, ttl: float) -> Lock:
        """A lock for ``name`` shared by every user of this store (threads only)."""
        return _MemoryLock(self, name, ttl)

    def revision(self) -> int:
        """The store's current revision (that of its last write)."""
        with self._cond:
            return self._revision


class _MemoryWatch(Watch):
    def __init__(self, store: MemoryStore, prefix: str, start: int) -> None:
        self._store = store
        self._prefix = prefix
        self._next = start
        self._closed = False

    def _pending(self) -> list[tuple[int, str, str, str | None]]:
        """Retained changes under the prefix from ``_next`` on; the caller holds the condition."""
        history = self._store._history
        if not history or history[-1][0] < self._next:
            return []
        # revisions in the history are contiguous, so the start is an index away
        first = max(0, self._next - history[0][0])
        return [c for c in history[first:] if c[1].startswith(self._prefix)]

    def __iter__(self) -> Iterator[WatchEvent]:
        """Yield events in revision order; blocks for the next one; ends after close()."""
        cond = self._store._cond
        while True:
            with cond:
                while not self._closed and self._store._revision < self._next:
                    cond.wait()
                if self._closed:
                    return
                batch = self._pending()
                self._next = self._store._revision + 1
            for revision, key, type_, value in batch:
                if self._closed:
                    return
                entity = None if value is None else codec.decode(value, revision)
                yield WatchEvent(type_, key, revision, entity)

    def close(self) -> None:
        """Stop the stream; a blocked iteration ends. Safe to call twice."""
        with self._store._cond:
            self._closed = True
            self._store._cond.notify_all()


class _MemoryLock(Lock):
    def __init__(self, store: MemoryStore, name: str, ttl: float) -> None:
        self._store = store
        self._name = name
        self._ttl = ttl
        self._holder = uuid.uuid4().hex

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (None: forever, 0: try once)."""
        locks, cond = self._store._locks, self._store._cond
        deadline = None if timeout is None else time.monotonic() + timeout
        with cond:
            while True:
                now = time.monotonic()
                holder, expires = locks.get(self._name, (None, 0.0))
                if holder is None or expires <= now or holder == self._holder:
                    locks[self._name] = (self._holder, now + self._ttl)
                    return True
                # wake up when the lease runs out even if nobody releases it
                wait = expires - now
                if deadline is not None:
                    if deadline <= now:
                        return False
                    wait = min(wait, deadline - now)
                cond.wait(wait)

    def release(self) -> None:
        """Give the lock back if still held by this holder."""
        with self._store._cond:
            if self._store._locks.get(self._name, (None,))[0] == self._holder:
                del self._store._locks[self._name]
                self._store._cond.notify_all()

    def refresh(self) -> None:
        """Extend the lease by ``ttl`` from now; raises Conflict if it was lost."""
        with self._store._cond:
            if not self.is_held():
                raise Conflict(f"lock {self._name} is no longer held")
            self._store._locks[self._name] = (self._holder, time.monotonic() + self._ttl)

    def is_held(self) -> bool:
        """Whether this holder still holds the lock (its lease has not expired)."""
        with self._store._cond:
            holder, expires = self._store._locks.get(self._name, (None, 0.0))
            return holder == self._holder and expires > time.monotonic()
