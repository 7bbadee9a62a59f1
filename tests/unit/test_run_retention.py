"""Run retention: settled runs beyond a function's count or past its age are pruned by the
reconciler, oldest first; runs in progress never are; a global default applies."""

from __future__ import annotations

import pytest

from engine import entities as E
from engine.errors import InvalidInput
from engine.jobs import RecordingJobs
from engine.services.run_retention import RunRetention
from engine.scheduler.reconciler import Reconciler
from engine.scheduler.run_pruning import RunPruner
from engine.store import open_store

from .test_services import drain, parts, source  # noqa: F401 (fixtures)

NOW = 1_800_000_000.0


def function(store, name, retention=None):
    return store.add(E.new(E.FUNCTION, "default", name, status=E.READY, retention=retention))


def runs_of(store, name, statuses, start=NOW - 1000, step=10.0):
    """Runs of function ``name``, one per status, oldest first, ``step`` s apart."""
    return [store.add(E.new(E.RUN, "default", f"{name}-{i}", status=status,
                            functionName=name, createdAt=start + i * step))
            for i, status in enumerate(statuses)]


def names(store, function_name):
    return sorted(r["name"] for r in store.list(E.RUN, "default",
                                                 fields={"functionName": function_name}))


def test_settled_runs_beyond_the_count_go_oldest_first_and_runs_in_progress_stay():
    store = open_store("memory://")
    function(store, "f", {"count": 3, "ageSeconds": None})
    runs_of(store, "f", [E.INITIALIZED] + [E.READY, E.ERROR] * 3)
    pruned = RunPruner(store, RunRetention()).prune(NOW)
    assert pruned == 4
    assert names(store, "f") == ["f-0", "f-5", "f-6"]


def test_settled_runs_past_the_age_go():
    store = open_store("memory://")
    function(store, "f", {"count": None, "ageSeconds": 35})
    runs_of(store, "f", [E.READY] * 6, start=NOW - 60)  # created 60, 50, … 10 s ago
    assert RunPruner(store, RunRetention()).prune(NOW) == 3
    assert names(store, "f") == ["f-3", "f-4", "f-5"]


def test_the_global_default_applies_where_a_function_says_nothing():
    store = open_store("memory://")
    function(store, "plain")
    function(store, "keeps", {"count": 5})
    runs_of(store, "plain", [E.READY] * 4)
    runs_of(store, "keeps", [E.READY] * 4)
    assert RunPruner(store, RunRetention(count=2)).prune(NOW) == 2
    assert names(store, "plain") == ["plain-2", "plain-3"]
    assert len(names(store, "keeps")) == 4


def test_one_round_deletes_at_most_its_budget_and_the_next_goes_on():
    store = open_store("memory://")
    function(store, "f", {"count": 1})
    runs_of(store, "f", [E.READY] * 10)
    pruner = RunPruner(store, RunRetention(), budget=4)
    assert [pruner.prune(NOW), pruner.prune(NOW), pruner.prune(NOW)] == [4, 4, 1]
    assert names(store, "f") == ["f-9"]


def test_the_reconciler_prunes_every_retention_period():
    store, jobs = open_store("memory://"), RecordingJobs()
    function(store, "f", {"count": 1})
    runs_of(store, "f", [E.READY] * 3)
    reconciler = Reconciler(store, jobs, run_retention=RunRetention(),
                            retention_check_seconds=60)
    assert reconciler.reconcile_once(now=NOW) == {"pruned_run": 2}
    runs_of(store, "f", [E.READY] * 2, start=NOW + 1)
    assert reconciler.reconcile_once(now=NOW + 30) == {}  # not yet
    assert reconciler.reconcile_once(now=NOW + 61) == {"pruned_run": 2}


def test_a_pruned_dead_run_leaves_the_dead_letter_list(parts, source):  # noqa: F811
    store, jobs, driver, functions, runs = parts
    from engine.drivers.base import Outcome

    functions.create("default", {"name": "hello", "image": "python3",
                                 "handler": "hello.handle", "source": source,
                                 "retention": {"count": 1}})
    drain(jobs, functions, runs)
    driver.outcome = Outcome(error={"type": "SystemError", "message": "x", "stacktrace": []})
    dead = runs.start("default", "hello", {})
    drain(jobs, functions, runs)
    driver.outcome = Outcome(payload=1)
    runs.start("default", "hello", {})
    drain(jobs, functions, runs)
    assert [r["name"] for r in runs.dead("default")] == [dead["name"]]
    assert RunPruner(store, RunRetention()).prune(NOW + 10**6) == 1
    assert runs.dead("default") == [] and store.list(E.DEAD_LETTER) == []


@pytest.mark.parametrize("bad, message", [
    ({"count": 0}, "retention.count"),
    ({"ageSeconds": "1d"}, "retention.ageSeconds"),
    ({"keep": 3}, "retention must be an object"),
])
def test_a_bad_retention_is_refused_naming_the_field(parts, source, bad, message):  # noqa: F811
    store, jobs, driver, functions, runs = parts
    with pytest.raises(InvalidInput, match=message):
        functions.create("default", {"name": "hello", "image": "python3",
                                     "handler": "hello.handle", "source": source,
                                     "retention": bad})
