"""Retries with backoff and the dead-letter list: a function's retry policy starts a failed
run again after a durable delay; a run that exhausts it is dead, listed, and redriven."""

from __future__ import annotations

import random

import pytest

from engine import entities as E
from engine.drivers.base import Outcome
from engine.errors import Conflict, InvalidInput
from engine.jobs import EXECUTE_RUN
from engine.services.retry_policy import RetryPolicy
from engine.scheduler.reconciler import Reconciler

from .test_services import drain, parts, source  # noqa: F401 (fixtures)

SYSTEM = Outcome(error={"type": "SystemError", "message": "driver fell over", "stacktrace": []})
FUNCTION = Outcome(error={"type": "FunctionError", "message": "boom", "stacktrace": []})
INPUT = Outcome(error={"type": "InputError", "message": "bad", "stacktrace": []})
OK = Outcome(payload={"ok": True})


def spec(source, **extra):  # noqa: F811
    return {"name": "hello", "image": "python3", "handler": "hello.handle", "source": source,
            **extra}


@pytest.fixture
def with_policy(parts, source):  # noqa: F811
    """A function whose runs are retried: 3 attempts, 1 s then 2 s, no jitter."""
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source, retry={
        "attempts": 3, "backoff": "exponential", "delayMs": 1000, "jitter": 0}))
    drain(jobs, functions, runs)
    return parts


def script(driver, *outcomes):
    """The driver answers each call with the next outcome (the last one repeats)."""
    queue = list(outcomes)

    def run(deployment, context, payload):
        driver.calls.append((context, payload))
        return queue.pop(0) if len(queue) > 1 else queue[0]

    driver.run = run


def fire_due(jobs, runs, now_offset=None):
    """Deliver every queued execute_run as a worker would once its delay is over."""
    while jobs.submitted:
        job, key = jobs.submitted.pop(0)
        assert job == EXECUTE_RUN
        run = runs.store.get(*E.parse_key(key))
        if run.get("retryAt"):  # pretend the delay passed: move the due time to now
            runs.store.update(dict(run, retryAt=0))
        runs.execute(key)


def test_a_system_error_is_retried_after_an_exponential_delay_then_succeeds(with_policy):
    store, jobs, driver, functions, runs = with_policy
    script(driver, SYSTEM, SYSTEM, OK)
    run = runs.start("default", "hello", {})
    jobs.submitted.clear()
    runs.execute(E.key_of(run))
    waiting = runs.get("default", run["name"])
    assert waiting["status"] == E.INITIALIZED and waiting["retryAt"] > waiting["executedTime"]
    assert "attempt 1 of 3 failed" in waiting["reason"][0]
    assert [d for _, _, d in jobs.delayed] == [1.0]  # a delayed job, not a sleeping thread
    fire_due(jobs, runs)
    assert [d for _, _, d in jobs.delayed] == [1.0, 2.0]
    done = runs.get("default", run["name"])
    assert done["status"] == E.READY and done["attempts"] == 3 and len(driver.calls) == 3
    assert [a["status"] for a in done["attemptHistory"]] == [E.ERROR, E.ERROR, E.READY]
    assert not done.get("dead") and runs.dead("default") == []


def test_a_retry_not_due_yet_is_not_started_early(with_policy):
    store, jobs, driver, functions, runs = with_policy
    script(driver, SYSTEM, OK)
    run = runs.start("default", "hello", {})
    runs.execute(E.key_of(run))
    runs.execute(E.key_of(run))  # e.g. a duplicate delivery before the delay is over
    assert len(driver.calls) == 1
    assert runs.get("default", run["name"])["status"] == E.INITIALIZED


def test_the_reconciler_fires_a_due_retry_whose_delayed_job_was_lost(with_policy):
    store, jobs, driver, functions, runs = with_policy
    script(driver, SYSTEM, OK)
    run = runs.start("default", "hello", {})
    runs.execute(E.key_of(run))
    jobs.submitted.clear()  # the delayed job is lost (e.g. Redis flushed)
    waiting = runs.get("default", run["name"])
    reconciler = Reconciler(store, jobs, stuck_seconds=5)
    assert reconciler.reconcile_once(now=waiting["retryAt"] + 1) == {}  # the job's time
    assert reconciler.reconcile_once(now=waiting["retryAt"] + 6) == {
        "resubmitted_execute_run": 1}
    fire_due(jobs, runs)  # (the test's clock is not the reconciler's: move the due time)
    assert runs.get("default", run["name"])["status"] == E.READY


def test_a_function_error_is_not_retried_unless_asked(parts, source):  # noqa: F811
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source, retry={"attempts": 3}))
    functions.create("default", spec(source, name="asks", retry={
        "attempts": 2, "on": ["FunctionError"], "delayMs": 0}))
    drain(jobs, functions, runs)
    script(driver, FUNCTION)
    plain = runs.start("default", "hello", {})
    asked = runs.start("default", "asks", {})
    fire_due(jobs, runs)
    assert runs.get("default", plain["name"])["attempts"] == 1
    assert not runs.get("default", plain["name"]).get("dead")  # not retried: not dead
    retried = runs.get("default", asked["name"])
    assert retried["attempts"] == 2 and retried["status"] == E.ERROR and retried["dead"]


