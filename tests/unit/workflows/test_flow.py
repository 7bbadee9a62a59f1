"""Flow directives and the flow tasks: do, switch, for, fork."""

from __future__ import annotations

import pytest

from engine.workflows.interpreter import Limits
from engine.workflows.problems import error_type

from .driver import Host, communication, document, echo, run


def names(outcome):
    return [e["name"] for e in outcome.history]


def test_tasks_run_in_declaration_order_each_on_the_previous_output():
    doc = document([{"a": {"set": {"n": 1}}}, {"b": {"set": {"n": "${ .n + 1 }"}}},
                    {"c": {"set": {"n": "${ .n * 10 }"}}}])
    outcome = run(doc, {})
    assert outcome.output == {"n": 20} and names(outcome) == ["a", "b", "c"]


def test_then_jumps_to_a_named_task_of_the_same_list():
    doc = document([{"a": {"set": {"v": "a"}, "then": "c"}}, {"b": {"set": {"v": "b"}}},
                    {"c": {"set": {"v": "${ .v + \"c\" }"}}}])
    outcome = run(doc, {})
    assert outcome.output == {"v": "ac"} and names(outcome) == ["a", "c"]


def test_then_exit_ends_the_current_list_only():
    doc = document([{"outer": {"do": [{"x": {"set": {"v": 1}, "then": "exit"}},
                                      {"y": {"set": {"v": 2}}}]}},
                    {"after": {"set": {"v": "${ .v + 10 }"}}}])
    outcome = run(doc, {})
    assert outcome.output == {"v": 11} and names(outcome) == ["outer", "x", "after"]


def test_then_end_ends_the_workflow_from_any_depth():
    doc = document([{"outer": {"do": [{"x": {"set": {"v": 1}, "then": "end"}},
                                      {"y": {"set": {"v": 2}}}]}},
                    {"after": {"set": {"v": 3}}}])
    outcome = run(doc, {})
    assert outcome.status == "completed" and outcome.output == {"v": 1}
    assert names(outcome) == ["outer", "x"]
    assert [e["status"] for e in outcome.history] == ["completed", "completed"]


def test_then_continue_is_the_default():
    doc = document([{"a": {"set": {"v": 1}, "then": "continue"}}, {"b": {"set": {"v": 2}}}])
    assert run(doc, {}).output == {"v": 2}


def test_a_backward_then_loops_with_distinct_instance_ids():
    doc = document([{"inc": {"set": {"n": "${ .n + 1 }"}}},
                    {"check": {"switch": [{"more": {"when": ".n < 3", "then": "inc"}},
                                          {"done": {"then": "exit"}}]}}])
    outcome = run(doc, {"n": 0})
    assert outcome.output == {"n": 3}
    assert [e["id"] for e in outcome.history] == [
        "/do/0/inc#1", "/do/1/check#1", "/do/0/inc[inc*2]#1", "/do/1/check[check*2]#1",
        "/do/0/inc[inc*3]#1", "/do/1/check[check*3]#1"]


def test_an_endless_then_loop_hits_the_iteration_limit():
    doc = document([{"spin": {"set": {"v": 1}, "then": "spin"}}])
    outcome = run(doc, {}, limits=Limits(max_iterations=50))
    assert outcome.status == "faulted"
    assert outcome.error["type"] == error_type("runtime")
    assert outcome.error["title"] == "Limit exceeded"
    assert "(max_iterations)" in outcome.error["detail"]
    assert outcome.error["instance"] == "/do/0/spin"


@pytest.mark.parametrize("value,expected", [(5, "low"), (50, "high"), (500, "default")])
def test_switch_takes_the_first_matching_case_or_the_default(value, expected):
    doc = document([{"route": {"switch": [
        {"low": {"when": ".v < 10", "then": "low"}},
        {"high": {"when": ".v < 100", "then": "high"}},
        {"other": {"then": "default"}}]}},
        {"low": {"set": {"r": "low"}, "then": "end"}},
        {"high": {"set": {"r": "high"}, "then": "end"}},
        {"default": {"set": {"r": "default"}}}])
    assert run(doc, {"v": value}).output == {"r": expected}


def test_switch_without_a_match_or_default_continues_with_its_input():
    doc = document([{"route": {"switch": [{"no": {"when": "false", "then": "end"}}]}},
                    {"next": {"set": {"seen": "${ . }"}}}])
    assert run(doc, {"v": 1}).output == {"seen": {"v": 1}}


