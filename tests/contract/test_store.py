"""The store contract: every backend (memory, SQLite, a real etcd) gives the same guarantees.

Each test works in its own organization (and, where it lists across organizations, its
own kinds), so that tests sharing one etcd never see each other's entities.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import pyetcd
import pytest

from engine import entities
from engine.errors import Conflict, NotFound, StaleRevision
from engine.store import Store, Watch, WatchEvent, open_store
from engine.store import codec
from engine.store import sqlite as sqlite_backend
from engine.store.etcd import EtcdStore
from engine.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(params=["memory", "sqlite", "etcd"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        # in a directory that does not exist yet: the store creates it
        return f"sqlite://{tmp_path / 'store' / 'dispatch.db'}"
    return f"etcd://{request.getfixturevalue('etcd_endpoint')}"


@pytest.fixture
def store(store_url: str):
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def org() -> str:
    return f"org-{uuid.uuid4().hex[:12]}"


def function(org: str, name: str, **fields) -> dict:
    return entities.new(entities.FUNCTION, org, name, **fields)


class Collector:
    """Iterates a watch in a thread, so that a test can wait for events with a timeout."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.events: queue.Queue[WatchEvent] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for event in self.watch:
            self.events.put(event)

    def take(self, count: int, timeout: float = 5.0) -> list[WatchEvent]:
        return [self.events.get(timeout=timeout) for _ in range(count)]


# -- entities -----------------------------------------------------------------------------


def test_add_returns_the_entity_with_its_revision_and_get_reads_it(store: Store, org: str):
    added = store.add(function(org, "hello", image="img"))
    assert added["revision"] > 0
    assert store.get(entities.FUNCTION, org, "hello") == added
    assert added["image"] == "img"


def test_add_existing_key_conflicts(store: Store, org: str):
    store.add(function(org, "hello"))
    with pytest.raises(Conflict, match="^Function hello already exists$") as raised:
        store.add(function(org, "hello"))
    assert not isinstance(raised.value, StaleRevision)


def test_add_keeps_the_entity_times_and_ignores_its_revision(store: Store, org: str):
    entity = function(org, "hello", createdTime=1000, modifiedTime=2000, revision=99999)
    added = store.add(entity)
    assert (added["createdTime"], added["modifiedTime"]) == (1000, 2000)
    assert added["revision"] == store.revision() != 99999


def test_get_missing_entity_is_not_found(store: Store, org: str):
    with pytest.raises(NotFound, match="^Function nothing not found$"):
        store.get(entities.FUNCTION, org, "nothing")


def test_update_returns_new_revision_and_modified_time(store: Store, org: str):
    added = store.add(function(org, "hello", createdTime=1000, modifiedTime=1000))
    updated = store.update({**added, "status": entities.READY})
    assert updated["revision"] > added["revision"]
    assert updated["modifiedTime"] >= int(time.time()) - 1
    assert updated["createdTime"] == 1000
    assert store.get(entities.FUNCTION, org, "hello") == updated


def test_modify_starts_again_from_a_fresh_read_when_another_write_came_between(
        store: Store, org: str):
    store.add(function(org, "hello", status=entities.CREATING))
    calls = []

    def change(fn):
        calls.append(fn["status"])
        if len(calls) == 1:  # a job moves the status on between this read and the write
            store.update({**store.get(entities.FUNCTION, org, "hello"),
                          "status": entities.READY})
        return {**fn, "delete": True}

    changed = store.modify(entities.FUNCTION, org, "hello", change)
    assert calls == [entities.CREATING, entities.READY]
    assert changed["status"] == entities.READY and changed["delete"] is True
    assert store.get(entities.FUNCTION, org, "hello") == changed


