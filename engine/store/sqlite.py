"""The embedded store: one SQLite file in WAL mode, shared by threads and processes.

Layout: ``entities`` holds the current documents (indexed kinds also carry ``sort``, their
creation-time position, and ``grp``, their indexed field's value, with partial indexes
on both for :meth:`SqliteStore.page`); ``changes`` is the change log whose
AUTOINCREMENT key is the store's revision (one row per write, so revisions increase
strictly and are never reused, as etcd's do); ``locks`` holds lease rows.

Threads borrow connections from a small pool, so reads run concurrently; writes in one
process take a Python lock before ``BEGIN IMMEDIATE`` so that threads queue on it rather
than in SQLite's sleeping busy handler, which is left to arbitrate between processes.
Every write of a store object goes through one connection of its own, whose page cache
then holds the pages it wrote (a pooled connection would find them changed by another
connection, and read them again).

Entity writes are committed in groups: a writer queues its write and takes the lock;
whoever holds it commits every write queued by then in one transaction, each inside a
savepoint of its own, so that one write's Conflict or stale revision undoes that write
alone. A writer whose write a previous holder committed finds it done and returns. Under
concurrent writes, one ``BEGIN``/``COMMIT`` (and one WAL append) serves many writes; a
lone write costs what it did.

The write-ahead log is copied into the database file by a thread of the store's own
(every :data:`CHECKPOINT_INTERVAL` seconds), not by the commit that happens to fill it:
SQLite's automatic checkpoint runs inside a commit and waits for the file's fsync, which
made one write in a few hundred several milliseconds slower — the p99 of a blocking run
(README, "Performance"). A crash loses nothing either way: committed transactions stay
in the log until a checkpoint has copied them. The log starts again from its beginning
only when a write finds all of it copied, which writes coming during every checkpoint
would never let happen (the log grew by some 50 KB a run, without end): so once the log
is past :data:`CHECKPOINT_HOLD_FRAMES`, the checkpointer copies what came during its own
pass with this process's writes held back — a short pass, once a round at most — and the
file is cut back to :data:`WAL_SIZE_LIMIT` when the log restarts.

``watch`` is woken at once by writes made through this store object. Writes made by other
processes (or other store objects) are noticed by a poller thread that reads the latest
revision every :data:`POLL_INTERVAL` seconds while any watch is open: those reach a
watch within about 25 ms. The change log keeps the last :data:`codec.HISTORY` changes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
import weakref
from typing import Any, Iterable, Iterator, Mapping

from .. import entities
from ..entities import Entity
from ..errors import Conflict
from . import codec
from .base import Lock, Page, Store, Watch, WatchEvent, matches, retry_until

log = logging.getLogger("dispatch.store.sqlite")

#: how often changes made by other processes are looked for while a watch is open
POLL_INTERVAL = 0.025
#: seconds a write waits for another process's write transaction before failing
BUSY_TIMEOUT = 10.0
#: idle connections kept for reuse
POOL_SIZE = 8
#: every this many writes, the change log is cut back to codec.HISTORY entries
PRUNE_EVERY = 1000
#: changes read by one query of a watch
BATCH = 256
#: how often the write-ahead log is checkpointed while writes come
CHECKPOINT_INTERVAL = 1.0
#: the log's length (pages) past which a checkpoint ends with writes held back, so that
#: the log starts again (64 MiB of 4 KiB pages)
CHECKPOINT_HOLD_FRAMES = 16384
#: what the log's file is cut back to when the log starts again
WAL_SIZE_LIMIT = 64 << 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, org TEXT NOT NULL, name TEXT NOT NULL,
    revision INTEGER NOT NULL, value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL, type TEXT NOT NULL, value TEXT
);
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
"""

#: the creation-time index (added to older files at open)
INDEX_SCHEMA = """
CREATE INDEX IF NOT EXISTS entities_created ON entities (kind, org, sort, key)
    WHERE sort IS NOT NULL;
CREATE INDEX IF NOT EXISTS entities_created_by_field ON entities (kind, org, grp, sort, key)
    WHERE sort IS NOT NULL;
"""


