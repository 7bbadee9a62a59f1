"""The function and run services and the reconciler, on the memory store with a
recording job queue and an in-test driver: the service logic alone."""

from __future__ import annotations

import base64
import os
import threading
import time
from typing import Callable

import pytest

from engine import entities as E
from engine.drivers.base import Deployment, Driver, Outcome
from engine.errors import Conflict, BuildError, InvalidInput, NotFound
from engine.services.catalog import ImageCatalog
from engine.jobs import CREATE_FUNCTION, DELETE_FUNCTION, EXECUTE_RUN, RecordingJobs
from engine.services.functions import FunctionService
from engine.scheduler.reconciler import Reconciler
from engine.services.runs import RunService
from engine.sources import pack
from engine.store import open_store
from tests.waiting import settles


class ScriptedDriver(Driver):
    """Answers with what the test sets; records what it was asked."""

    def __init__(self):
        self.prepared: list[str] = []
        self.retired: list[str] = []
        self.fail_prepare: str | None = None
        self.outcome = Outcome(payload={"ok": True})
        self.calls: list[tuple[dict, object]] = []
        #: what warm_here answers: whether the version has warm instances in this process
        self.idle = False
        #: raised by run() instead of answering (a process lost mid-call)
        self.lost: BaseException | None = None
        #: called by run() before it answers (a call that lasts)
        self.during_call: Callable[[], object] | None = None
        self.prepared_event = threading.Event()

    def prepare(self, deployment: Deployment) -> None:
        deployment.source()  # the source must be loadable
        if self.fail_prepare:
            raise BuildError(self.fail_prepare)
        self.prepared.append(deployment.version)
        self.prepared_event.set()

    def warm_here(self, deployment):
        return self.idle

    def run(self, deployment, context, payload):
        self.calls.append((context, payload))
        if self.during_call is not None:
            self.during_call()
        if self.lost is not None:
            raise self.lost
        return self.outcome

    def retire(self, deployment):
        self.retired.append(deployment.version)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "hello.py"
    path.write_text("def handle(ctx, payload):\n    return payload\n")
    return base64.b64encode(pack(str(path))).decode()


@pytest.fixture
def parts():
    store, jobs, driver = open_store("memory://"), RecordingJobs(), ScriptedDriver()
    functions = FunctionService(store, jobs, driver, ImageCatalog())
    runs = RunService(store, jobs, driver, functions, attempts=2)
    return store, jobs, driver, functions, runs


def spec(source, **extra):
    return dict(name="hello", image="python3", handler="hello.handle", source=source, **extra)


def drain(jobs, functions, runs):
    """Carry out every queued job, as a worker would."""
    handlers = {CREATE_FUNCTION: functions.build, DELETE_FUNCTION: functions.remove,
                EXECUTE_RUN: runs.execute}
    while jobs.submitted:
        job, key = jobs.submitted.pop(0)
        handlers[job](key)


def test_create_stores_function_initialized_and_queues_its_build(parts, source):
    store, jobs, driver, functions, runs = parts
    fn = functions.create("default", spec(source))
    assert fn["status"] == E.INITIALIZED and fn["sourceURL"].startswith("es://")
    assert jobs.submitted == [(CREATE_FUNCTION, "/dispatch/function/default/hello")]
    drain(jobs, functions, runs)
    assert functions.get("default", "hello")["status"] == E.READY
    assert driver.prepared == [fn["faasId"]]


def test_broken_function_ends_in_error_with_the_drivers_reason(parts, source):
    store, jobs, driver, functions, runs = parts
    driver.fail_prepare = "handler module 'hello' has no attribute 'handle'"
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    fn = functions.get("default", "hello")
    assert fn["status"] == E.ERROR and fn["reason"] == [driver.fail_prepare]