def test_for_iterates_with_each_and_at_threading_the_output():
    doc = document([{"loop": {"for": {"each": "pet", "in": ".pets", "at": "i"},
                              "do": [{"add": {"set": {
                                  "names": "${ .names + [$pet.name + ($i | tostring)] }"}}}]}}])
    outcome = run(doc, {"pets": [{"name": "a"}, {"name": "b"}], "names": []})
    assert outcome.output == {"names": ["a0", "b1"]}
    assert [e["id"] for e in outcome.history] == [
        "/do/0/loop#1", "/do/0/loop/do/0/add[for=0]#1", "/do/0/loop/do/0/add[for=1]#1"]


def test_for_defaults_to_item_and_index_and_stops_on_while():
    doc = document([{"loop": {"for": {"in": "${ .xs }"}, "while": "${ $index < 2 }",
                              "do": [{"acc": {"set": {"xs": "${ .xs }",
                                                      "sum": "${ .sum + $item }"}}}]}}])
    assert run(doc, {"xs": [1, 2, 4], "sum": 0}).output == {"xs": [1, 2, 4], "sum": 3}


def test_for_over_an_empty_or_null_collection_outputs_its_input():
    doc = document([{"loop": {"for": {"in": ".none"}, "do": [{"x": {"set": {"v": 1}}}]}}])
    assert run(doc, {"k": 1}).output == {"k": 1}


def test_for_over_a_non_array_faults_with_an_expression_error():
    doc = document([{"loop": {"for": {"in": ".n"}, "do": [{"x": {"set": {"v": 1}}}]}}])
    outcome = run(doc, {"n": 3})
    assert outcome.error["type"] == error_type("expression")
    assert outcome.error["instance"] == "/do/0/loop"


def test_for_beyond_the_iteration_limit_faults():
    doc = document([{"loop": {"for": {"in": ".xs"}, "do": [{"x": {"set": {"v": 1}}}]}}])
    outcome = run(doc, {"xs": list(range(11))}, limits=Limits(max_iterations=10))
    assert outcome.status == "faulted"
    assert outcome.error["detail"] == "for over 11 items; the limit is 10 (max_iterations)"


def test_nested_for_ids_carry_every_iteration():
    doc = document([{"rows": {"for": {"each": "r", "in": ".rows"}, "do": [
        {"cols": {"for": {"each": "c", "in": "$r"}, "do": [
            {"cell": {"call": "fn", "with": {"v": "${ $c }"}}}]}}]}}])
    host = Host(doc, {"rows": [[1, 2], [3]]}, echo)
    assert host.run().status == "completed"
    assert [a.id for a in host.asked] == [
        "/do/0/rows/do/0/cols/do/0/cell[for=0,for=0]#1",
        "/do/0/rows/do/0/cols/do/0/cell[for=0,for=1]#1",
        "/do/0/rows/do/0/cols/do/0/cell[for=1,for=0]#1"]
    assert [a.spec["input"] for a in host.asked] == [{"v": 1}, {"v": 2}, {"v": 3}]


def fork(branches, compete=False):
    return document([{"fan": {"fork": {"compete": compete, "branches": branches}}}])


def test_fork_outputs_every_branch_in_declaration_order_and_asks_all_at_once():
    doc = fork([{"a": {"call": "fa", "with": {"x": "${ .x }"}}},
                {"b": {"set": {"y": "${ .x }"}}},
                {"c": {"call": "fc"}}])
    host = Host(doc, {"x": 1}, echo)
    first = host.replay()
    assert first.status == "running"
    assert [a.id for a in first.pending] == ["/do/0/fan/fork/branches/0/a#1",
                                             "/do/0/fan/fork/branches/2/c#1"]
    outcome = host.run()
    assert outcome.output == [{"echo": {"x": 1}}, {"y": 1}, {"echo": {"x": 1}}]


def test_fork_branch_fault_faults_the_fork_and_abandons_the_others():
    doc = fork([{"slow": {"call": "slow"}}, {"bad": {"call": "bad"}}])
    host = Host(doc, {}, lambda a: communication(500) if a.spec["function"] == "bad" else None)
    outcome = host.run()
    assert outcome.status == "faulted"
    assert outcome.error["instance"] == "/do/0/fan/fork/branches/1/bad"
    statuses = {e["name"]: e["status"] for e in outcome.history}
    assert statuses == {"fan": "faulted", "slow": "cancelled", "bad": "faulted"}
    assert outcome.pending == []


