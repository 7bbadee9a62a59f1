"""Idempotent invocation: an Idempotency-Key (or a client-chosen run name) starts one run,
however often and however concurrently it is sent, within its window."""

from __future__ import annotations

import threading

import pytest

from engine import entities as E
from engine.errors import Conflict, InvalidInput, NotFound
from engine.jobs import EXECUTE_RUN
from engine.scheduler.reconciler import Reconciler

from .test_services import drain, parts, source  # noqa: F401 (fixtures)


def spec(source, **extra):  # noqa: F811
    return {"name": "hello", "image": "python3", "handler": "hello.handle", "source": source,
            **extra}


@pytest.fixture
def ready(parts, source):  # noqa: F811
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    functions.create("default", spec(source, name="other"))
    drain(jobs, functions, runs)
    return parts


def executions(jobs) -> list[str]:
    return [key for job, key in jobs.submitted if job == EXECUTE_RUN]


def test_the_same_key_returns_the_same_run_and_runs_nothing_again(ready):
    store, jobs, driver, functions, runs = ready
    first, replayed = runs.invoke("default", "hello", {"input": 1}, "key-1")
    assert not replayed
    again, replayed = runs.invoke("default", "hello", {"input": 1}, "key-1")
    assert replayed and again["name"] == first["name"]
    drain(jobs, functions, runs)
    third, replayed = runs.invoke("default", "hello", {"input": 1}, "key-1")
    assert replayed and third["status"] == E.READY
    assert len(store.list(E.RUN, "default")) == 1 and len(driver.calls) == 1


def test_a_key_is_scoped_per_function_and_organization(ready):
    store, jobs, driver, functions, runs = ready
    a, _ = runs.invoke("default", "hello", {}, "shared")
    b, replayed = runs.invoke("default", "other", {}, "shared")
    assert not replayed and a["name"] != b["name"]
    with pytest.raises(NotFound):  # another organization: its own key space (no function)
        runs.invoke("acme", "hello", {}, "shared")
    assert len(store.list(E.RUN, "default")) == 2


def test_concurrent_duplicate_requests_create_one_run(ready):
    store, jobs, driver, functions, runs = ready
    results, barrier = [], threading.Barrier(16)

    def post():
        barrier.wait()
        results.append(runs.invoke("default", "hello", {}, "burst"))

    threads = [threading.Thread(target=post) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({run["name"] for run, _ in results}) == 1
    assert sorted(replayed for _, replayed in results) == [False] + [True] * 15
    assert len(store.list(E.RUN, "default")) == 1 and len(executions(jobs)) == 1


def test_a_key_expires_after_its_window_and_the_reconciler_prunes_it(ready):
    store, jobs, driver, functions, runs = ready
    runs.keys.window = 60
    first, _ = runs.invoke("default", "hello", {}, "k")
    (record,) = store.list(E.IDEMPOTENCY, "default")
    reconciler = Reconciler(store, jobs)
    assert reconciler.reconcile_once(now=record["expiresAt"] - 1).get(
        "pruned_idempotency_key") is None
    assert reconciler.reconcile_once(now=record["expiresAt"] + 1)[
        "pruned_idempotency_key"] == 1
    assert store.list(E.IDEMPOTENCY, "default") == []
    second, replayed = runs.invoke("default", "hello", {}, "k")
    assert not replayed and second["name"] != first["name"]


def test_an_expired_record_not_yet_pruned_is_replaced(ready):
    store, jobs, driver, functions, runs = ready
    first, _ = runs.invoke("default", "hello", {}, "k")
    record = store.list(E.IDEMPOTENCY, "default")[0]
    store.update(dict(record, expiresAt=0))
    second, replayed = runs.invoke("default", "hello", {}, "k")
    assert not replayed and second["name"] != first["name"]


def test_a_client_chosen_name_is_a_key_too(ready):
    store, jobs, driver, functions, runs = ready
    first, replayed = runs.invoke("default", "hello", {"name": "nightly-2026-12-06"})
    assert not replayed and first["name"] == "nightly-2026-12-06"
    again, replayed = runs.invoke("default", "hello", {"name": "nightly-2026-12-06"})
    assert replayed and again["id"] == first["id"]
    with pytest.raises(Conflict, match="a run of function hello"):
        runs.invoke("default", "other", {"name": "nightly-2026-12-06"})
    with pytest.raises(InvalidInput, match="name"):
        runs.invoke("default", "hello", {"name": "no spaces"})
    assert len(executions(jobs)) == 1


def test_a_key_and_a_name_start_the_run_under_that_name(ready):
    store, jobs, driver, functions, runs = ready
    run, _ = runs.invoke("default", "hello", {"name": "chosen"}, "k2")
    assert run["name"] == "chosen"
    assert runs.invoke("default", "hello", {"name": "chosen"}, "k2")[0]["id"] == run["id"]


def test_a_key_whose_run_could_not_start_is_released(ready, source):  # noqa: F811
    store, jobs, driver, functions, runs = ready
    functions.create("default", spec(source, name="late"))  # not built yet
    with pytest.raises(NotFound, match="not READY"):
        runs.invoke("default", "late", {}, "k3")
    drain(jobs, functions, runs)
    run, replayed = runs.invoke("default", "late", {}, "k3")
    assert not replayed and run["status"] == E.INITIALIZED


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_a_bad_key_is_refused(ready, key):
    store, jobs, driver, functions, runs = ready
    with pytest.raises(InvalidInput, match="Idempotency-Key"):
        runs.invoke("default", "hello", {}, key)
    assert store.list(E.RUN, "default") == []