def test_modify_writes_nothing_when_the_change_declines_or_refuses(store: Store, org: str):
    added = store.add(function(org, "hello"))
    assert store.modify(entities.FUNCTION, org, "hello", lambda fn: None) == added

    def refuse(fn):
        fn["status"] = entities.ERROR
        raise Conflict("no")

    with pytest.raises(Conflict):
        store.modify(entities.FUNCTION, org, "hello", refuse)
    assert store.get(entities.FUNCTION, org, "hello") == added
    with pytest.raises(NotFound):
        store.modify(entities.FUNCTION, org, "missing", lambda fn: fn)


def test_modify_gives_up_with_stale_revision_after_its_attempts(store: Store, org: str):
    store.add(function(org, "hello", count=0))

    def always_raced(fn):
        current = store.get(entities.FUNCTION, org, "hello")
        store.update({**current, "count": current["count"] + 1})
        return fn

    with pytest.raises(StaleRevision):
        store.modify(entities.FUNCTION, org, "hello", always_raced, attempts=3)
    assert store.get(entities.FUNCTION, org, "hello")["count"] == 3


def test_update_with_stale_revision_conflicts(store: Store, org: str):
    added = store.add(function(org, "hello"))
    store.update({**added, "status": entities.READY})
    with pytest.raises(StaleRevision):
        store.update({**added, "status": entities.ERROR})
    assert store.get(entities.FUNCTION, org, "hello")["status"] == entities.READY


def test_update_of_a_missing_entity_is_not_found_and_creates_nothing(store: Store, org: str):
    for revision in (0, 12345):
        with pytest.raises(NotFound, match="^Function ghost not found$"):
            store.update({**function(org, "ghost"), "revision": revision})
    assert store.list(entities.FUNCTION, org) == []


def test_delete_removes_the_entity(store: Store, org: str):
    added = store.add(function(org, "hello"))
    store.delete(entities.FUNCTION, org, "hello", revision=added["revision"])
    with pytest.raises(NotFound):
        store.get(entities.FUNCTION, org, "hello")
    with pytest.raises(NotFound):
        store.delete(entities.FUNCTION, org, "hello")


def test_delete_with_stale_revision_conflicts_and_keeps_the_entity(store: Store, org: str):
    added = store.add(function(org, "hello"))
    store.update(added)
    with pytest.raises(StaleRevision):
        store.delete(entities.FUNCTION, org, "hello", revision=added["revision"])
    store.get(entities.FUNCTION, org, "hello")


def test_revisions_increase_with_every_write(store: Store, org: str):
    before = store.revision()
    a = store.add(function(org, "a"))
    b = store.add(function(org, "b"))
    a2 = store.update(a)
    store.delete(entities.FUNCTION, org, "b")
    after_delete = store.revision()
    c = store.add(function(org, "c"))
    assert before < a["revision"] < b["revision"] < a2["revision"] < after_delete < c["revision"]
    assert store.revision() == c["revision"]
    assert store.get(entities.FUNCTION, org, "a")["revision"] == a2["revision"]


def test_returned_entities_are_copies(store: Store, org: str):
    entity = function(org, "hello", tags=[{"key": "team", "value": "a"}])
    added = store.add(entity)
    entity["tags"][0]["value"] = "changed"
    added["tags"].append({"key": "x", "value": "y"})
    store.get(entities.FUNCTION, org, "hello")["tags"].clear()
    store.list(entities.FUNCTION, org)[0]["status"] = entities.ERROR
    assert store.get(entities.FUNCTION, org, "hello")["tags"] == [{"key": "team", "value": "a"}]
    assert store.get(entities.FUNCTION, org, "hello")["status"] == entities.INITIALIZED