def test_fork_beyond_the_branch_limit_faults():
    doc = fork([{f"b{i}": {"set": {"i": i}}} for i in range(4)])
    outcome = run(doc, {}, limits=Limits(max_branches=3))
    assert outcome.error["detail"] == "fork with 4 branches; the limit is 3 (max_branches)"


def test_compete_the_branch_finishing_first_wins_not_the_first_recorded():
    doc = fork([{"a": {"call": "a"}}, {"b": {"call": "b"}}], compete=True)
    host = Host(doc, {})
    pending = host.replay().pending
    a, b = pending
    # b is recorded first but finished later than a: a wins once both are known
    host.record(b, "B", seconds=5)
    host.record(a, "A", seconds=2)
    outcome = host.replay()
    assert outcome.output == "A" and outcome.history[0]["winner"] == "a"
    # b did run to its end, so its entry says so; only a's output counts
    assert {e["name"]: e["status"] for e in outcome.history} == {
        "fan": "completed", "a": "completed", "b": "completed"}


def test_compete_loser_still_running_is_cancelled():
    doc = fork([{"a": {"call": "a"}}, {"b": {"call": "b"}}], compete=True)
    host = Host(doc, {})
    a, b = host.replay().pending
    host.record(b, "B", seconds=5)
    outcome = host.replay()
    assert {e["name"]: e["status"] for e in outcome.history} == {
        "fan": "completed", "a": "cancelled", "b": "completed"}


def test_compete_winner_sticks_once_recorded():
    doc = fork([{"a": {"call": "a"}}, {"b": {"call": "b"}}], compete=True)
    host = Host(doc, {})
    a, b = host.replay().pending
    host.record(b, "B", seconds=5)
    outcome = host.replay()
    assert outcome.status == "completed" and outcome.output == "B"
    assert outcome.pending == []
    # a's result arrives afterwards with an earlier finish: b stays the winner
    host.record(a, "A", seconds=1)
    assert host.replay().output == "B"


def test_compete_ignores_faulted_branches_until_all_fault():
    doc = fork([{"a": {"call": "a"}}, {"b": {"call": "b"}}], compete=True)
    host = Host(doc, {})
    a, b = host.replay().pending
    host.record(a, communication(503), seconds=1)
    outcome = host.replay()
    assert outcome.status == "running" and [p.id for p in outcome.pending] == [b.id]
    host.record(b, communication(500), seconds=2)
    outcome = host.replay()
    assert outcome.status == "faulted" and outcome.error["status"] == 503


def test_compete_winner_context_only():
    doc = document([{"fan": {"fork": {"compete": True, "branches": [
        {"a": {"call": "a", "export": {"as": "{from: \"a\"}"}}},
        {"b": {"set": {"v": 1}, "export": {"as": "{from: \"b\"}"}}}]}}},
        {"after": {"set": "${ $context }"}}])
    outcome = run(doc, {}, echo)
    assert outcome.output == {"from": "b"}  # the pure branch finished first


def test_fork_branches_thread_the_context_in_declaration_order():
    doc = document([{"fan": {"fork": {"branches": [
        {"a": {"set": {"v": 1}, "export": {"as": "$context + {a: 1}"}}},
        {"b": {"set": {"v": 2}, "export": {"as": "$context + {b: 2}"}}}]}}},
        {"after": {"set": "${ $context }"}}])
    assert run(doc, {}).output == {"a": 1, "b": 2}


def test_then_end_inside_a_branch_ends_the_workflow():
    doc = document([{"fan": {"fork": {"branches": [
        {"a": {"set": {"v": "a"}, "then": "end"}}, {"b": {"call": "slow"}}]}}},
        {"after": {"set": {"v": "after"}}}])
    outcome = run(doc, {})
    assert outcome.status == "completed" and outcome.output == {"v": "a"}


def test_fork_fault_sticks_when_an_earlier_failure_is_recorded_later():
    doc = fork([{"a": {"call": "a"}}, {"b": {"call": "b"}}])
    host = Host(doc, {})
    a, b = host.replay().pending
    host.record(b, communication(502), seconds=5)
    assert host.replay().error["status"] == 502
    host.record(a, communication(503), seconds=1)  # finished earlier, recorded later
    assert host.replay().error["status"] == 502
