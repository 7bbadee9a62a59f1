"""The store followers of the hot path: the watched entity cache, the settle waiter and
the leader loop, on the memory and SQLite stores."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from engine import entities as E
from engine.store.cache import EntityCache
from engine.scheduler.leader import start_thread
from engine.store import open_store
from engine.store.waiter import SettleWaiter

from ..waiting import settles


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    store = open_store("memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/s.db")
    yield store
    store.close()


def eventually(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_cache_loads_existing_entities_and_follows_later_writes(store):
    store.add(E.new(E.FUNCTION, "o", "before", status=E.READY))
    cache = EntityCache(store, E.FUNCTION)
    try:
        assert eventually(lambda: cache.get("o", "before") is not None)
        fn = store.add(E.new(E.FUNCTION, "o", "after"))
        assert eventually(lambda: (cache.get("o", "after") or {}).get("status") == E.INITIALIZED)
        store.update(dict(fn, status=E.READY))
        assert eventually(lambda: cache.get("o", "after")["status"] == E.READY)
        store.delete(E.FUNCTION, "o", "after")
        assert eventually(lambda: cache.get("o", "after") is None)
        assert cache.get("other-org", "before") is None
    finally:
        cache.close()


def test_cache_hands_out_copies(store):
    store.add(E.new(E.FUNCTION, "o", "f", status=E.READY))
    cache = EntityCache(store, E.FUNCTION)
    try:
        assert eventually(lambda: cache.get("o", "f") is not None)
        cache.get("o", "f")["status"] = "MANGLED"
        assert cache.get("o", "f")["status"] == E.READY
    finally:
        cache.close()


def test_waiter_returns_once_another_thread_settles_the_entity(store):
    run = store.add(E.new(E.RUN, "o", "r1"))
    waiter = SettleWaiter(store, E.prefix(E.RUN))
    try:
        def finish():
            time.sleep(0.2)
            store.update(dict(store.get(E.RUN, "o", "r1"), status=E.READY, output=7))

        threading.Thread(target=finish).start()
        done = waiter.wait(E.key_of(run), lambda: store.get(E.RUN, "o", "r1"), timeout=10)
        assert done["status"] == E.READY and done["output"] == 7
    finally:
        waiter.close()


def test_waiter_gives_up_after_its_timeout_with_the_entity_as_it_is(store):
    run = store.add(E.new(E.RUN, "o", "r2"))
    waiter = SettleWaiter(store, E.prefix(E.RUN))
    try:
        start = time.monotonic()
        still = waiter.wait(E.key_of(run), lambda: store.get(E.RUN, "o", "r2"), timeout=0.3)
        assert still["status"] == E.INITIALIZED and time.monotonic() - start >= 0.3
    finally:
        waiter.close()


def test_waiter_is_woken_directly_by_a_writer_in_the_same_process(store):
    run = store.add(E.new(E.RUN, "o", "r3"))
    waiter = SettleWaiter(store, E.prefix(E.RUN))
    try:
        settled = dict(run, status=E.ERROR)
        threading.Timer(0.1, waiter.settled, args=(E.key_of(run), settled)).start()
        # the store never changes: only the direct notification can end this wait early
        done = waiter.wait(E.key_of(run), lambda: store.get(E.RUN, "o", "r3"), timeout=10)
        assert done["status"] == E.ERROR
    finally:
        waiter.close()


def test_waiter_watches_only_while_someone_waits(store):
    """The first wait opens the watch, idleness closes it, and a wait after that opens it
    again without missing a change made by another writer (the store, not settled())."""
    waiter = SettleWaiter(store, E.prefix(E.RUN), recheck_seconds=60, idle_seconds=0.05)
    try:
        assert not waiter.watching
        for round_ in range(2):
            name = f"lazy-{round_}"
            run = store.add(E.new(E.RUN, "o", name))
            reads = []

            def read():
                current = store.get(E.RUN, "o", name)
                if not reads:  # settled only once the waiter has read it: the watch must tell
                    threading.Thread(target=store.update, args=(dict(current, status=E.READY),)).start()
                reads.append(current)
                return current

            done = waiter.wait(E.key_of(run), read, timeout=60)
            assert done["status"] == E.READY and len(reads) == 1  # woken by the watch, not a re-read
            assert waiter.watching
            # nobody waits now: a change after idle_seconds closes the watch
            settles(lambda: store.add(E.new(E.RUN, "o", f"other-{uuid.uuid4()}")) and not waiter.watching,
                    "the idle watch closes")
    finally:
        waiter.close()


def test_only_one_leader_ticks_at_a_time_and_a_standby_takes_over(store):
    ticks: list[str] = []
    a_thread, stop_a = start_thread(store, "job", 0.05, lambda: ticks.append("a"))
    assert eventually(lambda: "a" in ticks)
    b_thread, stop_b = start_thread(store, "job", 0.05, lambda: ticks.append("b"))
    time.sleep(0.3)
    assert "b" not in ticks  # a holds the lock
    stop_a.set()
    a_thread.join(5)
    assert eventually(lambda: "b" in ticks)
    stop_b.set()
    b_thread.join(5)