def test_an_input_error_is_never_retried(parts, source):  # noqa: F811
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source, retry={"attempts": 5, "on": ["SystemError",
                                                                             "FunctionError"]}))
    drain(jobs, functions, runs)
    script(driver, INPUT)
    run = runs.start("default", "hello", {})
    fire_due(jobs, runs)
    done = runs.get("default", run["name"])
    assert done["attempts"] == 1 and done["status"] == E.ERROR and not done.get("dead")


def test_an_exhausted_run_is_dead_listed_and_redriven_keeping_the_link(with_policy):
    store, jobs, driver, functions, runs = with_policy
    script(driver, SYSTEM)
    run = runs.start("default", "hello", {"input": {"n": 1}})
    fire_due(jobs, runs)
    dead = runs.get("default", run["name"])
    assert dead["status"] == E.ERROR and dead["dead"] and dead["attempts"] == 3
    assert [r["name"] for r in runs.dead("default")] == [run["name"]]
    assert [r["name"] for r in runs.dead("default", "hello")] == [run["name"]]
    assert runs.dead("default", "other") == []

    script(driver, OK)
    again = runs.redrive("default", run["name"])
    assert again["redrivenFrom"] == run["name"] and again["input"] == {"n": 1}
    assert runs.get("default", run["name"])["redrivenTo"] == again["name"]
    assert runs.dead("default") == []
    with pytest.raises(Conflict, match="redriven already"):
        runs.redrive("default", run["name"])
    fire_due(jobs, runs)
    assert runs.get("default", again["name"])["status"] == E.READY


def test_only_a_run_in_error_is_redriven(with_policy):
    store, jobs, driver, functions, runs = with_policy
    script(driver, OK)
    run = runs.start("default", "hello", {})
    fire_due(jobs, runs)
    with pytest.raises(Conflict, match="only a run in ERROR"):
        runs.redrive("default", run["name"])


def test_a_run_without_a_policy_whose_worker_was_lost_ends_dead(parts, source):  # noqa: F811
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    run = runs.start("default", "hello", {})
    reconciler = Reconciler(store, jobs, stuck_seconds=5, run_attempts=1)
    store.update(dict(store.get(E.RUN, "default", run["name"]), status=E.CREATING,
                      attempts=1, claimExpires=100.0))
    assert reconciler.reconcile_once(now=101.0) == {"failed_run": 1}
    assert [r["name"] for r in runs.dead("default")] == [run["name"]]


def test_a_lost_worker_is_retried_within_the_policy_after_its_delay(with_policy):
    store, jobs, driver, functions, runs = with_policy
    run = runs.start("default", "hello", {})
    reconciler = Reconciler(store, jobs, stuck_seconds=5, run_attempts=1)
    for attempt in (1, 2, 3):
        jobs.submitted.clear()
        jobs.delayed.clear()
        store.update(dict(store.get(E.RUN, "default", run["name"]), status=E.CREATING,
                          attempts=attempt, claimExpires=100.0 * attempt))
        moved = reconciler.reconcile_once(now=100.0 * attempt + 1)
        if attempt < 3:
            assert moved == {"retried_run": 1}
            assert jobs.delayed == [(EXECUTE_RUN, E.key_of(run), float(attempt))]
    assert moved == {"failed_run": 1}
    dead = store.get(E.RUN, "default", run["name"])
    assert dead["dead"] and len(dead["attemptHistory"]) == 3


@pytest.mark.parametrize("bad, message", [
    ({"attempts": 0}, "retry.attempts"),
    ({"attempts": 2, "backoff": "linear"}, "retry.backoff"),
    ({"attempts": 2, "delayMs": -1}, "retry.delayMs"),
    ({"attempts": 2, "jitter": 2}, "retry.jitter"),
    ({"attempts": 2, "on": ["InputError"]}, "retry.on"),
    ({"attempts": 2, "tries": 1}, "unknown fields: tries"),
    ("3", "retry must be an object"),
])
def test_a_bad_retry_policy_is_refused_naming_the_field(parts, source, bad, message):  # noqa: F811
    store, jobs, driver, functions, runs = parts
    with pytest.raises(InvalidInput, match=message):
        functions.create("default", spec(source, retry=bad))
    assert store.list(E.FUNCTION) == []


def test_delays_grow_up_to_the_cap_and_jitter_only_shortens_them():
    policy = RetryPolicy.parse({"attempts": 10, "delayMs": 100, "maxDelayMs": 500,
                                "jitter": 0.5})
    rand = random.Random(7)
    for attempt, full in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
        delay = policy.delay(attempt, rand)
        assert full * 0.5 <= delay <= full
    constant = RetryPolicy.parse({"attempts": 3, "backoff": "constant", "delayMs": 250,
                                  "jitter": 0})
    assert [constant.delay(a) for a in (1, 2, 3)] == [0.25, 0.25, 0.25]


def test_a_result_the_store_cannot_take_is_written_once_it_is_back(with_policy, monkeypatch):
    """A store outage while the function runs must not make the run execute twice: the
    result is written again until the claim expires."""
    from engine.errors import Unavailable

    store, jobs, driver, functions, runs = with_policy
    script(driver, OK)
    run = runs.start("default", "hello", {})
    real_update, failures = store.update, [3]

    def flaky_update(entity):
        if entity.get("status") == E.READY and failures[0]:
            failures[0] -= 1
            raise Unavailable("etcd is unavailable")
        return real_update(entity)

    monkeypatch.setattr(store, "update", flaky_update)
    runs.execute(E.key_of(run))
    done = runs.get("default", run["name"])
    assert done["status"] == E.READY and failures == [0] and len(driver.calls) == 1
