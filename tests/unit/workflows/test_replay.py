"""Replay properties: stable ids and times, timeouts, cancellation, limits, scale."""

from __future__ import annotations

import datetime as dt

from engine.workflows.definition import load
from engine.workflows.interpreter import ActivityResult, Limits, interpret
from engine.workflows.problems import error_type

from .driver import RUNTIME, START, Host, document, iso, run

TIMEOUT = error_type("timeout")


def test_the_same_replay_asks_for_the_same_activities():
    doc = document([{"a": {"call": "f", "with": {"x": "${ .x }"}}},
                    {"b": {"wait": {"seconds": 5}}}])
    host = Host(doc, {"x": 1})
    first, second = host.replay(), host.replay()
    assert first.pending == second.pending
    assert first.history == second.history


def test_start_times_stay_those_of_the_first_replay_that_saw_the_task():
    doc = document([{"a": {"set": {"v": 1}}}, {"b": {"call": "f"}}, {"c": {"set": {"v": 2}}}])
    host = Host(doc, {})
    first = host.replay()
    assert [e["startedTime"] for e in first.history] == ["2026-01-01T00:00:00Z"] * 2
    host.clock = START + dt.timedelta(minutes=5)
    [call] = first.pending
    host.record(call, "ok", started=START + dt.timedelta(seconds=10), seconds=20)
    outcome = host.replay()
    a, b, c = outcome.history
    assert a["startedTime"] == "2026-01-01T00:00:00Z"
    assert (b["startedTime"], b["finishedTime"]) == ("2026-01-01T00:00:10Z",
                                                     "2026-01-01T00:00:30Z")
    assert c["startedTime"] == c["finishedTime"] == "2026-01-01T00:05:00Z"


def test_history_lists_tasks_in_start_order_across_branches():
    doc = document([{"fan": {"fork": {"branches": [
        {"a": {"do": [{"a1": {"call": "a1"}}, {"a2": {"set": {"v": 1}}}]}},
        {"b": {"call": "b"}}]}}}])
    host = Host(doc, {})
    a1, b = host.replay().pending
    host.clock = START + dt.timedelta(seconds=1)
    host.record(b, "B", started=START, seconds=1)
    host.replay()
    host.clock = START + dt.timedelta(seconds=9)
    host.record(a1, "A", started=START, seconds=8)
    outcome = host.replay()
    assert [e["name"] for e in outcome.history] == ["fan", "a", "a1", "b", "a2"]


def test_task_timeout_is_a_timer_beside_the_task_and_wins_if_it_fires_first():
    doc = document([{"slow": {"call": "slow", "timeout": {"after": {"seconds": 30}}}},
                    {"after": {"set": {"v": 1}}}])
    host = Host(doc, {})
    outcome = host.replay()
    call, timer = outcome.pending
    assert call.id == "/do/0/slow#1"
    assert (timer.id, timer.kind, timer.reference, timer.spec) == (
        "/do/0/slow/timeout#1", "timer", "/do/0/slow/timeout",
        {"seconds": 30.0, "purpose": "timeout"})
    host.record(timer, True, seconds=30)
    outcome = host.replay()
    assert outcome.status == "faulted"
    assert outcome.error == {"type": TIMEOUT, "status": 408, "title": "Timeout",
                             "detail": "task slow timed out after 30s",
                             "instance": "/do/0/slow"}
    assert outcome.pending == []
    # the call's result arriving later, finished after the timer, changes nothing
    host.record(call, "late", seconds=40)
    assert host.replay().error["type"] == TIMEOUT


def test_task_that_finishes_before_its_timeout_completes_and_stays_completed():
    doc = document([{"quick": {"call": "q", "timeout": {"after": {"seconds": 30}}}}])
    host = Host(doc, {})
    call, timer = host.replay().pending
    host.record(call, "done", seconds=5)
    outcome = host.replay()
    assert outcome.status == "completed" and outcome.output == "done"
    host.record(timer, True, seconds=30)
    assert host.replay().status == "completed"