class _Write:
    """One entity write waiting for a group commit."""

    __slots__ = ("op", "done", "result", "error")

    def __init__(self, op) -> None:
        self.op = op
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class SqliteStore(Store):
    """The store in the SQLite file at ``path`` (its directory is created if missing)."""

    def __init__(self, path: str) -> None:
        self.path = path
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self._idle: list[sqlite3.Connection] = []
        #: the connection every write goes through (used with _write_lock held)
        self._write_db: sqlite3.Connection | None = None
        self._pool_lock = threading.Lock()
        self._write_lock = threading.Lock()
        #: entity writes waiting for the next group commit (guarded by _pending_lock)
        self._pending: list[_Write] = []
        self._pending_lock = threading.Lock()
        self._writes = 0
        self._closed = False
        self._closing = threading.Event()  # ends the poller's sleep at close()
        # watches wait on this; _latest is the highest revision known to be committed
        self._cond = threading.Condition()
        # open watches; each waits on its own condition (over the same lock), so that a
        # write wakes only the watches whose prefix covers its key
        self._watches: set[_SqliteWatch] = set()
        self._poller: threading.Thread | None = None
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            self._add_index_columns(db)
            db.executescript(INDEX_SCHEMA)
            self._latest = self._current(db)
        threading.Thread(target=_checkpoint_now_and_then, args=(weakref.ref(self),),
                         daemon=True, name=f"sqlite-checkpointer {self.path}").start()

    # -- connections and transactions -------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False: a pooled connection moves between threads, but is
        # only ever used by one at a time
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread's work
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        return db

    def _checkpoint(self) -> None:
        """Copy what the log gained into the database file, without blocking readers or
        writers (PASSIVE; with nothing new, a look at the log's header); if the log is
        long, copy what came meanwhile with writes held back, so that the next write
        starts the log again (see the module)."""
        try:
            with self._connection() as db:
                _busy, pages, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if pages >= CHECKPOINT_HOLD_FRAMES:
                with self._write_lock:
                    if not self._closed:
                        self._writer().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # busy or closing: the next round tries again
            log.debug("sqlite.checkpoint_failed error=%r", exc)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = self._connect()
        try:
            yield db
        finally:
            with self._pool_lock:
                if self._closed or len(self._idle) >= POOL_SIZE:
                    db.close()
                else:
                    self._idle.append(db)

    def _writer(self) -> sqlite3.Connection:
        """The writes' connection (call with ``_write_lock`` held)."""
        if self._write_db is None:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            self._write_db = self._connect()
        return self._write_db

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A write (``BEGIN IMMEDIATE``) or a read snapshot (``BEGIN``), rolled back on error."""
        with self._write_lock if write else contextlib.nullcontext():
            with contextlib.nullcontext(self._writer()) if write else self._connection() as db:
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    # never hand a connection back to the pool inside a transaction
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise

    def _write(self, op) -> Any:
        """Run ``op(db)`` inside a write transaction, grouped with the writes queued
        meanwhile by other threads (see the module's documentation); returns what it
        returns, or raises what it raised."""
        item = _Write(op)
        with self._pending_lock:
            self._pending.append(item)
        with self._write_lock:
            if not item.done:  # nobody committed it yet: commit it, and all queued with it
                with self._pending_lock:
                    group, self._pending = self._pending, []
                self._commit_group(group)
        if item.error is not None:
            raise item.error
        return item.result

    def _commit_group(self, group: list["_Write"]) -> None:
        """One transaction for ``group``; each write in a savepoint (call with the lock)."""
        try:
            db = self._writer()
            db.execute("BEGIN IMMEDIATE")
            try:
                if len(group) == 1:  # alone: its failure undoes the whole transaction
                    item = group[0]
                    try:
                        item.result = item.op(db)
                    except Exception as exc:
                        db.execute("ROLLBACK")
                        item.error = exc
                        return
                else:
                    for item in group:
                        db.execute("SAVEPOINT write")
                        try:
                            item.result = item.op(db)
                        except Exception as exc:  # its own failure undoes it alone
                            db.execute("ROLLBACK TO write")
                            item.error = exc
                        db.execute("RELEASE write")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except BaseException as exc:  # nothing of the group was written
            for item in group:
                if item.error is None:
                    item.result, item.error = None, exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for item in group:
                item.done = True

    @staticmethod
    def _add_index_columns(db: sqlite3.Connection) -> None:
        """Give a file made before the creation index its columns, filled in."""
        columns = {row[1] for row in db.execute("PRAGMA table_info(entities)")}
        if "sort" in columns:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(entities)")}
            if "sort" not in columns:  # another process may have done it meanwhile
                db.execute("ALTER TABLE entities ADD COLUMN sort TEXT")
                db.execute("ALTER TABLE entities ADD COLUMN grp TEXT")
                for kind, field in codec.INDEXED.items():
                    rows = db.execute("SELECT key, value FROM entities WHERE kind = ?",
                                      (kind,)).fetchall()
                    for key, value in rows:
                        entity = json.loads(value)
                        db.execute("UPDATE entities SET sort = ?, grp = ? WHERE key = ?",
                                   (codec.sort_key(entity), entity.get(field), key))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _current(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return row[0] if row else 0

    def _log(self, db: sqlite3.Connection, key: str, value: str | None) -> int:
        """Append a change (a put, or a delete if ``value`` is None); returns its revision."""
        type_ = "put" if value is not None else "delete"
        revision = db.execute(
            "INSERT INTO changes (key, type, value) VALUES (?, ?, ?)", (key, type_, value)
        ).lastrowid
        self._writes += 1
        if self._writes % PRUNE_EVERY == 0:
            db.execute("DELETE FROM changes WHERE revision <= ?", (revision - codec.HISTORY,))
        return revision

    def _published(self, revision: int, key: str) -> None:
        """Wake the watches of this store that cover ``key``, after a committed write."""
        with self._cond:
            self._latest = max(self._latest, revision)
            for watch in self._watches:
                if key.startswith(watch._prefix):
                    watch._wake()

    def _wake_all(self) -> None:
        """Wake every watch (a write by another process: its key is not known here)."""
        with self._cond:
            for watch in self._watches:
                watch._wake()
            self._cond.notify_all()

    # -- entities ---------------------------------------------------------------------

    def add(self, entity: Entity) -> Entity:
        """Write a new entity; Conflict if its key exists. Returns it with its revision."""
        key, stored = codec.for_add(entity)
        value = codec.encode(stored)
        kind, org, name = entities.parse_key(key)

        def write(db: sqlite3.Connection) -> int:
            # the change first: a taken key fails the insert, and the write's rollback
            # takes the change (and its revision) back
            revision = self._log(db, key, value)
            indexed = codec.INDEXED.get(kind)
            try:
                db.execute(
                    "INSERT INTO entities (key, kind, org, name, revision, value, sort, grp)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, kind, org, name, revision, value,
                     codec.sort_key(stored) if indexed else None,
                     stored.get(indexed) if indexed else None),
                )
            except sqlite3.IntegrityError:  # the key's primary-key constraint
                raise codec.already_exists(stored) from None
            return revision

        revision = self._write(write)
        self._published(revision, key)
        return codec.decode(value, revision)

    def get(self, kind: str, org: str, name: str) -> Entity:
        """The entity at ``/dispatch/<kind>/<org>/<name>``; NotFound if absent."""
        key = entities.key(kind, org, name)
        with self._connection() as db:
            row = db.execute(
                "SELECT revision, value FROM entities WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            raise codec.not_found(key)
        return codec.decode(row[1], row[0])

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
        query = "SELECT revision, value FROM entities WHERE key >= ? AND key < ?"
        params: list[Any] = [prefix, codec.prefix_end(prefix)]
        if status is not None:
            # filtered in SQL too, so that finding the few runs in transit does not decode
            # every run ever made (matches() below still applies every filter)
            wanted = [status] if isinstance(status, str) else list(status)
            query += f" AND json_extract(value, '$.status') IN ({','.join('?' * len(wanted))})"
            params += wanted
        with self._connection() as db:
            rows = db.execute(query + " ORDER BY key", params).fetchall()
        decoded = (codec.decode(value, revision) for revision, value in rows)
        return [e for e in decoded if matches(e, status, tags, fields)]

    def page(self, kind: str, org: str, *, limit: int, token: str | None = None,
             field: tuple[str, Any] | None = None, oldest_first: bool = False) -> Page:
        """A page of an indexed kind from the creation index: ``limit + 1`` rows read."""
        codec.indexed_field(kind, field)
        query = ("SELECT revision, value FROM entities"
                 " WHERE kind = ? AND org = ? AND sort IS NOT NULL")
        params: list[Any] = [kind, org]
        if field is not None:
            query += " AND grp = ?"
            params.append(field[1])
        if token:
            sort, name = codec.decode_token(token)
            # a range on sort (which the index serves), then the tie on the same instant
            query += (f" AND sort {'>=' if oldest_first else '<='} ?"
                      f" AND (sort {'>' if oldest_first else '<'} ? OR key > ?)")
            params += [sort, sort, entities.key(kind, org, name)]
        query += f" ORDER BY sort {'ASC' if oldest_first else 'DESC'}, key ASC LIMIT ?"
        params.append(limit + 1)
        with self._connection() as db:
            rows = db.execute(query, params).fetchall()
        items = [codec.decode(value, revision) for revision, value in rows[:limit]]
        more = len(rows) > limit
        return Page(items, codec.encode_token(items[-1]) if more and items else None)

    def count(self, kind: str, org: str, *, field: tuple[str, Any] | None = None) -> int:
        codec.indexed_field(kind, field)
        query = "SELECT COUNT(*) FROM entities WHERE kind = ? AND org = ? AND sort IS NOT NULL"
        params: list[Any] = [kind, org]
        if field is not None:
            query += " AND grp = ?"
            params.append(field[1])
        with self._connection() as db:
            return db.execute(query, params).fetchone()[0]

    def update(self, entity: Entity) -> Entity:
        """Replace the stored entity if its revision equals ``entity["revision"]``."""
        key, stored = codec.for_update(entity)
        value = codec.encode(stored)
        expected = entity.get("revision")

        def write(db: sqlite3.Connection) -> int:
            # the change first, then the compare-and-set; a miss is rolled back with it
            revision = self._log(db, key, value)
            if db.execute(
                "UPDATE entities SET revision = ?, value = ? WHERE key = ? AND revision = ?",
                (revision, value, key, expected),
            ).rowcount != 1:
                raise codec.stale(key, expected, self._stored_revision(db, key))
            return revision

        revision = self._write(write)
        self._published(revision, key)
        return codec.decode(value, revision)

    def delete(self, kind: str, org: str, name: str, revision: int | None = None) -> None:
        """Remove the entity (if ``revision`` is given, only if it still matches)."""
        key = entities.key(kind, org, name)

        def write(db: sqlite3.Connection) -> int:
            stored_revision = self._stored_revision(db, key)
            if revision is not None and stored_revision != revision:
                raise codec.stale(key, revision, stored_revision)
            written = self._log(db, key, None)
            db.execute("DELETE FROM entities WHERE key = ?", (key,))
            return written

        written = self._write(write)
        self._published(written, key)

    @staticmethod
    def _stored_revision(db: sqlite3.Connection, key: str) -> int:
        """The revision stored for ``key``; NotFound if it is absent."""
        row = db.execute("SELECT revision FROM entities WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise codec.not_found(key)
        return row[0]

    def revision(self) -> int:
        """The store's current revision (that of its last write)."""
        with self._connection() as db:
            return self._current(db)

    # -- watches ----------------------------------------------------------------------

    def watch(self, prefix: str, from_revision: int | None = None) -> Watch:
        """Changes under ``prefix`` from ``from_revision`` (inclusive) or from now.

        Changes older than the last :data:`codec.HISTORY` writes are no longer retained:
        a watch from an older revision starts at the oldest one kept.
        """
        start = self.revision() + 1 if from_revision is None else from_revision
        watch = _SqliteWatch(self, prefix, start)
        with self._cond:
            self._watches.add(watch)
            if self._poller is None:
                self._poller = threading.Thread(
                    target=self._poll, name=f"sqlite-watch-poller {self.path}", daemon=True
                )
                self._poller.start()
        return watch

    def _poll(self) -> None:
        """While watches are open, notice writes committed by other processes."""
        while True:
            with self._cond:
                if self._closed or not self._watches:
                    self._poller = None
                    return
            if self._closing.wait(POLL_INTERVAL):
                continue
            try:
                latest = self.revision()
            except sqlite3.Error:
                continue  # e.g. the store was closed meanwhile; the check above ends us
            if latest > self._latest:
                with self._cond:
                    self._latest = max(self._latest, latest)
                self._wake_all()

    def _changes(self, prefix: str, start: int) -> tuple[list[tuple[int, str, str, str]], int]:
        """Changes under ``prefix`` from ``start`` on, and the revision read up to.

        Both come from one snapshot, and revisions are committed in order, so no change
        up to the returned revision can appear later.
        """
        upper = codec.prefix_end(prefix) if prefix else "\U0010ffff"
        with self._transaction(write=False) as db:
            latest = self._current(db)
            rows = db.execute(
                "SELECT revision, key, type, value FROM changes"
                " WHERE revision >= ? AND key >= ? AND key < ? ORDER BY revision LIMIT ?",
                (start, prefix, upper, BATCH),
            ).fetchall()
        return rows, rows[-1][0] if len(rows) == BATCH else latest

    def _wait_for_change(self, watch: "_SqliteWatch") -> None:
        """Block until a write may have touched ``watch``'s prefix, or it is closed."""
        with self._cond:
            while not watch.closed and not self._closed and not watch._woken:
                # the timeout only guards against a missed wake-up; it is not the hot path
                watch._cond.wait(1.0)
            watch._woken = False

    def _watch_closed(self, watch: "_SqliteWatch") -> None:
        with self._cond:
            self._watches.discard(watch)
            watch._wake()

    # -- locks and lifetime -----------------------------------------------------------

    def lock(self, name: str, ttl: float) -> Lock:
        """A lock for ``name`` shared by every process using this file."""
        return _SqliteLock(self, name, ttl)

    def close(self) -> None:
        """Close pooled connections and end open watches."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()
        with self._write_lock:  # after the write in progress, if any
            if self._write_db is not None:
                self._write_db.close()
                self._write_db = None
        self._closing.set()
        self._wake_all()


def _checkpoint_now_and_then(ref: "weakref.ref[SqliteStore]") -> None:
    """The checkpointer thread of a store: a checkpoint a round until the store is
    closed, or dropped without being closed (the thread holds it weakly)."""
    while True:
        store = ref()
        if store is None or store._closing.wait(0):
            return
        closing = store._closing
        del store
        if closing.wait(CHECKPOINT_INTERVAL):
            return
        store = ref()
        if store is None:
            return
        store._checkpoint()
        del store


class _SqliteWatch(Watch):
    def __init__(self, store: SqliteStore, prefix: str, start: int) -> None:
        self._store = store
        self._prefix = prefix
        self._next = start
        self.closed = False
        # set (under the store's lock) when a write may concern this watch
        self._woken = False
        self._cond = threading.Condition(store._cond._lock)

    def _wake(self) -> None:
        """Mark a possible change and wake the iterating thread; the store's lock is held."""
        self._woken = True
        self._cond.notify()

    def __iter__(self) -> Iterator[WatchEvent]:
        """Yield events in revision order; blocks for the next one; ends after close()."""
        while not self.closed and not self._store._closed:
            rows, read_to = self._store._changes(self._prefix, self._next)
            for revision, key, type_, value in rows:
                if self.closed:
                    return
                entity = None if value is None else codec.decode(value, revision)
                yield WatchEvent(type_, key, revision, entity)
            self._next = max(self._next, read_to + 1)
            if not rows:
                self._store._wait_for_change(self)

    def close(self) -> None:
        """Stop the stream; a blocked iteration ends. Safe to call twice."""
        if not self.closed:
            self.closed = True
            self._store._watch_closed(self)


class _SqliteLock(Lock):
    def __init__(self, store: SqliteStore, name: str, ttl: float) -> None:
        self._store = store
        self._name = name
        self._ttl = ttl
        self._holder = uuid.uuid4().hex

    def _try_acquire(self) -> bool:
        # wall-clock expiry, because the row is read by other processes
        now = time.time()
        with self._store._transaction() as db:
            row = db.execute(
                "SELECT holder, expires_at FROM locks WHERE name = ?", (self._name,)
            ).fetchone()
            if row is not None and row[0] != self._holder and row[1] > now:
                return False
            db.execute(
                "INSERT OR REPLACE INTO locks (name, holder, expires_at) VALUES (?, ?, ?)",
                (self._name, self._holder, now + self._ttl),
            )
            return True

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds (None: forever, 0: try once)."""
        return retry_until(self._try_acquire, timeout)

    def release(self) -> None:
        """Give the lock back if still held by this holder."""
        with self._store._transaction() as db:
            db.execute(
                "DELETE FROM locks WHERE name = ? AND holder = ?", (self._name, self._holder)
            )

    def refresh(self) -> None:
        """Extend the lease by ``ttl`` from now; raises Conflict if it was lost."""
        now = time.time()
        with self._store._transaction() as db:
            updated = db.execute(
                "UPDATE locks SET expires_at = ? WHERE name = ? AND holder = ? AND expires_at > ?",
                (now + self._ttl, self._name, self._holder, now),
            ).rowcount
        if not updated:
            raise Conflict(f"lock {self._name} is no longer held")

    def is_held(self) -> bool:
        """Whether this holder still holds the lock (its lease has not expired)."""
        with self._store._connection() as db:
            row = db.execute(
                "SELECT 1 FROM locks WHERE name = ? AND holder = ? AND expires_at > ?",
                (self._name, self._holder, time.time()),
            ).fetchone()
        return row is not None
