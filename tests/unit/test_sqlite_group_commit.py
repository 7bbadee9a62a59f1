"""The SQLite store's group commit: writes queued while another thread commits go out
together in one transaction, and one write's failure undoes that write alone; its log
copied into the database by a thread of its own, and started again under steady writes."""

from __future__ import annotations

import os
import threading

import pytest

from engine import entities as E
from engine.errors import Conflict, StaleRevision
from engine.store import sqlite as sqlite_store
from engine.store.sqlite import SqliteStore
from tests.waiting import settles

from ..group_commit import write_together


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(str(tmp_path / "dispatch.db"))
    yield s
    s.close()


def test_writes_queued_meanwhile_commit_together_and_a_failed_one_undoes_only_itself(store):
    existing = store.add(E.new(E.RUN, "org", "taken", status=E.READY))
    stale = dict(existing)
    store.update(dict(existing, status=E.ERROR))  # `stale` now holds an old revision
    calls = {f"add{i}": (lambda i=i: store.add(E.new(E.RUN, "org", f"run{i}", status=E.READY)))
             for i in range(5)}
    calls["duplicate"] = lambda: store.add(E.new(E.RUN, "org", "taken", status=E.READY))
    calls["stale"] = lambda: store.update(dict(stale, status=E.CREATING))
    before = store.revision()
    results = write_together(store, calls)
    assert isinstance(results["duplicate"], Conflict)
    assert isinstance(results["stale"], StaleRevision)
    revisions = sorted(results[f"add{i}"]["revision"] for i in range(5))
    # five writes, one after the other in the change log, nothing of the failed ones
    assert revisions == list(range(before + 1, before + 6))
    assert store.revision() == before + 5
    assert store.get(E.RUN, "org", "taken")["status"] == E.ERROR
    assert sorted(r["name"] for r in store.list(E.RUN, "org")) == [
        "run0", "run1", "run2", "run3", "run4", "taken"]


def test_a_lone_write_still_commits_at_once(store):
    run = store.add(E.new(E.RUN, "org", "one", status=E.INITIALIZED))
    updated = store.update(dict(run, status=E.READY))
    assert updated["revision"] == run["revision"] + 1
    store.delete(E.RUN, "org", "one")
    with pytest.raises(Exception):
        store.get(E.RUN, "org", "one")


def test_the_log_is_copied_into_the_database_by_the_stores_thread_not_by_commits(tmp_path):
    path = tmp_path / "dispatch.db"
    store = SqliteStore(str(path))
    try:
        with store._connection() as db:  # commits never checkpoint: the thread does
            assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        before = os.path.getsize(path)
        for i in range(300):
            store.add(E.new(E.RUN, "org", f"run{i}", status=E.READY, input={"pad": "x" * 500}))
        grown = threading.Event()
        for _ in range(600):  # the checkpointer's round is a second; wait up to a minute
            if os.path.getsize(path) > before + 100_000:
                grown.set()
                break
            grown.wait(0.1)
        assert grown.is_set(), "the log was never copied into the database file"
    finally:
        store.close()
    assert not [t for t in threading.enumerate()
                if t.name == f"sqlite-checkpointer {path}" and t.is_alive()
                and not t.join(10) and t.is_alive()]


def test_a_store_dropped_without_close_ends_its_checkpointer(tmp_path):
    import gc

    path = tmp_path / "dropped.db"
    store = SqliteStore(str(path))
    store.add(E.new(E.RUN, "org", "one", status=E.READY))
    del store
    gc.collect()
    threads = [t for t in threading.enumerate() if t.name == f"sqlite-checkpointer {path}"]
    for thread in threads:
        thread.join(30)  # it notices within a round
    assert not any(t.is_alive() for t in threads)


def test_the_log_starts_again_under_writes_that_never_pause(tmp_path, monkeypatch):
    # a log restarts only when a write finds all of it copied: with writes coming during
    # every checkpoint, it would grow for ever; the checkpointer's pass with writes held
    # back lets it restart, and its file is then cut back (seen here as a file that
    # shrinks while the writes go on)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 0.05)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_HOLD_FRAMES", 64)
    monkeypatch.setattr(sqlite_store, "WAL_SIZE_LIMIT", 256 << 10)
    path = tmp_path / "busy.db"
    store = SqliteStore(str(path))
    stop = threading.Event()

    def write(n: int) -> None:
        i = 0
        while not stop.is_set():
            store.add(E.new(E.RUN, "org", f"run{n}-{i}", status=E.READY, input={"pad": "x" * 500}))
            i += 1

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in writers:
        t.start()
    try:
        sizes = [0]

        def shrank() -> bool:
            size = os.path.getsize(f"{path}-wal")
            shrinking = size < sizes[-1]
            sizes.append(size)
            return shrinking

        settles(shrank, "the log to start again while writes go on", seconds=15, interval=0.002)
    finally:
        stop.set()
        for t in writers:
            t.join()
        store.close()
