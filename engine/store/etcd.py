"""The distributed store: etcd v3 through ``pyetcd`` (the maintained fork of python-etcd3).

An entity's revision is its key's ``mod_revision``; ``add`` and ``update`` are single
transactions comparing ``create_revision`` and ``mod_revision``, so compare-and-swap is
etcd's own. Watches are etcd watches from a start revision, re-established from the last
event seen if the connection breaks. Locks are keys bound to a lease.

Indexed kinds (runs) also get creation-index keys, written and deleted in the same
transaction as the entity: ``/dispatch-index/<kind>/<org>/<scope>/<order>/<time>/<name>``
where scope is ``~all`` or ``<field>=<value>`` and order is ``new`` (the time inverted)
or ``old``. A page is one keys-only range read of ``limit + 1`` index keys, always in
ascending key order (etcd 3.4 applies a limit as it reads only then; a descending read
reads the whole range first), and one transaction getting those entities.

A run also has a status key, ``/dispatch-status/run/<org>/<name>``, while its status is
one of :data:`codec.STATUS_INDEXED`'s (in transit: INITIALIZED, CREATING): put by the
write that gives it such a status, deleted by the one that takes it away, in the same
transaction. ``list(E.RUN, status=…)`` asking for those statuses reads the status keys
and gets those runs only, so the reconciler's pass reads the runs in transit without a
watch that would bring it every write of every run.

Entity writes (``add``, ``update``) are committed in groups, as the SQLite store's are:
a writer queues its write and takes the store's write lock; whoever holds it sends every
write queued by then (up to :data:`GROUP_MAX_OPS` operations and :data:`GROUP_MAX_BYTES`,
no key twice) as one transaction, all compares and all puts. If any compare fails, or
etcd refuses the whole, nothing was written and each write is sent again alone, so one
write's conflict is its own. A lone write costs what it did; under concurrent writes one
gRPC call and one raft entry serve several (a write through Python's gRPC costs about as
much CPU on each side as the rest of a run's store work). Writes of one transaction share
its revision: a watch yields them in one response, and resumes after the whole of it.

With several endpoints the store talks to the first reachable one and, after a failure,
moves to the next; a read is retried once there, a write is not (it may have applied).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import queue
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Iterator, Mapping

import grpc
import pyetcd
from pyetcd import events as etcd_events
from pyetcd import exceptions as etcd_errors
from pyetcd.watch import WatchResponse

from .. import entities
from ..entities import Entity
from ..errors import Conflict, InvalidInput, Unavailable
from . import codec
from .base import Lock, Page, Store, Watch, WatchEvent, matches

#: seconds before an RPC (or the creation of a watch) gives up
TIMEOUT = 5.0
#: seconds a failed endpoint is passed over when there are others to try
RETRY_FAILED_AFTER = 1.0
#: lock keys live apart from entities, so that watching /dispatch/ never sees them
LOCK_PREFIX = "/dispatch-lock/"
#: creation-index keys live apart from entities too
INDEX_PREFIX = "/dispatch-index/"
#: and status keys
STATUS_PREFIX = "/dispatch-status/"
#: the most operations one etcd transaction may hold (etcd's --max-txn-ops default)
MAX_TXN_OPS = 128
#: the most operations, and value bytes, one group of writes sends (well under etcd's
#: --max-txn-ops and --max-request-bytes defaults: 128 and 1.5 MiB)
GROUP_MAX_OPS = 64
GROUP_MAX_BYTES = 512 * 1024


def index_prefix(kind: str, org: str, field: tuple[str, Any] | None = None,
                 oldest_first: bool = False) -> str:
    scope = "~all" if field is None else f"{field[0]}={field[1]}"
    return f"{INDEX_PREFIX}{kind}/{org}/{scope}/{'old' if oldest_first else 'new'}/"


def index_position(sort: str, name: str, oldest_first: bool) -> str:
    return f"{sort if oldest_first else codec.newest_first_key(sort)}/{name}"


def index_keys(entity: Entity) -> list[str]:
    """The creation-index keys of an entity of an indexed kind ([] for other kinds)."""
    kind = entity["kind"].lower()
    field = codec.INDEXED.get(kind)
    if field is None:
        return []
    org, sort, name = entity["organizationId"], codec.sort_key(entity), entity["name"]
    scopes = [None] + ([(field, entity[field])] if entity.get(field) is not None else [])
    return [index_prefix(kind, org, scope, old) + index_position(sort, name, old)
            for scope in scopes for old in (False, True)]


def status_key(key: str) -> str:
    """The status key of the entity at ``key`` (see the module's documentation)."""
    return STATUS_PREFIX + key[len(entities.PREFIX):]


def status_prefix(kind: str, org: str | None) -> str:
    return status_key(entities.prefix(kind, org))


class EtcdStore(Store):
    """The store in the etcd cluster reached at ``endpoints`` (``["host:port", …]``)."""

    def __init__(self, endpoints: list[str], timeout: float = TIMEOUT) -> None:
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint, e.g. 127.0.0.1:2379")
        self.endpoints = [_netloc(e) for e in endpoints]
        # A lone endpoint is never marked failed: there is nothing to fail over to, and a
        # mark would make every request fail at once until it wore off.
        retry_after = RETRY_FAILED_AFTER if len(self.endpoints) > 1 else 0.0
        self._client = pyetcd.MultiEndpointEtcd3Client(
            endpoints=[
                pyetcd.Endpoint(host, port, secure=False, time_retry=retry_after)
                for host, port in self.endpoints
            ],
            timeout=timeout,
            failover=True,
        )
        self._txn = self._client.transactions
        self.closed = False
        # group commit of entity writes (see the module's documentation)
        self._write_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Write] = []
        self._use_first_reachable()
        self._build_index_once()

    def _build_index_once(self) -> None:
        """Index the entities a version without the creation index, or without status
        keys, wrote (once per cluster: a marker key says each is done; doing it twice is
        harmless)."""
        self._once(INDEX_PREFIX + ".built-2", codec.INDEXED, self._index_written)
        self._once(STATUS_PREFIX + ".built-1", codec.STATUS_INDEXED, self._key_status_written)

    def _once(self, marker: str, kinds: Iterable[str], build: Callable[[Any], None]) -> None:
        """``build`` every stored entity of ``kinds`` (etcd's key-values), unless
        ``marker`` says it was done; then set it."""
        if self._read(self._client.get_response, marker).kvs:
            return
        for kind in kinds:
            for kv in self._read(self._client.get_prefix_response, entities.prefix(kind)).kvs:
                build(kv)
        with self._rpc():
            self._client.put(marker, "1")

    def _index_written(self, kv: Any) -> None:
        entity = codec.decode(kv.value, kv.mod_revision)
        with self._rpc():
            for index in index_keys(entity):
                self._client.put(index, entities.key_of(entity))

    def _key_status_written(self, kv: Any) -> None:
        entity = codec.decode(kv.value, kv.mod_revision)
        if entity.get("status") in codec.STATUS_INDEXED[entity["kind"].lower()]:
            # only if it is still that version: a later write keeps its own key
            key = kv.key.decode()
            self._transaction(compare=[self._txn.mod(key) == kv.mod_revision],
                              success=[self._txn.put(status_key(key), b"")], failure=[])

    def _use_first_reachable(self) -> None:
        # pyetcd starts on a random endpoint; the configured order is the preference
        for host, port in self.endpoints:
            self._client._current_endpoint_label = f"{host}:{port}"
            try:
                self._client.get_response(entities.PREFIX, count_only=True)
                return
            except etcd_errors.Etcd3Exception:
                continue
        listed = ", ".join(f"{host}:{port}" for host, port in self.endpoints)
        raise Unavailable(f"no etcd endpoint is reachable: {listed}")

    @contextlib.contextmanager
    def _rpc(self) -> Iterator[None]:
        """Map pyetcd's and gRPC's errors to the engine's."""
        try:
            yield
        except etcd_errors.Etcd3Exception as error:
            raise Unavailable(f"etcd is unavailable: {error!r}") from error
        except grpc.RpcError as error:
            # e.g. a value over etcd's --max-request-bytes (1.5 MiB by default)
            if error.code() in (
                grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED
            ):
                raise InvalidInput(f"etcd refused the request: {error.details()}") from error
            raise Unavailable(f"etcd failed: {error.details()}") from error

    def _read(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a read RPC; with several endpoints, once more on the next if one failed."""
        if len(self.endpoints) > 1:
            try:
                return call(*args, **kwargs)
            except (etcd_errors.ConnectionFailedError, etcd_errors.ConnectionTimeoutError):
                pass  # pyetcd has marked the endpoint failed and moves to the next one
        with self._rpc():
            return call(*args, **kwargs)

    def _transaction(self, compare: list, success: list, failure: list) -> tuple[bool, list]:
        with self._rpc():
            return self._client.transaction(compare=compare, success=success, failure=failure)

    # -- entities ---------------------------------------------------------------------

    def add(self, entity: Entity) -> Entity:
        """Write a new entity; Conflict if its key exists. Returns it with its revision."""
        key, stored = codec.for_add(entity)
        value = codec.encode_bytes(stored)  # what etcd stores: no str between
        indexes = index_keys(stored)
        compare = [self._txn.create(key) == 0]
        success = ([self._txn.put(key, value)] + [self._txn.put(index, key) for index in indexes]
                   + self._status_ops(key, stored, added=True))

        def alone() -> int:
            ok, responses = self._transaction(compare=compare, success=success, failure=[])
            if not ok:
                raise codec.already_exists(stored)
            return responses[0].response_put.header.revision

        revision = self._grouped(_Write(compare, success, (key, *indexes), len(value), alone))
        return codec.decode(value, revision)

    def _status_ops(self, key: str, entity: Entity, added: bool = False) -> list:
        """The operations that keep ``entity``'s status key (if its kind has them) in step
        with its status: put it in transit, delete it otherwise (a new entity has none)."""
        statuses = codec.STATUS_INDEXED.get(entity["kind"].lower())
        if statuses is None:
            return []
        if entity.get("status") in statuses:
            return [self._txn.put(status_key(key), b"")]
        return [] if added else [self._txn.delete(status_key(key))]

    def _grouped(self, item: "_Write") -> int:
        """Commit ``item`` with the writes queued meanwhile by other threads; its
        revision, or what it raised alone."""
        with self._pending_lock:
            self._pending.append(item)
        with self._write_lock:
            while not item.done:  # nobody committed it yet: commit the queue's head
                self._commit_group(self._take_group())
        if item.error is not None:
            raise item.error
        return item.result

    def _take_group(self) -> list["_Write"]:
        """The queued writes that fit one transaction, oldest first (at least one)."""
        with self._pending_lock:
            group: list[_Write] = []
            keys: set[str] = set()
            ops = size = 0
            for item in self._pending:
                if group and (ops + len(item.success) > GROUP_MAX_OPS
                              or size + item.size > GROUP_MAX_BYTES
                              or not keys.isdisjoint(item.keys)):
                    break
                group.append(item)
                keys.update(item.keys)
                ops, size = ops + len(item.success), size + item.size
            self._pending = self._pending[len(group):]
            return group

    def _commit_group(self, group: list["_Write"]) -> None:
        """One transaction for ``group``, or each write alone if it cannot all go."""
        try:
            if len(group) > 1:
                try:
                    ok, responses = self._transaction(
                        compare=[c for item in group for c in item.compare],
                        success=[op for item in group for op in item.success],
                        failure=[])
                except InvalidInput:  # etcd refused the whole (its size): each alone
                    ok = False
                if ok:
                    revision = responses[0].response_put.header.revision
                    for item in group:
                        item.result = revision
                    return
            for item in group:  # alone, or a compare failed: nothing was written
                try:
                    item.result = item.alone()
                except Exception as exc:
                    item.error = exc
        except Exception as exc:  # the group's transaction failed: it may have applied
            for item in group:
                if item.result is None and item.error is None:
                    item.error = exc
        finally:
            for item in group:
                item.done = True

    def get(self, kind: str, org: str, name: str) -> Entity:
        """The entity at ``/dispatch/<kind>/<org>/<name>``; NotFound if absent."""
        key = entities.key(kind, org, name)
        response = self._read(self._client.get_response, key)
        if not response.kvs:
            raise codec.not_found(key)
        kv = response.kvs[0]
        return codec.decode(kv.value, kv.mod_revision)

    def list(
        self,
        kind: str,
        org: str | None = None,
        *,
        status: str | Iterable[str] | None = None,
        tags: Mapping[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> list[Entity]:
        """Entities of ``kind`` in ``org`` (every org if None), ordered by key, filtered;
        those in statuses of the kind's status index read through it."""
        if status is not None and not isinstance(status, str):
            status = list(status)  # read twice below
        if codec.status_indexed(kind, status):
            prefix = status_prefix(kind, org)
            response = self._read(self._client.get_range_response, prefix,
                                  codec.prefix_end(prefix), keys_only=True)
            keys = [entities.PREFIX + kv.key.decode()[len(STATUS_PREFIX):]
                    for kv in response.kvs]
            return [e for e in self._get_keys(keys) if matches(e, status, tags, fields)]
        response = self._read(
            self._client.get_prefix_response,
            entities.prefix(kind, org),
            sort_order="ascend",
            sort_target="key",
        )
        decoded = (codec.decode(kv.value, kv.mod_revision) for kv in response.kvs)
        return [e for e in decoded if matches(e, status, tags, fields)]

    def page(self, kind: str, org: str, *, limit: int, token: str | None = None,
             field: tuple[str, Any] | None = None, oldest_first: bool = False) -> Page:
        """A page from the creation index: ``limit + 1`` index keys, then the entities."""
        codec.indexed_field(kind, field)
        prefix = index_prefix(kind, org, field, oldest_first)
        start, after = prefix, None
        if token:
            sort, name = codec.decode_token(token)
            start = prefix + index_position(sort, name, oldest_first) + "\0"
            after = int(sort) / 1_000_000
        if oldest_first:
            # pruning's order: one range read (its cost grows with the range on etcd 3.4)
            response = self._read(self._client.get_range_response, start,
                                  codec.prefix_end(prefix), limit=limit + 1, keys_only=True)
            keys = [kv.key.decode() for kv in response.kvs]
        else:
            keys = self._newest_keys(prefix, start, time.time() if after is None else after,
                                     limit + 1)
        names = [k[len(prefix):].split("/", 1)[1] for k in keys]
        items = self._get_many(kind, org, names[:limit])
        more = len(names) > limit
        return Page(items, codec.encode_token(items[-1]) if more and items else None)

    def _newest_keys(self, prefix: str, start: str, since: float, want: int) -> list[str]:
        """Up to ``want`` newest-first index keys from ``start``, read in widening time
        windows back from ``since`` (a minute, then 8 times more each read).

        etcd 3.4 walks every key of a range before applying its limit, so one read of the
        whole index would cost as much as the history is long; windows make a page cost
        about what the runs of its own time span cost. Ranges are read in etcd's own
        ascending order (the newest-first keys hold the time inverted).
        """
        found: list[str] = []
        window = 60.0
        while True:
            bound = since - window
            last = bound <= 0
            end = (codec.prefix_end(prefix) if last else
                   prefix + codec.newest_first_key(codec.sort_key({"createdAt": bound})))
            response = self._read(self._client.get_range_response, start, end,
                                  limit=want - len(found), keys_only=True)
            found += [kv.key.decode() for kv in response.kvs]
            if len(found) >= want or last:
                return found
            start, window = end, window * 8

    def _get_many(self, kind: str, org: str, names: list[str]) -> list[Entity]:
        """The entities named, in that order (one deleted meanwhile is left out)."""
        return self._get_keys([entities.key(kind, org, n) for n in names])

    def _get_keys(self, keys: list[str]) -> list[Entity]:
        """The entities at ``keys``, in that order, in as few transactions as etcd allows
        (one deleted meanwhile is left out)."""
        found: list[Entity] = []
        for first in range(0, len(keys), MAX_TXN_OPS):
            batch = keys[first:first + MAX_TXN_OPS]
            _, responses = self._transaction(
                compare=[], success=[self._txn.get(k) for k in batch], failure=[])
            for kvs in responses:
                if kvs:
                    value, meta = kvs[0]
                    found.append(codec.decode(value, meta.mod_revision))
        return found

    def count(self, kind: str, org: str, *, field: tuple[str, Any] | None = None) -> int:
        codec.indexed_field(kind, field)
        prefix = index_prefix(kind, org, field)
        response = self._read(self._client.get_range_response, prefix,
                              codec.prefix_end(prefix), count_only=True)
        return response.count

    def update(self, entity: Entity) -> Entity:
        """Replace the stored entity if its revision equals ``entity["revision"]``."""
        key, stored = codec.for_update(entity)
        value = codec.encode_bytes(stored)
        expected = entity.get("revision")
        # an absent key has mod_revision 0 too: version > 0 keeps update from creating
        compare = [self._txn.version(key) > 0,
                   self._txn.mod(key) == (expected if isinstance(expected, int) else -1)]
        success = [self._txn.put(key, value)] + self._status_ops(key, stored)

        def alone() -> int:
            ok, responses = self._transaction(compare=compare, success=success,
                                              failure=[self._txn.get(key)])
            if not ok:
                self._raise_for(key, expected, responses[0])
            return responses[0].response_put.header.revision

        revision = self._grouped(_Write(compare, success, (key,), len(value), alone))
        return codec.decode(value, revision)

    def delete(self, kind: str, org: str, name: str, revision: int | None = None) -> None:
        """Remove the entity (if ``revision`` is given, only if it still matches)."""
        key = entities.key(kind, org, name)
        indexes: list[str] = []
        if kind in codec.INDEXED:
            # its index keys come from its value: read it, and delete only that version
            current = self.get(kind, org, name)
            if revision is not None and current["revision"] != revision:
                raise codec.stale(key, revision, current["revision"])
            revision, indexes = current["revision"], index_keys(current)
        if kind in codec.STATUS_INDEXED:
            indexes.append(status_key(key))
        compare = [self._txn.version(key) > 0]
        if revision is not None:
            compare.append(self._txn.mod(key) == revision)
        ok, responses = self._transaction(
            compare=compare,
            success=[self._txn.delete(key)] + [self._txn.delete(i) for i in indexes],
            failure=[self._txn.get(key)],
        )
        if not ok:
            self._raise_for(key, revision, responses[0])

    @staticmethod
    def _raise_for(key: str, expected: Any, found: list) -> None:
        """The error of a failed compare, from the failure branch's get of ``key``."""
        if not found:
            raise codec.not_found(key)
        raise codec.stale(key, expected, found[0][1].mod_revision)

    def revision(self) -> int:
        """The store's current revision (that of its last write)."""
        response = self._read(self._client.get_response, entities.PREFIX, count_only=True)
        return response.header.revision

    def watch(self, prefix: str, from_revision: int | None = None) -> Watch:
        """Changes under ``prefix`` from ``from_revision`` (inclusive) or from now.

        A watch from a compacted revision starts at the oldest one etcd still keeps.
        """
        # etcd reads a start revision of 0 as "from now"; the other backends as "from the start"
        start = self.revision() + 1 if from_revision is None else max(from_revision, 1)
        return _EtcdWatch(self, prefix, start)

    def lock(self, name: str, ttl: float) -> Lock:
        """A lease-backed lock for ``name`` shared by every client of the cluster.

        etcd leases last whole seconds, and at least its minimum TTL (by default 2 s).
        """
        return _EtcdLock(self, name, ttl)

    def close(self) -> None:
        """Close the gRPC channels (and with them every watch)."""
        self.closed = True
        self._client.close()


class _EtcdWatch(Watch):
    # pyetcd calls back from its watcher thread; the queue hands responses to the
    # iterating thread, and a _CLOSED marker wakes it on close()
    _CLOSED = object()

    def __init__(self, store: EtcdStore, prefix: str, start: int) -> None:
        self._store = store
        self._prefix = prefix
        self._next = start
        self._queue: queue.Queue[Any] = queue.Queue()
        self._guard = threading.Lock()
        self._watch_id: int | None = None
        self._closed = False
        self._open()

    def _open(self) -> None:
        """Start (or restart) the etcd watch at ``_next``."""
        with self._store._rpc():
            watch_id = self._store._client.add_watch_prefix_callback(
                self._prefix, self._queue.put, start_revision=self._next
            )
        with self._guard:
            self._watch_id = watch_id
            closed = self._closed
        if closed:
            self._cancel(watch_id)

    def _cancel(self, watch_id: int | None) -> None:
        if watch_id is None:
            return
        with contextlib.suppress(Exception):
            self._store._client.cancel_watch(watch_id)

    def _reopen(self, reason: Any) -> None:
        """After the stream ended or failed: continue from the next revision, until closed."""
        if isinstance(reason, etcd_errors.RevisionCompactedError):
            self._next = max(self._next, reason.compacted_revision)
        pause = 0.05
        while not self._closed and not self._store.closed:
            try:
                self._open()
                return
            except Unavailable:
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def __iter__(self) -> Iterator[WatchEvent]:
        """Yield events in revision order; blocks for the next one; ends after close()."""
        while True:
            item = self._queue.get()
            if self._closed or self._store.closed:
                return
            if not isinstance(item, WatchResponse):
                self._reopen(item)  # None (stream closed) or an error
                continue
            # a transaction's events (one revision) come in one response: resume after it
            resume = self._next
            for event in item.events:
                revision = event.mod_revision
                if revision < resume:
                    continue  # already yielded before a reconnection
                self._next = max(self._next, revision + 1)
                if isinstance(event, etcd_events.DeleteEvent):
                    yield WatchEvent("delete", event.key.decode(), revision, None)
                else:
                    entity = codec.decode(event.value, revision)
                    yield WatchEvent("put", event.key.decode(), revision, entity)
                if self._closed:
                    return

    def close(self) -> None:
        """Stop the stream; a blocked iteration ends. Safe to call twice."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            watch_id = self._watch_id
        self._queue.put(self._CLOSED)
        self._cancel(watch_id)


@dataclasses.dataclass(eq=False)
class _Write:
    """One queued entity write: its compares and puts for a group, and itself as a
    transaction of its own (``alone``: its revision, or its Conflict)."""

    compare: list
    success: list
    keys: tuple[str, ...]
    size: int
    alone: Callable[[], int]
    done: bool = False
    result: int | None = None
    error: Exception | None = None


class _EtcdLock(Lock):
    def __init__(self, store: EtcdStore, name: str, ttl: float) -> None:
        self._store = store
        self._client = store._client
        self._name = name
        self._key = LOCK_PREFIX + name
        self._ttl = max(1, math.ceil(ttl))
        self._holder = uuid.uuid4().hex.encode()
        self._lease: pyetcd.Lease | None = None

    def _try_acquire(self) -> tuple[bool, int]:
        """One attempt; returns whether it succeeded and the holder's key revision."""
        txn = self._client.transactions
        with self._store._rpc():
            lease = self._client.lease(self._ttl)
            ok, responses = self._client.transaction(
                compare=[txn.create(self._key) == 0],
                success=[txn.put(self._key, self._holder, lease=lease)],
                failure=[txn.get(self._key)],
            )
        if ok:
            self._lease = lease
            return True, responses[0].response_put.header.revision
        with contextlib.suppress(Exception):
            lease.revoke()
        value, meta = responses[0][0] if responses[0] else (None, None)
        if value == self._holder:
            return True, meta.mod_revision  # already ours
        return False, meta.mod_revision if meta else 0

    def _wait_for_release(self, after_revision: int, timeout: float | None) -> None:
        """Block until the lock key changes after ``after_revision``, or ``timeout``."""
        changed = threading.Event()

        def on_response(response: Any) -> None:
            # errors wake us too: the caller simply tries again
            if not isinstance(response, WatchResponse) or response.events:
                changed.set()

        with self._store._rpc():
            watch_id = self._client.add_watch_callback(
                self._key, on_response, start_revision=after_revision + 1
            )
        try:
            changed.wait(timeout)
        finally:
            with contextlib.suppress(Exception):
                self._client.cancel_watch(watch_id)

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (None: forever, 0: try once)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ok, revision = self._try_acquire()
            if ok:
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._wait_for_release(revision, remaining)

    def release(self) -> None:
        """Give the lock back if still held by this holder."""
        lease, self._lease = self._lease, None
        if lease is not None:
            # revoking our lease deletes the key only if it is still bound to it, i.e. ours
            with contextlib.suppress(Exception):
                lease.revoke()

    def refresh(self) -> None:
        """Extend the lease by ``ttl`` from now; raises Conflict if it was lost."""
        if self._lease is None:
            raise Conflict(f"lock {self._name} is not held")
        with self._store._rpc():
            responses = self._lease.refresh()
        if not responses or responses[0].TTL <= 0:
            raise Conflict(f"lock {self._name} is no longer held")

    def is_held(self) -> bool:
        """Whether this holder still holds the lock (its lease has not expired)."""
        value, _ = self._store._read(self._client.get, self._key)
        return value == self._holder


def _netloc(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` (an ``http://`` prefix and a missing port are fine)."""
    endpoint = endpoint.split("://", 1)[-1].rstrip("/")
    host, _, port = endpoint.rpartition(":")
    if not host:
        return endpoint, 2379
    return host, int(port)