def test_list_filters_by_status_tags_and_fields(store: Store, org: str):
    team_a = [{"key": "team", "value": "a"}]
    store.add(function(org, "f1", status=entities.READY, tags=team_a, image="x"))
    store.add(function(org, "f2", status=entities.READY, tags=team_a, image="y"))
    store.add(function(org, "f3", status=entities.ERROR, tags=team_a, image="x"))
    store.add(function(org, "f4", status=entities.READY, image="x"))

    def names(**filters) -> list[str]:
        return [e["name"] for e in store.list(entities.FUNCTION, org, **filters)]

    assert names() == ["f1", "f2", "f3", "f4"]
    assert names(status=entities.READY) == ["f1", "f2", "f4"]
    assert names(status=[entities.ERROR, entities.CREATING]) == ["f3"]
    assert names(tags={"team": "a"}) == ["f1", "f2", "f3"]
    assert names(tags={"team": "b"}) == []
    assert names(fields={"image": "x"}) == ["f1", "f3", "f4"]
    assert names(status=entities.READY, tags={"team": "a"}, fields={"image": "x"}) == ["f1"]


def test_list_is_scoped_by_org_and_kind(store: Store):
    # a kind that is a prefix of another must not pick up the other's entities
    kind = f"k{uuid.uuid4().hex[:8]}"
    longer_kind = kind + "x"
    for org in ("org-a", "org-b"):
        store.add(entities.new(kind, org, "n1"))
        store.add(entities.new(longer_kind, org, "n2"))

    def keys(kind_: str, org: str | None = None) -> list[tuple[str, str]]:
        return [(e["organizationId"], e["name"]) for e in store.list(kind_, org)]

    assert keys(kind, "org-a") == [("org-a", "n1")]
    assert keys(kind) == [("org-a", "n1"), ("org-b", "n1")]
    assert keys(longer_kind) == [("org-a", "n2"), ("org-b", "n2")]
    assert keys(kind, "org") == []


def test_list_is_ordered_by_key(store: Store, org: str):
    for name in ("b", "c", "a", "a-1"):
        store.add(function(org, name))
    assert [e["name"] for e in store.list(entities.FUNCTION, org)] == ["a", "a-1", "b", "c"]


def run(org: str, name: str, created: float, function: str = "f", **fields) -> dict:
    return entities.new(entities.RUN, org, name, functionName=function, createdAt=created,
                        **fields)


def walk(store: Store, org: str, limit: int, **options) -> list[list[str]]:
    """Every page's names, following tokens to the end."""
    pages, token = [], None
    while True:
        page = store.page(entities.RUN, org, limit=limit, token=token, **options)
        pages.append([e["name"] for e in page.items])
        token = page.token
        if token is None:
            return pages


def test_page_lists_newest_first_by_creation_then_continues_from_its_token(
        store: Store, org: str):
    for i, created in enumerate([5.0, 1.0, 3.0, 4.0, 2.0, 3.0]):
        store.add(run(org, f"r{i}", 1_700_000_000 + created))
    # r2 and r5 were made the same instant: the name breaks the tie, ascending
    assert walk(store, org, 2) == [["r0", "r3"], ["r2", "r5"], ["r4", "r1"]]
    assert walk(store, org, 4, oldest_first=True) == [["r1", "r4", "r2", "r5"], ["r3", "r0"]]
    assert walk(store, org, 10) == [["r0", "r3", "r2", "r5", "r4", "r1"]]
    assert store.count(entities.RUN, org) == 6


def test_page_finds_runs_far_apart_in_time_and_in_the_future(store: Store, org: str):
    now = time.time()
    ages = {"future": -30, "now": 0, "hour": 3600, "year": 365 * 86400, "old": 20 * 365 * 86400}
    for name, age in ages.items():
        store.add(run(org, name, now - age))
    assert walk(store, org, 2) == [["future", "now"], ["hour", "year"], ["old"]]
    assert walk(store, org, 3, oldest_first=True) == [["old", "year", "hour"], ["now", "future"]]