def test_a_timeout_is_catchable_and_applies_to_composite_tasks():
    doc = document([{"guard": {"try": [{"steps": {"timeout": "short", "do": [
        {"one": {"call": "one"}}, {"two": {"call": "two"}}]}}],
        "catch": {"errors": {"with": {"type": TIMEOUT}}, "do": [
            {"fallback": {"set": {"timedOut": True}}}]}}}],
        use={"timeouts": {"short": {"after": "PT10S"}}})
    durations = {"one": 4.0, "two": 8.0}
    host = Host(doc, {}, lambda a: True if a.kind == "timer" else a.spec["function"],
                duration=lambda a: a.spec["seconds"] if a.kind == "timer"
                else durations[a.spec["function"]])
    outcome = host.run()
    assert outcome.status == "completed" and outcome.output == {"timedOut": True}
    steps = next(e for e in outcome.history if e["name"] == "steps")
    assert steps["error"]["type"] == TIMEOUT and steps["error"]["instance"] == \
        "/do/0/guard/try/0/steps"


def test_workflow_timeout_faults_the_execution():
    doc = document([{"w": {"wait": {"minutes": 5}}}], timeout={"after": {"minutes": 1}})
    host = Host(doc, {})
    wait, timer = host.replay().pending
    assert (timer.id, timer.spec) == ("/timeout#1", {"seconds": 60.0, "purpose": "timeout"})
    host.record(timer, True, seconds=60)
    outcome = host.replay()
    assert outcome.status == "faulted"
    assert outcome.error["type"] == TIMEOUT and outcome.error["instance"] == "/"
    assert outcome.history[0]["status"] == "cancelled"


def test_cancelled_asks_for_nothing_and_cancels_running_entries():
    doc = document([{"a": {"set": {"v": 1}}}, {"b": {"call": "f"}}])
    host = Host(doc, {})
    outcome = host.replay(cancelled=True)
    assert outcome.status == "cancelled" and outcome.pending == []
    assert [e["status"] for e in outcome.history] == ["completed", "cancelled"]


def test_history_limit():
    doc = document([{"loop": {"for": {"in": ".xs"}, "do": [{"x": {"set": {"v": 1}}}]}}])
    outcome = run(doc, {"xs": list(range(20))}, limits=Limits(max_history=10))
    assert outcome.status == "faulted"
    assert outcome.error["type"] == error_type("runtime")
    assert outcome.error["detail"] == "the history reached 10 task executions (max_history)"


def test_state_size_limit_covers_outputs_and_context():
    doc = document([{"big": {"set": {"s": "${ [range(1000)] }"}}}])
    outcome = run(doc, {}, limits=Limits(max_state_bytes=1000))
    assert outcome.status == "faulted"
    assert outcome.error["detail"].startswith("the output of task big is ")
    assert outcome.error["detail"].endswith("the limit is 1000 (max_state_bytes)")
    doc = document([{"big": {"call": "f", "export": {"as": "{all: [range(1000)]}"},
                             "output": {"as": "1"}}}])
    outcome = run(doc, {}, lambda a: "x", limits=Limits(max_state_bytes=1000))
    assert outcome.error["detail"].startswith("the workflow context is ")


def test_limits_are_not_caught_by_try():
    doc = document([{"guard": {"try": [{"loop": {"for": {"in": ".xs"}, "do": [
        {"x": {"set": {"v": 1}}}]}}], "catch": {}}}])
    outcome = run(doc, {"xs": [1, 2, 3]}, limits=Limits(max_iterations=2))
    assert outcome.status == "faulted" and "max_iterations" in outcome.error["detail"]


def test_a_thousand_branch_fork_replays_to_completion():
    branches = [{f"b{i}": {"call": "echo", "with": {"i": i, "x": "${ .x }"}}}
                for i in range(1000)]
    wf = load(document([{"fan": {"fork": {"branches": branches}}},
                        {"count": {"set": {"n": "${ length }", "last": "${ .[-1] }"}}}]))
    first = interpret(wf, {"x": 7}, {}, now=START, runtime=RUNTIME)
    assert len(first.pending) == 1000
    assert len({a.id for a in first.pending}) == 1000
    results = {a.id: ActivityResult(a.id, True, value=a.spec["input"], started=iso(START),
                                    finished=iso(START)) for a in first.pending}
    half = dict(list(results.items())[:500])
    middle = interpret(wf, {"x": 7}, half, previous_history=first.history, now=START,
                       runtime=RUNTIME)
    assert middle.status == "running" and len(middle.pending) == 500
    done = interpret(wf, {"x": 7}, results, previous_history=middle.history, now=START,
                     runtime=RUNTIME)
    assert done.status == "completed"
    assert done.output == {"n": 1000, "last": {"i": 999, "x": 7}}
    assert len(done.history) == 1002


