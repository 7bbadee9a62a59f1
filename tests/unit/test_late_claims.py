"""The late claims of runs executed where they were accepted (engine.services.late_claims)."""

from __future__ import annotations

import time

from engine import entities as E
from engine.errors import Unavailable
from engine.services.late_claims import LateClaims
from tests.unit.test_services import counted_parts, drain, source, spec  # noqa: F401 (fixture)
from tests.waiting import settles


def test_claims_fall_due_in_order_and_settled_ones_are_dropped():
    written = []
    claims = LateClaims(lambda record: written.append(record["name"]) or {"revision": 7}, 30)
    start = time.monotonic()
    a, b, c = (claims.defer({"name": name}) for name in "abc")
    assert b.settle() is None  # settled before its time: never written
    due, pause = claims._take_due(start + 30 + 1)
    assert [claim.record["name"] for claim in due] == ["a", "c"] and pause == 0
    for claim in due:
        claim.write(claims._add)
    assert written == ["a", "c"] and a.settle() == 7 and c.settle() == 7
    assert claims._idle  # nothing left: the thread waits for the next claim


def test_the_claim_is_a_copy_of_the_run_as_it_was_deferred():
    written = []
    claims = LateClaims(lambda record: written.append(dict(record)) or {"revision": 1}, 30)
    run = {"name": "r", "status": E.CREATING}
    claim = claims.defer(run)
    run["status"] = E.READY  # the call ended meanwhile, its outcome not yet written
    claim.write(claims._add)
    assert written == [{"name": "r", "status": E.CREATING}]


def test_the_thread_writes_a_claim_once_due_and_a_failed_write_leaves_it_unwritten():
    calls = []

    def add(record):
        calls.append(record["name"])
        if record["name"] == "fails":
            raise Unavailable("etcd is away")
        return {"revision": 3}

    claims = LateClaims(add, 0.01)
    written, failed = claims.defer({"name": "written"}), claims.defer({"name": "fails"})
    settles(lambda: len(calls) == 2, "both claims fall due and are written")
    assert written.settle() == 3 and failed.settle() is None
    # the thread went idle; a later claim wakes it
    later = claims.defer({"name": "later"})
    settles(lambda: calls == ["written", "fails", "later"], "a claim after idling is written")
    assert later.settle() == 3


def test_a_claim_written_though_its_write_failed_gets_the_outcome_over_it(source):
    # the store applied the claim and then failed to say so: the outcome's add conflicts
    store, jobs, driver, functions, runs = counted_parts(0.01)
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.idle = True
    inner_add = store._store.add

    def applies_then_fails(entity):
        inner_add(entity)
        raise Unavailable("the answer was lost")

    runs._late_claims._add = applies_then_fails
    driver.during_call = lambda: settles(lambda: store.list(E.RUN, "default"),
                                         "the claim is stored while the call lasts")
    run = runs.start("default", "hello", {"blocking": True})
    stored = store.get(E.RUN, "default", run["name"])
    assert stored["status"] == E.READY and stored["attempts"] == 1 and stored == run