def test_page_by_the_indexed_field_and_count(store: Store, org: str):
    for i in range(7):
        store.add(run(org, f"r{i}", 1_700_000_000 + i, function="even" if i % 2 == 0 else "odd"))
    assert walk(store, org, 3, field=("functionName", "even")) == [["r6", "r4", "r2"], ["r0"]]
    assert walk(store, org, 3, field=("functionName", "odd")) == [["r5", "r3", "r1"]]
    assert store.count(entities.RUN, org, field=("functionName", "odd")) == 3
    assert store.page(entities.RUN, org, limit=3, field=("functionName", "none")).items == []
    with pytest.raises(ValueError, match="functionName"):
        store.page(entities.RUN, org, limit=3, field=("status", "READY"))
    with pytest.raises(ValueError, match="not indexed"):
        store.page(entities.FUNCTION, org, limit=3)


def test_page_follows_updates_and_deletes_and_keeps_its_place(store: Store, org: str):
    for i in range(6):
        store.add(run(org, f"r{i}", 1_700_000_000 + i))
    first = store.page(entities.RUN, org, limit=2)
    assert [e["name"] for e in first.items] == ["r5", "r4"]
    store.update(dict(store.get(entities.RUN, org, "r3"), status="READY"))
    store.delete(entities.RUN, org, "r2")
    store.add(run(org, "r6", 1_700_000_100))  # newer than the walk's start: not repeated
    rest = store.page(entities.RUN, org, limit=10, token=first.token)
    assert [e["name"] for e in rest.items] == ["r3", "r1", "r0"] and rest.token is None
    assert rest.items[0]["status"] == "READY"  # the current version, with its revision
    assert rest.items[0]["revision"] == store.get(entities.RUN, org, "r3")["revision"]
    assert store.count(entities.RUN, org) == 6
    assert store.count(entities.RUN, org, field=("functionName", "f")) == 6


def test_list_of_runs_in_transit_follows_every_write(store: Store, org: str):
    # the reconciler's listing, served by etcd from the runs' status keys: a run is listed
    # while a write has put it in transit and not once a write has taken it out
    other = f"{org}-b"
    I, C, R = entities.INITIALIZED, entities.CREATING, entities.READY
    for name, status in [("queued", I), ("claimed", C), ("done", R), ("again", R),
                         ("gone", I), ("z-last", I)]:
        store.add(run(org, name, 1_700_000_000, status=status))
    store.add(run(other, "elsewhere", 1_700_000_000, status=C))
    claimed = store.get(entities.RUN, org, "claimed")
    store.update(dict(claimed, status=R))  # settled
    store.update(dict(store.get(entities.RUN, org, "again"), status=I))  # retried
    store.update(dict(store.get(entities.RUN, org, "queued"), status=C, attempts=1))
    store.delete(entities.RUN, org, "gone")
    with pytest.raises(StaleRevision):  # a refused write changes nothing
        store.update(dict(claimed, status=I))

    def names(org_: str | None, status) -> list[tuple[str, str]]:
        return [(e["organizationId"], e["name"]) for e in store.list(entities.RUN, org_, status=status)
                if e["organizationId"] in (org, other)]

    assert names(org, [I, C]) == [(org, "again"), (org, "queued"), (org, "z-last")]
    assert names(org, I) == [(org, "again"), (org, "z-last")]
    assert names(org, [C]) == [(org, "queued")]
    assert names(org, [R]) == [(org, "claimed"), (org, "done")]
    assert names(None, (I, C)) == sorted(  # ordered by key
        [(org, "again"), (org, "queued"), (org, "z-last"), (other, "elsewhere")],
        key=lambda listed: entities.key(entities.RUN, *listed))
    assert [e["attempts"] for e in store.list(entities.RUN, org, status=C)] == [1]


def test_page_is_scoped_by_organization(store: Store, org: str):
    store.add(run(org, "mine", 1_700_000_000))
    store.add(run(org + "-other", "theirs", 1_700_000_000))
    assert walk(store, org, 5) == [["mine"]]
    store.delete(entities.RUN, org + "-other", "theirs")


