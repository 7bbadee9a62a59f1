"""The etcd store's group commit, on a real etcd: writes queued while another thread
commits go out as one transaction, one write's conflict is its own, a watch yields every
write of a shared revision once (across a reconnection too), and a group too large for
one transaction is sent write by write."""

from __future__ import annotations

import threading
import uuid

import pytest

from engine import entities as E
from engine.errors import Conflict, StaleRevision
from engine.store import etcd as etcd_module
from engine.store.etcd import EtcdStore

from ..group_commit import write_together as together
from ..waiting import settles


@pytest.fixture
def store(etcd_endpoint):
    s = EtcdStore([etcd_endpoint])
    yield s
    s.close()


@pytest.fixture
def org():
    return f"group-{uuid.uuid4().hex[:8]}"


def test_queued_writes_share_one_transaction(store, org):
    before = store.revision()
    results = together(store, {f"add{i}": (lambda i=i: store.add(E.new(E.RUN, org, f"run{i}")))
                               for i in range(6)})
    revisions = {results[f"add{i}"]["revision"] for i in range(6)}
    assert revisions == {before + 1} and store.revision() == before + 1
    assert {r["name"] for r in store.list(E.RUN, org)} == {f"run{i}" for i in range(6)}
    page = store.page(E.RUN, org, limit=10)  # their creation-index keys went with them
    assert len(page.items) == 6


def test_a_conflict_in_a_group_fails_that_write_alone(store, org):
    taken = store.add(E.new(E.RUN, org, "taken", status=E.READY))
    stale = dict(taken)
    store.update(dict(taken, status=E.ERROR))  # `stale` now holds an old revision
    calls = {f"add{i}": (lambda i=i: store.add(E.new(E.RUN, org, f"run{i}"))) for i in range(4)}
    calls["duplicate"] = lambda: store.add(E.new(E.RUN, org, "taken"))
    calls["stale"] = lambda: store.update(dict(stale, status=E.CREATING))
    results = together(store, calls)
    assert isinstance(results["duplicate"], Conflict)
    assert isinstance(results["stale"], StaleRevision)
    assert store.get(E.RUN, org, "taken")["status"] == E.ERROR
    assert sorted(r["name"] for r in store.list(E.RUN, org)) == ["run0", "run1", "run2", "run3", "taken"]
    for i in range(4):
        assert store.get(E.RUN, org, f"run{i}")["revision"] == results[f"add{i}"]["revision"]


def test_two_writes_of_one_key_never_share_a_transaction(store, org):
    run = store.add(E.new(E.RUN, org, "one"))
    results = together(store, {"a": lambda: store.update(dict(run, status=E.READY)),
                               "b": lambda: store.update(dict(run, status=E.ERROR))})
    # one wins, the other finds the revision moved on (not etcd's "duplicate key" refusal)
    assert sorted(type(v).__name__ for v in results.values()) == ["StaleRevision", "dict"]


def test_a_group_over_the_size_limit_goes_write_by_write(store, org, monkeypatch):
    monkeypatch.setattr(etcd_module, "GROUP_MAX_BYTES", 1)  # every write a group of its own
    before = store.revision()
    results = together(store, {f"add{i}": (lambda i=i: store.add(E.new(E.RUN, org, f"run{i}")))
                               for i in range(3)})
    assert sorted(results[f"add{i}"]["revision"] for i in range(3)) == [before + 1, before + 2, before + 3]


def test_a_watch_yields_each_write_of_a_shared_revision_once(store, org):
    watch = store.watch(E.prefix(E.RUN, org))
    seen: list[tuple[str, int]] = []

    def follow():
        for change in watch:
            seen.append((change.key, change.revision))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        results = together(store, {f"add{i}": (lambda i=i: store.add(E.new(E.RUN, org, f"run{i}")))
                                   for i in range(3)})
        revision = results["add0"]["revision"]
        settles(lambda: len(seen) >= 3, "the watch yields the group's three writes")
        watch._reopen(None)  # as after a broken stream: resumes after what it yielded
        store.add(E.new(E.RUN, org, "after"))
        settles(lambda: len(seen) >= 4, "the watch yields the write after the reconnection")
        assert sorted(seen) == sorted([(E.key(E.RUN, org, f"run{i}"), revision) for i in range(3)]
                                      + [(E.key(E.RUN, org, "after"), store.get(E.RUN, org, "after")["revision"])])
    finally:
        watch.close()
