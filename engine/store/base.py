"""The entity store port: the source of truth for entities, runs, locks and watches.

Every backend (``memory``, ``sqlite``, ``etcd``) gives the same guarantees, and the
contract suite in ``tests/contract/test_store.py`` checks them against each:

* ``revision`` is the store-wide revision of the entity's last write (etcd's
  ``mod_revision``). Revisions increase strictly with every write to the store.
* ``add`` is create-only; ``update`` and ``delete`` may carry the revision they read
  and then fail with :class:`~engine.errors.StaleRevision` if it changed meanwhile.
* ``watch`` yields every change under a prefix, in revision order, from a revision.
* ``lock`` is a mutex with a time-to-live that works across processes.
* ``page`` reads one page of an indexed kind (runs), newest (or oldest) first, from a
  creation-time index kept with every write: its cost is that of the page, never that of
  every entity of the kind.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

from ..entities import Entity, parse_key
from ..errors import NotFound, StaleRevision


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    """One change of one key: ``type`` is ``"put"`` or ``"delete"``."""

    type: str
    key: str
    revision: int
    #: the entity after a put; ``None`` after a delete
    entity: Entity | None


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of :meth:`Store.page`."""

    items: list[Entity]
    #: where the next page starts (pass it back as ``token``); None after the last page
    token: str | None


class Watch(abc.ABC):
    """An ordered stream of :class:`WatchEvent`; iterate it, ``close()`` it when done."""

    @abc.abstractmethod
    def __iter__(self) -> Iterator[WatchEvent]:
        """Yield events in revision order; blocks for the next one; ends after close()."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the stream; a blocked iteration ends. Safe to call twice."""

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Lock(abc.ABC):
    """A named mutex with a lease: if the holder dies, it frees itself after ``ttl``."""

    @abc.abstractmethod
    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (None: forever, 0: try once)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the lock back if still held by this holder."""

    @abc.abstractmethod
    def refresh(self) -> None:
        """Extend the lease by ``ttl`` from now; raises Conflict if it was lost."""

    @abc.abstractmethod
    def is_held(self) -> bool:
        """Whether this holder still holds the lock (its lease has not expired)."""

    def __enter__(self) -> "Lock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


class Store(abc.ABC):
    """Entities by kind, organization and name, with compare-and-swap on revision."""

    @abc.abstractmethod
    def add(self, entity: Entity) -> Entity:
        """Write a new entity; Conflict if its key exists. Returns it with its revision."""

    @abc.abstractmethod
    def get(self, kind: str, org: str, name: str) -> Entity:
        """The entity at ``/dispatch/<kind>/<org>/<name>``; NotFound if absent."""

    @abc.abstractmethod
    def list(
        self,
        kind: str,
        org: str | None = None,
        *,
        status: str | Iterable[str] | None = None,
        tags: Mapping[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> list[Entity]:
        """Entities of ``kind`` in ``org`` (every org if None), ordered by key.

        Filters are ANDed: ``status`` is one status or a set of them; ``tags`` maps tag
        keys to values the entity must carry; ``fields`` maps top-level fields to the
        values they must equal.
        """

    @abc.abstractmethod
    def page(
        self,
        kind: str,
        org: str,
        *,
        limit: int,
        token: str | None = None,
        field: tuple[str, Any] | None = None,
        oldest_first: bool = False,
    ) -> Page:
        """Up to ``limit`` entities of an indexed kind (:data:`codec.INDEXED`) in ``org``,
        newest first by creation time (``createdAt``, else ``createdTime``, to the
        microsecond), or oldest first; ties by name, ascending, either way; from ``token`` (a previous page's) on.

        ``field`` is ``(name, value)`` of the kind's indexed field (runs:
        ``functionName``): only those entities. Entities added after the first page sort
        before the token when newest first, so a walk never repeats or skips one that was
        there when it began (unless deleted). InvalidInput for a token not made here.
        """

    @abc.abstractmethod
    def count(self, kind: str, org: str, *, field: tuple[str, Any] | None = None) -> int:
        """How many entities of an indexed kind ``org`` holds (with ``field``'s value)."""

    @abc.abstractmethod
    def update(self, entity: Entity) -> Entity:
        """Replace the stored entity if its revision equals ``entity["revision"]``.

        Raises StaleRevision if another write came first, NotFound if the key is gone.
        Returns the entity as stored, with its new revision and ``modifiedTime``.
        """

    @abc.abstractmethod
    def delete(self, kind: str, org: str, name: str, revision: int | None = None) -> None:
        """Remove the entity (if ``revision`` is given, only if it still matches)."""

    @abc.abstractmethod
    def watch(self, prefix: str, from_revision: int | None = None) -> Watch:
        """Changes under ``prefix`` from ``from_revision`` (inclusive) or from now."""

    @abc.abstractmethod
    def lock(self, name: str, ttl: float) -> Lock:
        """A lock object for ``name``, shared by every process using this store."""

    @abc.abstractmethod
    def revision(self) -> int:
        """The store's current revision (that of its last write)."""

    def find(self, key: str) -> Entity | None:
        """The entity at ``key``, or None if there is none: a job's first read, where an
        entity deleted since the job was queued means there is nothing left to do."""
        kind, org, name = parse_key(key)
        try:
            return self.get(kind, org, name)
        except NotFound:
            return None

    def modify(self, kind: str, org: str, name: str,
               change: Callable[[Entity], Entity | None], attempts: int = 5) -> Entity:
        """Read the entity, let ``change`` edit it and write it back (compare-and-swap);
        if another write came in between — a job moving the entity's status on — start
        again from a fresh read, up to ``attempts`` times, then StaleRevision.

        ``change`` may raise to refuse (nothing is written), or return None to write
        nothing (the entity is returned as read). For API-side edits of a client that
        sent no revision of its own: its edit applies to whatever is current.
        """
        for attempt in range(attempts):
            current = self.get(kind, org, name)
            changed = change(dict(current))
            if changed is None:
                return current
            try:
                return self.update(changed)
            except StaleRevision:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Release connections and background threads."""


def matches(
    entity: Entity,
    status: str | Iterable[str] | None,
    tags: Mapping[str, str] | None,
    fields: Mapping[str, Any] | None,
) -> bool:
    """The filter semantics of :meth:`Store.list`, shared by backends that filter in Python."""
    if status is not None:
        wanted = {status} if isinstance(status, str) else set(status)
        if entity.get("status") not in wanted:
            return False
    if tags:
        have = {t.get("key"): t.get("value") for t in entity.get("tags") or ()}
        if any(have.get(k) != v for k, v in tags.items()):
            return False
    if fields:
        if any(entity.get(k) != v for k, v in fields.items()):
            return False
    return True


def retry_until(attempt: Callable[[], bool], timeout: float | None) -> bool:
    """Call ``attempt`` until it returns True or ``timeout`` passes (None: forever, 0: once).

    Sleeps between attempts from 5 ms up to 50 ms: for locks held across processes,
    where no in-process notification can tell that the holder let go.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.005
    while not attempt():
        sleep = pause
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            sleep = min(pause, remaining)
        time.sleep(sleep)
        pause = min(pause * 2, 0.05)
    return True