def test_page_refuses_a_token_it_did_not_make(store: Store, org: str):
    from engine.errors import InvalidInput

    for bad in ("not-a-token", "Zm9vL2Jhcg", "!!"):
        with pytest.raises(InvalidInput, match="continue"):
            store.page(entities.RUN, org, limit=2, token=bad)


def test_concurrent_increments_lose_no_update(store: Store, org: str):
    threads, increments = 4, 25
    store.add(function(org, "counter", count=0))

    def increment() -> None:
        for _ in range(increments):
            while True:
                current = store.get(entities.FUNCTION, org, "counter")
                try:
                    store.update({**current, "count": current["count"] + 1})
                    break
                except StaleRevision:
                    continue

    workers = [threading.Thread(target=increment) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert store.get(entities.FUNCTION, org, "counter")["count"] == threads * increments


# -- watches ------------------------------------------------------------------------------


def test_watch_yields_changes_in_order_from_revision(store: Store, org: str):
    a = store.add(function(org, "a"))
    a2 = store.update({**a, "status": entities.READY})
    b = store.add(function(org, "b"))
    store.delete(entities.FUNCTION, org, "a")
    deleted_at = store.revision()
    prefix = entities.prefix(entities.FUNCTION, org)
    with store.watch(prefix, from_revision=a["revision"]) as watch:
        collector = Collector(watch)
        c = store.add(function(org, "c"))
        events = collector.take(5)
    assert [(e.type, e.key, e.revision) for e in events] == [
        ("put", prefix + "a", a["revision"]),
        ("put", prefix + "a", a2["revision"]),
        ("put", prefix + "b", b["revision"]),
        ("delete", prefix + "a", deleted_at),
        ("put", prefix + "c", c["revision"]),
    ]
    assert [e.entity for e in events] == [a, a2, b, None, c]


def test_watch_from_now_sees_only_later_changes_under_its_prefix(store: Store, org: str):
    store.add(function(org, "before"))
    with store.watch(entities.prefix(entities.FUNCTION, org)) as watch:
        collector = Collector(watch)
        store.add(function(org + "-other", "elsewhere"))
        later = store.add(function(org, "later"))
        [event] = collector.take(1)
        assert event.entity == later
        assert collector.events.empty()


def test_delete_is_seen_by_watch(store: Store, org: str):
    store.add(function(org, "doomed"))
    with store.watch(entities.key(entities.FUNCTION, org, "doomed")) as watch:
        collector = Collector(watch)
        store.delete(entities.FUNCTION, org, "doomed")
        [event] = collector.take(1)
    assert (event.type, event.entity, event.revision) == ("delete", None, store.revision())


def test_watch_is_woken_by_a_write_in_this_process_without_polling(
    store: Store, org: str, monkeypatch: pytest.MonkeyPatch
):
    # were SQLite's watch to rely on its poll for other processes, this would time out
    monkeypatch.setattr(sqlite_backend, "POLL_INTERVAL", 60.0)
    with store.watch(entities.prefix(entities.FUNCTION, org)) as watch:
        collector = Collector(watch)
        for name in ("a", "b", "c"):
            store.add(function(org, name))
            assert collector.take(1, timeout=1)[0].entity["name"] == name


def test_watch_close_unblocks_iteration(store: Store, org: str):
    watch = store.watch(entities.prefix(entities.FUNCTION, org))
    collector = Collector(watch)
    time.sleep(0.1)
    assert collector.thread.is_alive()
    watch.close()
    # blocked with nothing to deliver, the iteration ends only because of the close
    collector.thread.join(timeout=30)
    assert not collector.thread.is_alive()
    watch.close()  # a second close is harmless


# -- locks --------------------------------------------------------------------------------

HOLDER = """
import sys
from engine.store import open_store
lock = open_store(sys.argv[1]).lock(sys.argv[2], float(sys.argv[3]))
assert lock.acquire(timeout=10)
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""


class ProcessHolder:
    """Another process that holds a lock until told to release it, or killed."""

    def __init__(self, url: str, name: str, ttl: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, name, str(ttl)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
        assert self.process.stdout.readline().strip() == "held"

    def release(self) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "released"
        self.process.wait(timeout=5)

    def die(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=5)


class ThreadHolder:
    """For the memory store, where there is no other process: another holder in this one."""

    def __init__(self, store: Store, name: str, ttl: float) -> None:
        self.lock = store.lock(name, ttl)
        assert self.lock.acquire(timeout=10)

    def release(self) -> None:
        self.lock.release()

    def die(self) -> None:
        pass  # a holder that stops refreshing is, for the lease, a dead one


@pytest.fixture
def holder(store_url: str, store: Store):
    started = []

    def start(name: str, ttl: float):
        if store_url.startswith("memory"):
            started.append(ThreadHolder(store, name, ttl))
        else:
            started.append(ProcessHolder(store_url, name, ttl))
        return started[-1]

    yield start
    for each in started:
        if isinstance(each, ProcessHolder) and each.process.poll() is None:
            each.die()


def test_lock_excludes_a_second_process(store: Store, org: str, holder):
    first = holder(f"{org}-lock", 10)
    lock = store.lock(f"{org}-lock", 10)
    started = time.monotonic()
    # it gives up at its timeout, while the holder still has the lock (it releases below),
    # and not before: a lower bound, which a loaded machine cannot break
    assert not lock.acquire(timeout=0.5)
    assert time.monotonic() - started >= 0.45
    first.release()
    assert lock.acquire(timeout=2)
    assert lock.is_held()
    lock.release()


def test_lock_expires_when_holder_dies(store: Store, org: str, holder):
    first = holder(f"{org}-lock", 1)
    lock = store.lock(f"{org}-lock", 1)
    assert not lock.acquire(timeout=0)
    first.die()
    # the holder never released it: only its lease running out lets this acquire succeed
    assert lock.acquire(timeout=30)
    lock.release()


def test_lock_refresh_and_release(store: Store, org: str):
    lock = store.lock(f"{org}-lock", 5)
    assert not lock.is_held()
    assert lock.acquire(timeout=0)
    assert lock.is_held()
    lock.refresh()
    assert lock.is_held()
    lock.release()
    assert not lock.is_held()
    with pytest.raises(Conflict):
        lock.refresh()
    lock.release()  # releasing twice is harmless


def test_lock_lost_to_its_ttl_cannot_be_refreshed(store: Store, org: str):
    lock = store.lock(f"{org}-lock", 1)
    assert lock.acquire(timeout=0)
    deadline = time.monotonic() + 5
    while lock.is_held() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lock.is_held()
    with pytest.raises(Conflict):
        lock.refresh()
    successor = store.lock(f"{org}-lock", 1)
    assert successor.acquire(timeout=0)
    successor.release()


def test_lock_is_not_released_by_another_holder(store: Store, org: str):
    mine, theirs = store.lock(f"{org}-lock", 5), store.lock(f"{org}-lock", 5)
    with mine:
        assert not theirs.acquire(timeout=0)
        theirs.release()
        assert mine.is_held() and not theirs.is_held()
    assert theirs.acquire(timeout=0)
    theirs.release()


# etcd keeps its history until compacted, which is left to etcd's operator
@pytest.mark.parametrize("store_url", ["memory", "sqlite"], indirect=True)
def test_watch_from_a_revision_no_longer_retained_starts_at_the_oldest_kept(
    store_url: str, org: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(codec, "HISTORY", 20)
    monkeypatch.setattr(sqlite_backend, "PRUNE_EVERY", 10)
    store = open_store(store_url)
    first = store.add(function(org, "counter"))
    for _ in range(60):
        first = store.update(first)
    with store.watch(entities.prefix(entities.FUNCTION, org), from_revision=1) as watch:
        event = Collector(watch).take(1)[0]
    assert 1 < event.revision <= store.revision() - 19
    store.close()


# -- SQLite: one file shared by processes ---------------------------------------------------

WRITER = """
import sys
from engine import entities
from engine.errors import StaleRevision
from engine.store import open_store
store = open_store(sys.argv[1])
org, name, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
for _ in range(count):
    while True:
        current = store.get(entities.FUNCTION, org, name)
        try:
            store.update({**current, "count": current["count"] + 1})
            break
        except StaleRevision:
            pass
"""


def run_writers(url: str, org: str, name: str, count: int, processes: int) -> list:
    return [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, org, name, str(count)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
        )
        for _ in range(processes)
    ]


def test_sqlite_watch_sees_a_write_from_another_process(tmp_path, org: str):
    url = f"sqlite://{tmp_path / 'dispatch.db'}"
    store = open_store(url)
    store.add(function(org, "counter", count=0))
    with store.watch(entities.prefix(entities.FUNCTION, org)) as watch:
        collector = Collector(watch)
        [writer] = run_writers(url, org, "counter", 1, 1)
        assert writer.wait(timeout=10) == 0
        # picked up by the poll of the change log, every POLL_INTERVAL
        [event] = collector.take(1, timeout=1)
    assert event.entity["count"] == 1
    store.close()


def test_sqlite_writers_in_several_processes_lose_no_update(tmp_path, org: str):
    url = f"sqlite://{tmp_path / 'dispatch.db'}"
    store = open_store(url)
    store.add(function(org, "counter", count=0))
    writers = run_writers(url, org, "counter", 50, 3)
    assert [w.wait(timeout=30) for w in writers] == [0, 0, 0]
    assert store.get(entities.FUNCTION, org, "counter")["count"] == 150
    store.close()


def test_sqlite_file_without_the_creation_index_gets_it_at_open(tmp_path, org: str):
    path = str(tmp_path / "old.db")
    store = SqliteStore(path)
    for i in range(3):
        store.add(run(org, f"r{i}", 1_700_000_000 + i))
    store.close()
    db = sqlite3.connect(path)  # as a file written before the index existed
    db.executescript("DROP INDEX entities_created; DROP INDEX entities_created_by_field;"
                     "ALTER TABLE entities DROP COLUMN sort; ALTER TABLE entities DROP COLUMN grp;")
    db.close()
    reopened = SqliteStore(path)
    try:
        assert walk(reopened, org, 2) == [["r2", "r1"], ["r0"]]
        assert reopened.count(entities.RUN, org, field=("functionName", "f")) == 3
    finally:
        reopened.close()


def test_etcd_indexes_runs_written_before_the_creation_index(etcd_endpoint: str, org: str):
    store = EtcdStore([etcd_endpoint])
    try:
        store.add(run(org, "old", 1_700_000_000))
        store._client.delete_prefix(f"/dispatch-index/run/{org}/")  # as an older version wrote it
        store._client.delete("/dispatch-index/.built-2")
        assert walk(store, org, 5) == [[]]
        EtcdStore([etcd_endpoint]).close()  # the next process to open the store indexes it
        assert walk(store, org, 5) == [["old"]]
    finally:
        store.close()


def test_etcd_keeps_a_status_key_exactly_for_each_run_in_transit(etcd_endpoint: str, org: str):
    from engine.store.etcd import status_prefix
    store = EtcdStore([etcd_endpoint])

    def keyed() -> list[str]:
        prefix = status_prefix(entities.RUN, org)
        return sorted(kv.key.decode()[len(prefix):]
                      for kv in store._client.get_prefix_response(prefix, keys_only=True).kvs)

    try:
        statuses = [entities.INITIALIZED, entities.CREATING, entities.READY, entities.ERROR]
        # written together, as group commit sends concurrent writes in one transaction
        threads = [threading.Thread(target=store.add, args=(
            run(org, f"r{i}", 1_700_000_000 + i, status=statuses[i % 4]),)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert keyed() == ["r0", "r1", "r4", "r5"]
        for name, status in [("r0", entities.CREATING), ("r1", entities.READY),
                             ("r2", entities.INITIALIZED), ("r5", entities.ERROR)]:
            store.update(dict(store.get(entities.RUN, org, name), status=status))
        store.delete(entities.RUN, org, "r4")
        assert keyed() == ["r0", "r2"]
        for name in ("r0", "r2"):
            store.delete(entities.RUN, org, name)
        assert keyed() == []
    finally:
        store.close()


def test_etcd_keys_the_runs_in_transit_written_before_status_keys(etcd_endpoint: str, org: str):
    from engine.store.etcd import status_prefix
    store = EtcdStore([etcd_endpoint])
    try:
        store.add(run(org, "queued", 1_700_000_000, status=entities.INITIALIZED))
        store.add(run(org, "done", 1_700_000_001, status=entities.READY))
        store._client.delete_prefix(status_prefix(entities.RUN, org))  # as an older version
        store._client.delete("/dispatch-status/.built-1")
        assert store.list(entities.RUN, org, status=entities.INITIALIZED) == []
        EtcdStore([etcd_endpoint]).close()  # the next process to open the store keys it
        assert [e["name"] for e in store.list(entities.RUN, org, status=entities.INITIALIZED)] == [
            "queued"]
    finally:
        store.close()


def test_etcd_reconciler_finds_a_lost_run_from_its_status_key(etcd_endpoint: str, org: str):
    from engine.jobs import EXECUTE_RUN, RecordingJobs
    from engine.scheduler.reconciler import Reconciler
    store, jobs = EtcdStore([etcd_endpoint]), RecordingJobs()
    # the etcd is shared: other tests' runs left in transit may move too, and count
    reconciler = Reconciler(store, jobs, stuck_seconds=5, max_resends_per_pass=100_000)
    reconciler.follow()
    try:
        store.add(run(org, "done", 1_700_000_000, status=entities.READY, attempts=1))
        lost = store.add(run(org, "lost", 1_700_000_001, status=entities.CREATING, attempts=1,
                             claimExpires=1_700_000_100))
        moved = reconciler.reconcile_once(now=1_700_000_101)
        assert moved.get("retried_run", 0) >= 1
        assert (EXECUTE_RUN, entities.key_of(lost)) in jobs.submitted
        assert store.get(entities.RUN, org, "lost")["status"] == entities.INITIALIZED
        assert store.get(entities.RUN, org, "done")["status"] == entities.READY
    finally:
        reconciler.close()
        store.close()


def test_sqlite_url_names_an_absolute_path(tmp_path, org: str):
    store = open_store(f"sqlite://{tmp_path}/a/b/dispatch.db")
    assert isinstance(store, SqliteStore)
    assert store.path == f"{tmp_path}/a/b/dispatch.db"
    store.add(function(org, "hello"))
    with sqlite3.connect(store.path) as db:
        [value] = db.execute("SELECT value FROM entities").fetchone()
    assert "revision" not in json.loads(value)
    store.close()


# -- etcd: endpoints and stored form -------------------------------------------------------


def test_etcd_uses_the_first_reachable_endpoint(etcd_endpoint: str, org: str):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{unused.getsockname()[1]}"
    store = EtcdStore([dead, etcd_endpoint])
    added = store.add(function(org, "hello"))
    assert store.get(entities.FUNCTION, org, "hello") == added
    store.close()


def test_etcd_stores_the_entity_without_its_revision(etcd_endpoint: str, org: str):
    store = EtcdStore([etcd_endpoint])
    added = store.add(function(org, "hello"))
    host, port = etcd_endpoint.rsplit(":", 1)
    value, meta = pyetcd.client(host, int(port)).get(entities.key_of(added))
    assert "revision" not in json.loads(value)
    assert meta.mod_revision == added["revision"]
    store.close()