def test_a_cancelled_timeout_timer_never_fires():
    doc = document([{"slow": {"call": "slow", "timeout": {"after": {"seconds": 30}}}}])
    host = Host(doc, {})
    call, timer = host.replay().pending
    host.results[timer.id] = ActivityResult(timer.id, False, error={"detail": "cancelled"},
                                            started=iso(START), finished=iso(START))
    outcome = host.replay()
    assert outcome.status == "running" and [a.id for a in outcome.pending] == [call.id]


def test_task_started_at_is_the_activity_start_in_every_replay():
    doc = document([{"c": {"call": "f", "output": {"as": "${ $task.startedAt.iso8601 }"}}}])
    host = Host(doc, {})
    [call] = host.replay().pending
    host.clock = START + dt.timedelta(seconds=50)
    host.replay()
    host.record(call, "x", started=START + dt.timedelta(seconds=3), seconds=1)
    outputs = {host.replay().output for _ in range(3)}
    assert outputs == {"2026-01-01T00:00:03Z"}


def test_state_size_limit_catches_a_long_string_in_a_small_object():
    doc = document([{"c": {"call": "f"}}])
    outcome = run(doc, {}, lambda a: {"blob": "x" * 2000}, limits=Limits(max_state_bytes=1000))
    assert outcome.status == "faulted"
    assert outcome.error["detail"].startswith("the output of task c is 2011 bytes of JSON")
    small = run(doc, {}, lambda a: {"k": "x" * 100}, limits=Limits(max_state_bytes=1000))
    assert small.status == "completed"


def test_an_interpreter_bug_faults_the_execution_instead_of_raising(monkeypatch):
    from engine.workflows import tasks

    def broken(*args):
        raise KeyError("oops")
    monkeypatch.setattr(tasks.FlowTasks, "task_set", broken)
    outcome = run(document([{"a": {"set": {"v": 1}}}]), {})
    assert outcome.status == "faulted"
    assert outcome.error["type"] == error_type("runtime")
    assert outcome.error["detail"] == "interpreter error: KeyError: 'oops'"


def test_a_timed_out_attempt_is_retried_with_fresh_ids():
    doc = document([{"guard": {"try": [{"get": {"call": "f", "timeout": {"after": "PT10S"}}}],
                               "catch": {"errors": {"with": {"type": TIMEOUT}},
                                         "retry": {"delay": "PT1S",
                                                   "limit": {"attempt": {"count": 3}}}}}}])
    host = Host(doc, {})
    call, timer = host.replay().pending
    assert (call.id, timer.id) == ("/do/0/guard/try/0/get#1", "/do/0/guard/try/0/get/timeout#1")
    host.record(timer, True, seconds=10)
    [retry] = host.replay().pending
    assert retry.id == "/do/0/guard/catch/retry#1"
    host.record(retry, True, started=START + dt.timedelta(seconds=10), seconds=1)
    host.record(call, "too late", seconds=30)  # the first attempt's answer is ignored
    call2, timer2 = host.replay().pending
    assert (call2.id, timer2.id) == ("/do/0/guard/try/0/get#2",
                                     "/do/0/guard/try/0/get/timeout#2")
    host.record(call2, "in time", started=START + dt.timedelta(seconds=11), seconds=2)
    outcome = host.replay()
    assert outcome.status == "completed" and outcome.output == "in time"
    assert [(e["id"], e["status"]) for e in outcome.history] == [
        ("/do/0/guard#1", "completed"), ("/do/0/guard/try/0/get#1", "faulted"),
        ("/do/0/guard/try/0/get#2", "completed")]