@pytest.mark.parametrize("bad, message", [
    (dict(name="bad name"), "name 'bad name' should start with letter"),
    (dict(image=None), "image is required"),
    (dict(image="nope"), "image nope not found"),
    (dict(handler=None), "handler is required"),
    (dict(handler="handle"), "must be MODULE.FUNCTION"),
    (dict(source=None), "either source or sourceURL must be specified"),
    (dict(source="not base64!"), "source is not valid base64"),
    (dict(source=base64.b64encode(b"plain text").decode()), "not a valid tar.gz"),
    (dict(timeout=-1), "timeout must be"),
])
def test_bad_function_spec_is_refused_naming_the_field_and_nothing_is_stored(parts, source, bad, message):
    store, jobs, driver, functions, runs = parts
    with pytest.raises(InvalidInput, match=message):
        functions.create("default", {**spec(source), **bad})
    assert store.list(E.FUNCTION) == [] and store.list(E.SOURCE) == [] and jobs.submitted == []


def test_duplicate_function_conflicts_and_leaves_no_orphan_source(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    with pytest.raises(Conflict, match="Function hello already exists"):
        functions.create("default", spec(source))
    assert len(store.list(E.SOURCE)) == 1


def test_run_on_function_not_ready_is_not_found(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    with pytest.raises(NotFound, match="function hello is not READY"):
        runs.start("default", "hello", {})
    with pytest.raises(NotFound, match="Function nope not found"):
        runs.start("default", "nope", {})


def test_run_executes_once_even_if_its_job_is_delivered_twice(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    run = runs.start("default", "hello", {"input": {"name": "x"}, "blocking": True})
    key = E.key_of(run)
    runs.execute(key)
    runs.execute(key)
    done = runs.get("default", run["name"])
    assert done["status"] == E.READY and done["output"] == {"ok": True}
    assert len(driver.calls) == 1 and driver.calls[0][1] == {"name": "x"}


def test_function_error_ends_run_in_error_with_reason(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.outcome = Outcome(error={"type": "FunctionError", "message": "boom", "stacktrace": []})
    run = runs.start("default", "hello", {})
    drain(jobs, functions, runs)
    done = runs.get("default", run["name"])
    assert done["status"] == E.ERROR and done["error"]["type"] == "FunctionError"
    assert done["reason"] == ["boom"]


def test_delete_removes_function_runs_and_source(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    runs.start("default", "hello", {})
    drain(jobs, functions, runs)
    assert functions.delete("default", "hello")["status"] == E.DELETING
    drain(jobs, functions, runs)
    assert store.list(E.FUNCTION) == store.list(E.RUN) == store.list(E.SOURCE) == []
    assert driver.retired


def test_update_builds_a_new_version_and_drops_the_old_source(parts, source):
    store, jobs, driver, functions, runs = parts
    old = functions.create("default", spec(source))
    drain(jobs, functions, runs)
    new = functions.update("default", "hello", spec(source, timeout=500))
    assert new["status"] == E.UPDATING and new["faasId"] != old["faasId"]
    drain(jobs, functions, runs)
    fn = functions.get("default", "hello")
    assert fn["status"] == E.READY and fn["timeout"] == 500
    assert [s["name"] for s in store.list(E.SOURCE)] == [new["faasId"]]


def test_reconciler_resubmits_a_run_whose_message_was_lost(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    run = runs.start("default", "hello", {})
    jobs.submitted.clear()  # the message is lost
    reconciler = Reconciler(store, jobs, stuck_seconds=5)
    assert reconciler.reconcile_once(now=run["modifiedTime"] + 1) == {}
    assert reconciler.reconcile_once(now=run["modifiedTime"] + 6) == {"resubmitted_execute_run": 1}
    drain(jobs, functions, runs)
    assert runs.get("default", run["name"])["status"] == E.READY


def test_reconciler_retries_a_run_whose_worker_died_then_gives_up(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    run = runs.start("default", "hello", {})
    key = E.key_of(run)
    reconciler = Reconciler(store, jobs, stuck_seconds=5, run_attempts=2)
    for attempt in (1, 2):
        jobs.submitted.clear()
        claimed = store.get(E.RUN, "default", run["name"])
        claimed.update(status=E.CREATING, attempts=attempt, claimExpires=100.0)
        store.update(claimed)  # a worker claimed it and died
        assert reconciler.reconcile_once(now=99.0) == {}
        moved = reconciler.reconcile_once(now=101.0)
        if attempt == 1:
            assert moved == {"retried_run": 1} and jobs.submitted == [(EXECUTE_RUN, key)]
    assert moved == {"failed_run": 1}
    failed = store.get(E.RUN, "default", run["name"])
    assert failed["status"] == E.ERROR and failed["error"]["type"] == "SystemError"
    assert "worker running this run was lost" in failed["error"]["message"]


def test_reconciler_rebuilds_a_function_whose_builder_died(parts, source):
    store, jobs, driver, functions, runs = parts
    fn = functions.create("default", spec(source))
    jobs.submitted.clear()
    fn = store.update(dict(fn, status=E.CREATING, claimExpires=100.0))
    assert Reconciler(store, jobs).reconcile_once(now=101.0) == {"rebuilt_function": 1}
    drain(jobs, functions, runs)
    assert functions.get("default", "hello")["status"] == E.READY


def test_following_reconciler_lists_runs_in_transit_instead_of_watching_runs(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    done = runs.start("default", "hello", {})
    drain(jobs, functions, runs)
    lost = runs.start("default", "hello", {})
    jobs.submitted.clear()
    reconciler = Reconciler(store, jobs, stuck_seconds=5)
    reconciler.follow()
    try:
        # every write of every run would reach a watch: runs are listed by status instead
        assert E.RUN not in reconciler._pending and E.FUNCTION in reconciler._pending
        assert reconciler.reconcile_once(now=lost["modifiedTime"] + 6) == {
            "resubmitted_execute_run": 1}
        assert jobs.submitted == [(EXECUTE_RUN, E.key_of(lost))]
        drain(jobs, functions, runs)
        assert reconciler.reconcile_once(now=lost["modifiedTime"] + 60) == {}
        assert runs.get("default", done["name"])["status"] == E.READY
    finally:
        reconciler.close()


def test_runs_go_to_the_serving_version_while_an_update_builds(parts, source):
    store, jobs, driver, functions, runs = parts
    old = functions.create("default", spec(source))
    drain(jobs, functions, runs)
    new = functions.update("default", "hello", spec(source, timeout=700))
    assert new["status"] == E.UPDATING
    run = runs.start("default", "hello", {})  # not a 404: the old version still serves
    assert run["faasId"] == old["faasId"]
    jobs.submitted = [j for j in jobs.submitted if j[0] == EXECUTE_RUN] + \
        [j for j in jobs.submitted if j[0] != EXECUTE_RUN]  # the run executes first
    drain(jobs, functions, runs)
    assert runs.get("default", run["name"])["status"] == E.READY
    assert driver.retired == [old["faasId"]]  # retired once the new version was READY
    after = runs.start("default", "hello", {})
    assert after["faasId"] == new["faasId"]
    assert [s["name"] for s in store.list(E.SOURCE)] == [new["faasId"]]


def test_an_update_on_an_update_keeps_the_first_serving_version(parts, source):
    store, jobs, driver, functions, runs = parts
    old = functions.create("default", spec(source))
    drain(jobs, functions, runs)
    jobs.submitted.clear()
    first = functions.update("default", "hello", spec(source, timeout=1))
    second = functions.update("default", "hello", spec(source, timeout=2))
    assert second["previous"]["faasId"] == old["faasId"]
    assert first["faasId"] not in {s["name"] for s in store.list(E.SOURCE)}
    drain(jobs, functions, runs)
    fn = functions.get("default", "hello")
    assert fn["status"] == E.READY and fn["timeout"] == 2 and "previous" not in fn


def test_failed_update_ends_in_error_with_the_reason(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.fail_prepare = "SyntaxError in hello.py line 1"
    functions.update("default", "hello", spec(source))
    drain(jobs, functions, runs)
    fn = functions.get("default", "hello")
    assert fn["status"] == E.ERROR and fn["reason"][0] == "SyntaxError in hello.py line 1"
    assert "keeps serving" in fn["reason"][1]


def test_failed_update_keeps_the_old_version_serving_until_an_update_succeeds(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    first = functions.get("default", "hello")["faasId"]
    driver.fail_prepare = "SyntaxError in hello.py line 1"
    functions.update("default", "hello", spec(source))
    drain(jobs, functions, runs)
    run = runs.start("default", "hello", {})
    assert run["faasId"] == first
    drain(jobs, functions, runs)
    assert runs.get("default", run["name"])["status"] == E.READY
    assert first not in driver.retired
    driver.fail_prepare = None
    functions.update("default", "hello", spec(source))
    drain(jobs, functions, runs)
    fn = functions.get("default", "hello")
    assert fn["status"] == E.READY and fn["faasId"] != first and "previous" not in fn
    assert first in driver.retired
    assert runs.start("default", "hello", {})["faasId"] == fn["faasId"]


@pytest.mark.parametrize("bad, message", [
    (dict(schema={"in": {"type": "nope"}}), "schema.in is not a valid JSON Schema"),
    (dict(schema={"out": [1]}), "schema.out must be a JSON Schema object"),
    (dict(secrets="s"), "secrets must be a list"),
    (dict(secrets=["bad name"]), "secrets[0] 'bad name'"),
    (dict(concurrency=-1), "concurrency"),
    (dict(network="yes"), "network must be true or false"),
])
def test_bad_function_extensions_are_refused(parts, source, bad, message):
    store, jobs, driver, functions, runs = parts
    with pytest.raises(InvalidInput) as error:
        functions.create("default", {**spec(source), **bad})
    assert message in error.value.message


def test_runs_are_listed_newest_first_and_limited(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    names = [runs.start("default", "hello", {})["name"] for _ in range(3)]
    listed = runs.list("default", "hello")
    assert [r["name"] for r in listed] == names[::-1]
    assert [r["name"] for r in runs.list("default", "hello", limit=2)] == names[::-1][:2]
    with pytest.raises(InvalidInput, match="limit"):
        runs.list("default", "hello", limit=0)


def test_runs_stay_in_creation_order_whatever_order_they_finish_in(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    first, second = (runs.start("default", "hello", {}) for _ in range(2))
    runs.execute(E.key_of(second))
    runs.execute(E.key_of(first))  # finishes last: the highest revision
    assert [r["name"] for r in runs.list("default", "hello")] == [second["name"], first["name"]]


class ProcessLost(BaseException):
    """Stands for the process dying mid-call: nothing after it runs."""


def test_a_blocking_run_with_warm_instances_here_is_executed_where_it_was_started(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.idle = True
    run = runs.start("default", "hello", {"input": {"name": "x"}, "blocking": True})
    assert run["status"] == E.READY and run["output"] == {"ok": True}
    assert jobs.submitted == []  # no queue, no worker
    assert runs.wait(run) is run
    stored = store.get(E.RUN, "default", run["name"])
    assert stored["status"] == E.READY and stored["attempts"] == 1
    assert stored["executedTime"] and stored["finishedTime"] and "durationMs" in stored
    assert "claimExpires" not in stored and stored["logs"] == {"stdout": [], "stderr": []}
    assert driver.calls == [({"secrets": {}, "event": None, "httpContext": None}, {"name": "x"})]
    # a non-blocking run still goes through the queue
    queued = runs.start("default", "hello", {"input": {}})
    assert queued["status"] == E.INITIALIZED and jobs.submitted == [(EXECUTE_RUN, E.key_of(queued))]


class CountingStore:
    """A store that counts the writes made through it."""

    def __init__(self, store):
        self._store, self.writes = store, []

    def __getattr__(self, name):
        return getattr(self._store, name)

    def add(self, entity):
        self.writes.append(("add", entity["kind"].lower(), entity.get("status")))
        return self._store.add(entity)

    def update(self, entity):
        self.writes.append(("update", entity["kind"].lower(), entity.get("status")))
        return self._store.update(entity)


def counted_parts(claim_after_seconds):
    store, jobs, driver = CountingStore(open_store("memory://")), RecordingJobs(), ScriptedDriver()
    functions = FunctionService(store, jobs, driver, ImageCatalog())
    runs = RunService(store, jobs, driver, functions, claim_after_seconds=claim_after_seconds)
    return store, jobs, driver, functions, runs


@pytest.mark.parametrize("claim_after", [60.0, 0.0])
def test_a_short_call_here_stores_its_run_once_unless_claims_come_first(source, claim_after):
    # 60 s: the call ends long before its claim would fall due, however loaded the machine
    store, jobs, driver, functions, runs = counted_parts(claim_after)
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.idle = True
    store.writes.clear()
    run = runs.start("default", "hello", {"blocking": True})
    assert run["status"] == E.READY and store.get(E.RUN, "default", run["name"]) == run
    claimed = [] if claim_after else [("add", "run", E.CREATING)]
    first = "update" if claim_after == 0 else "add"
    assert store.writes == claimed + [(first, "run", E.READY)]
    # a run named by its caller is stored claimed at once: a second start finds it
    store.writes.clear()
    runs.start("default", "hello", {"blocking": True}, name="mine")
    assert store.writes == [("add", "run", E.CREATING), ("update", "run", E.READY)]


def test_a_run_whose_call_lasts_is_stored_claimed_during_it(source):
    store, jobs, driver, functions, runs = counted_parts(0.05)
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.idle = True
    store.writes.clear()
    seen = []
    driver.during_call = lambda: seen.append(settles(
        lambda: store.list(E.RUN, "default"), "the late claim is written while the call lasts"))
    run = runs.start("default", "hello", {"blocking": True})
    assert [(r["status"], r["attempts"]) for r in seen[0]] == [(E.CREATING, 1)]
    assert store.writes == [("add", "run", E.CREATING), ("update", "run", E.READY)]
    assert run["status"] == E.READY and store.get(E.RUN, "default", run["name"]) == run


def test_a_run_lost_with_its_process_before_its_claim_leaves_no_record(source):
    store, jobs, driver, functions, runs = counted_parts(60)
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.idle, driver.lost = True, ProcessLost()
    with pytest.raises(ProcessLost):  # nor an answer: the run was never accepted
        runs.start("default", "hello", {"input": {"name": "x"}, "blocking": True})
    assert store.list(E.RUN, "default") == [] and jobs.submitted == []


def test_a_run_executed_where_it_was_started_survives_that_process(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.idle, driver.lost = True, ProcessLost()
    # the call lasts until its claim is stored, then the process is lost
    driver.during_call = lambda: settles(lambda: store.list(E.RUN, "default"),
                                         "the late claim is written while the call lasts")
    with pytest.raises(ProcessLost):
        runs.start("default", "hello", {"input": {"name": "x"}, "blocking": True})
    [run] = store.list(E.RUN, "default")
    assert run["status"] == E.CREATING and run["attempts"] == 1  # durable, and claimed
    reconciler = Reconciler(store, jobs, stuck_seconds=5, run_attempts=2)
    assert reconciler.reconcile_once(now=run["claimExpires"] - 1) == {}
    assert reconciler.reconcile_once(now=run["claimExpires"] + 1) == {"retried_run": 1}
    driver.idle, driver.lost = False, None
    drain(jobs, functions, runs)
    done = store.get(E.RUN, "default", run["name"])
    assert done["status"] == E.READY and done["output"] == {"ok": True} and done["attempts"] == 2


def test_a_blocking_run_without_an_instance_here_is_queued_and_one_is_prepared(parts, source):
    store, jobs, driver, functions, runs = parts
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.prepared.clear()
    driver.prepared_event.clear()
    run = runs.start("default", "hello", {"blocking": True})
    assert run["status"] == E.INITIALIZED and jobs.submitted == [(EXECUTE_RUN, E.key_of(run))]
    assert driver.prepared_event.wait(30)
    version = store.get(E.FUNCTION, "default", "hello")["faasId"]
    assert driver.prepared == [version]
    runs.start("default", "hello", {"blocking": True})
    assert driver.prepared == [version]  # once per version


def test_run_here_off_queues_every_run(source):
    store, jobs, driver = open_store("memory://"), RecordingJobs(), ScriptedDriver()
    functions = FunctionService(store, jobs, driver, ImageCatalog())
    runs = RunService(store, jobs, driver, functions, run_here=False)
    functions.create("default", spec(source))
    drain(jobs, functions, runs)
    driver.idle = True
    run = runs.start("default", "hello", {"blocking": True})
    assert run["status"] == E.INITIALIZED and jobs.submitted == [(EXECUTE_RUN, E.key_of(run))]
