"""The durable host of workflows on the memory store, jobs run by hand: activities start
once per attempt, timers fire only when due (or by the reconciler when overdue), the
reconciler re-drives and prunes, listeners match events, cancel and suspend hold."""

from __future__ import annotations

import time

import pytest
from cryptography.fernet import Fernet, MultiFernet

from engine import entities as E
from engine.errors import Conflict, InvalidInput, NotFound
from engine.jobs import ADVANCE_EXECUTION, RUN_ACTIVITY, Jobs
from engine.scheduler.reconciler import Reconciler
from engine.services.activities import ActivityService
from engine.services.executions import ExecutionService, activity_records
from engine.services.listeners import ListenerService, consume
from engine.services.workflows import WorkflowService
from engine.store import open_store

ORG = "acme"
DSL = {"dsl": "1.0.0", "namespace": "t", "version": "1.0.0"}


class Queue(Jobs):
    """Keeps submitted jobs (with their delays) to be run by the test."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, str, float | None]] = []

    def submit(self, job: str, key: str, delay: float | None = None) -> None:
        self.jobs.append((job, key, delay))

    def take(self) -> list[tuple[str, str, float | None]]:
        jobs, self.jobs = self.jobs, []
        return jobs


@pytest.fixture
def host():
    store, jobs = open_store("memory://"), Queue()
    executions = ExecutionService(store, jobs, lambda org, names: {},
                                  MultiFernet([Fernet(Fernet.generate_key())]))
    emitted: list[tuple[str, dict]] = []
    activities = ActivityService(store, jobs, runs=None, executions=executions,
                                 emit=lambda org, event: emitted.append((org, event)))
    listeners = ListenerService(store, activities.finish)
    yield store, jobs, WorkflowService(store), executions, activities, listeners, emitted
    store.close()


def workflow(workflows, name, tasks, **extra):
    return workflows.create(ORG, {"name": name, "definition": {
        "document": dict(DSL, name=name), "do": tasks, **extra}})


def drain(jobs, executions, activities, rounds=20):
    """Run queued jobs (ignoring delays) until none are left."""
    for _ in range(rounds):
        batch = jobs.take()
        if not batch:
            return
        for job, key, _ in batch:
            (executions.advance if job == ADVANCE_EXECUTION else activities.run)(key)


def test_a_duplicate_advance_starts_each_activity_once(host):
    store, jobs, workflows, executions, *_ = host
    workflow(workflows, "nap", [{"nap": {"wait": {"seconds": 30}}}])
    execution = executions.start(ORG, "nap", {"input": {}})
    (job, key, _), = jobs.take()
    assert job == ADVANCE_EXECUTION
    executions.advance(key)
    executions.advance(key)  # at-least-once delivery
    records = activity_records(store, ORG, execution["name"])
    assert len(records) == 1 and records[0]["activityKind"] == "timer"
    submitted = jobs.take()
    assert [(j, d is not None and 29 < d <= 30) for j, _, d in submitted] == \
        [(RUN_ACTIVITY, True)]
    assert store.get(E.EXECUTION, ORG, execution["name"])["status"] == "waiting"


def test_a_timer_fires_only_once_due(host):
    store, jobs, workflows, executions, activities, *_ = host
    workflow(workflows, "nap", [{"nap": {"wait": {"seconds": 30}}},
                                {"after": {"set": {"woke": True}}}])
    execution = executions.start(ORG, "nap", {"input": {}})
    executions.advance(jobs.take()[0][1])
    (_, timer_key, _), = jobs.take()
    activities.run(timer_key)  # delivered early: queued again for the rest
    (job, key, delay), = jobs.take()
    assert (job, key) == (RUN_ACTIVITY, timer_key) and 0 < delay <= 30
    assert store.get(E.ACTIVITY, *E.parse_key(timer_key)[1:])["status"] == "started"
    store.modify(E.ACTIVITY, *E.parse_key(timer_key)[1:],
                 lambda r: dict(r, due=time.time() - 1))
    activities.run(timer_key)
    drain(jobs, executions, activities)
    done = store.get(E.EXECUTION, ORG, execution["name"])
    assert done["status"] == "completed" and done["output"] == {"woke": True}
    assert [t["name"] for t in done["tasks"]] == ["nap", "after"]


def test_the_reconciler_fires_overdue_timers_and_prunes_old_executions(host):
    store, jobs, workflows, executions, activities, *_ = host
    reconciler = Reconciler(store, jobs, stuck_seconds=2, executions=executions)
    workflow(workflows, "nap", [{"nap": {"wait": {"seconds": 1}}}])
    execution = executions.start(ORG, "nap", {"input": {}})
    executions.advance(jobs.take()[0][1])
    (_, timer_key, _), = jobs.take()  # the delayed firing is lost
    assert reconciler.reconcile_once().get("fired_timer") is None  # not due yet
    store.modify(E.ACTIVITY, *E.parse_key(timer_key)[1:],
                 lambda r: dict(r, due=time.time() - 1))
    moved = reconciler.reconcile_once()
    assert moved.get("fired_timer") == 1
    drain(jobs, executions, activities)
    assert store.get(E.EXECUTION, ORG, execution["name"])["status"] == "completed"
    assert reconciler.reconcile_once(now=time.time() + 60).get("pruned_execution") is None
    later = time.time() + executions.retention_seconds + 10
    assert reconciler.reconcile_once(now=later).get("pruned_execution") == 1
    with pytest.raises(NotFound):
        store.get(E.EXECUTION, ORG, execution["name"])
    assert activity_records(store, ORG, execution["name"]) == []


def test_the_reconciler_redrives_an_execution_whose_advance_was_lost(host):
    store, jobs, workflows, executions, activities, *_ = host
    reconciler = Reconciler(store, jobs, stuck_seconds=2, executions=executions)
    workflow(workflows, "quick", [{"a": {"set": {"x": 1}}}])
    execution = executions.start(ORG, "quick", {"input": {}})
    jobs.take()  # the advance message is lost
    assert reconciler.reconcile_once(now=time.time() + 5).get(
        "resubmitted_advance_execution") == 1
    drain(jobs, executions, activities)
    assert store.get(E.EXECUTION, ORG, execution["name"])["output"] == {"x": 1}


def test_emit_derives_the_event_id_from_the_execution_and_task(host):
    store, jobs, workflows, executions, activities, _, emitted = host
    workflow(workflows, "shout", [{"say": {"emit": {"event": {"with": {
        "source": "https://t.example", "type": "t.said", "data": {"n": "${ .n }"}}}}}}])
    execution = executions.start(ORG, "shout", {"input": {"n": 3}})
    drain(jobs, executions, activities)
    (org, event), = emitted
    assert org == ORG and event["type"] == "t.said" and event["data"] == {"n": 3}
    record, = activity_records(store, ORG, execution["name"])
    activities.finish(record, value=None)  # a second delivery records nothing new
    activities.run(E.key_of(record))
    assert len(emitted) == 1


def test_listeners_complete_on_matching_events(host):
    store, jobs, workflows, executions, activities, listeners, _ = host
    workflow(workflows, "ear", [{"hear": {"listen": {"to": {"all": [
        {"with": {"type": "t.a"}}, {"with": {"type": "t.b", "region": "eu-.*"}}]}}}}])
    execution = executions.start(ORG, "ear", {"input": {}})
    drain(jobs, executions, activities)
    assert store.get(E.EXECUTION, ORG, execution["name"])["status"] == "waiting"
    event = {"specversion": "1.0", "source": "/s", "id": "1", "type": "t.a", "data": 1,
             "region": "eu-west"}
    assert listeners.deliver(ORG, event) == 0
    assert listeners.deliver(ORG, event) == 0  # the same event counts once
    assert listeners.deliver(ORG, dict(event, id="2", type="t.c")) == 0
    assert listeners.deliver(ORG, dict(event, id="3", type="t.b", data=2)) == 1
    drain(jobs, executions, activities)
    done = store.get(E.EXECUTION, ORG, execution["name"])
    assert done["status"] == "completed" and done["output"] == [1, 2]
    assert store.list(E.LISTENER, ORG) == []


def test_consumption_strategies():
    one = {"one": {"with": {"type": "x", "data": {"n": "${ .data.n > 1 }"}}}}
    assert consume(one, {}, {"type": "x", "data": {"n": 2}}) == ({"0": 1}, True)
    assert consume(one, {}, {"type": "x", "data": {"n": 1}}) is None
    until = {"any": [{"with": {"type": "x"}}], "until": {"one": {"with": {"type": "stop"}}}}
    assert consume(until, {}, {"type": "x"}) == ({"count": 1}, False)
    assert consume({"any": []}, {}, {"type": "y"}) == ({"count": 1}, True)


def test_cancel_and_suspend(host):
    store, jobs, workflows, executions, activities, *_ = host
    workflow(workflows, "nap", [{"nap": {"wait": {"hours": 1}}}, {"b": {"set": {"b": 1}}}])
    execution = executions.start(ORG, "nap", {"input": {}})
    drain(jobs, executions, activities)
    name = execution["name"]
    assert executions.suspend(ORG, name)["status"] == "suspended"
    executions.advance(E.key(E.EXECUTION, ORG, name))  # a suspended execution holds
    assert store.get(E.EXECUTION, ORG, name)["status"] == "suspended"
    assert executions.resume(ORG, name)["status"] == "waiting"
    with pytest.raises(Conflict, match="not suspended"):
        executions.resume(ORG, name)
    executions.cancel(ORG, name)
    drain(jobs, executions, activities)
    cancelled = store.get(E.EXECUTION, ORG, name)
    assert cancelled["status"] == "cancelled"
    with pytest.raises(Conflict, match="cancelled already"):
        executions.cancel(ORG, name)
    with pytest.raises(NotFound):
        executions.cancel(ORG, "nope")


def test_start_checks_the_workflow_and_its_input_schema(host):
    _, jobs, workflows, executions, *_ = host
    with pytest.raises(NotFound, match="workflow nope not found"):
        executions.start(ORG, "nope", {})
    schema = {"format": "json", "document": {"type": "object", "required": ["n"]}}
    workflow(workflows, "typed", [{"a": {"set": {"x": 1}}}], input={"schema": schema})
    with pytest.raises(InvalidInput, match="input.schema"):
        executions.start(ORG, "typed", {"input": {}})
    first = executions.start(ORG, "typed", {"input": {"n": 1}}, name="once")
    again = executions.start(ORG, "typed", {"input": {"n": 2}}, name="once")
    assert again["existing"] and again["id"] == first["id"]
    assert [j for j, _, _ in jobs.take()] == [ADVANCE_EXECUTION]


def test_the_reconciler_follows_up_an_execution_whose_worker_died_after_finishing(host):
    """The next ``schedule.after`` execution starts even when the worker that wrote the
    last state died before setting it off."""
    from engine.services.workflow_triggers import WorkflowTriggers
    store, jobs, workflows, executions, activities, *_ = host
    triggers = WorkflowTriggers(store, executions)
    reconciler = Reconciler(store, jobs, stuck_seconds=2, executions=executions)
    workflow(workflows, "again", [{"a": {"set": {"x": 1}}}], schedule={"after": {"seconds": 30}})
    execution = executions.start(ORG, "again", {"input": {}})
    drain(jobs, executions, activities)
    # as if its worker died right after the final write: nothing set off, nothing recorded
    first = store.modify(E.EXECUTION, ORG, execution["name"],
                         lambda e: {k: v for k, v in e.items() if k != "followedUp"})
    assert first["status"] == "completed"
    assert len(store.list(E.EXECUTION, ORG)) == 1
    executions.on_finished.append(triggers.finished)
    assert reconciler.reconcile_once().get("followed_up_execution") is None  # too early
    moved = reconciler.reconcile_once(now=time.time() + 5)
    assert moved.get("followed_up_execution") == 1
    assert len(store.list(E.EXECUTION, ORG)) == 2  # the next one, created once
    assert store.get(E.EXECUTION, ORG, execution["name"])["followedUp"] is True
    assert reconciler.reconcile_once(now=time.time() + 5).get("followed_up_execution") is None
    assert len(store.list(E.EXECUTION, ORG)) == 2
