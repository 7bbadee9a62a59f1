"""raise, try/catch (filters, as, when/exceptWhen, catch.do) and retries on a fake clock."""

from __future__ import annotations

import pytest

from engine.workflows.problems import error_type

from .driver import Fail, Host, communication, document, run

RUNTIME_ERROR = error_type("runtime")


def raising(**error):
    return {"raise": {"error": {"type": "https://example.com/errors/oops", "status": 418,
                                **error}}}


def test_raise_sets_the_instance_to_the_task_reference():
    outcome = run(document([{"boom": raising(title="Oops", detail="${ \"n=\" + (.n|tostring) }")}]),
                  {"n": 3})
    assert outcome.status == "faulted"
    assert outcome.error == {"type": "https://example.com/errors/oops", "status": 418,
                             "title": "Oops", "detail": "n=3", "instance": "/do/0/boom"}
    assert outcome.history[0]["status"] == "faulted"
    assert outcome.history[0]["error"] == outcome.error


def test_raise_keeps_an_explicit_instance_and_reusable_errors():
    doc = document([{"boom": {"raise": {"error": "notFound"}}}],
                   use={"errors": {"notFound": {"type": "https://e/nf", "status": 404,
                                                "instance": "/custom"}}})
    assert run(doc, {}).error == {"type": "https://e/nf", "status": 404, "instance": "/custom"}


def trying(tasks, **catch):
    return document([{"guard": {"try": tasks, "catch": catch}},
                     {"after": {"set": {"after": "${ . }"}}}])


@pytest.mark.parametrize("filter_,caught", [
    ({"type": "https://example.com/errors/oops"}, True),
    ({"type": "https://example.com/errors/other"}, False),
    ({"status": 418}, True),
    ({"status": 500}, False),
    ({"instance": "/do/0/guard/try/0/boom"}, True),
    ({"instance": "/do/0/guard"}, False),
    ({"title": "Oops"}, True),
    ({"details": "why"}, True),
    ({"details": "other"}, False),
    ({"status": 418, "title": "Nope"}, False),
])
def test_errors_with_matches_every_given_field(filter_, caught):
    doc = trying([{"boom": raising(title="Oops", detail="why")}], errors={"with": filter_})
    outcome = run(doc, {"in": 1})
    if caught:
        assert outcome.status == "completed" and outcome.output == {"after": {"in": 1}}
        assert outcome.history[1]["status"] == "faulted"  # the task that raised
    else:
        assert outcome.status == "faulted" and outcome.error["status"] == 418


def test_catch_without_errors_catches_everything():
    outcome = run(trying([{"boom": raising()}]), {})
    assert outcome.status == "completed"


def test_catch_as_when_and_except_when():
    tasks = [{"boom": raising(title="Oops")}]
    doc = trying(tasks, **{"as": "err", "when": "$err.status == 418",
                           "do": [{"handle": {"set": {"seen": "${ $err.title }"}}}]})
    assert run(doc, {}).output == {"after": {"seen": "Oops"}}
    doc = trying(tasks, when="$error.status == 500")
    assert run(doc, {}).status == "faulted"
    doc = trying(tasks, exceptWhen="$error.title == \"Oops\"")
    assert run(doc, {}).status == "faulted"


def test_catch_do_runs_on_the_try_input_and_gives_the_output():
    doc = trying([{"first": {"set": {"changed": True}}}, {"boom": raising()}],
                 do=[{"recover": {"set": {"recovered": "${ . }"}}}])
    outcome = run(doc, {"orig": 1})
    assert outcome.output == {"after": {"recovered": {"orig": 1}}}


def test_function_errors_are_catchable_by_type_and_status():
    doc = trying([{"call": {"call": "fn"}}], errors={"with": {
        "type": error_type("communication"), "status": 503}})
    assert run(doc, {}, lambda a: communication(503)).status == "completed"
    assert run(doc, {}, lambda a: communication(502)).status == "faulted"


def test_activity_errors_get_type_status_and_instance_when_missing():
    outcome = run(document([{"c": {"call": "fn"}}]), {}, lambda a: Fail({"detail": "x"}))
    assert outcome.error == {"detail": "x", "type": RUNTIME_ERROR, "status": 500,
                             "instance": "/do/0/c"}
    outcome = run(document([{"c": {"call": "fn"}}]), {},
                  lambda a: Fail({"type": error_type("validation"), "title": "InputError"}))
    assert outcome.error["status"] == 400


def test_an_uncaught_error_faults_every_enclosing_task():
    doc = document([{"outer": {"do": [{"inner": {"do": [{"boom": raising()}]}}]}}])
    outcome = run(doc, {})
    assert [e["status"] for e in outcome.history] == ["faulted"] * 3
    assert outcome.error["instance"] == "/do/0/outer/do/0/inner/do/0/boom"


# -- retries on a fake clock -------------------------------------------------------------

def retrying(retry, catch_do=None, **catch):
    catch = {"errors": {"with": {"status": 503}}, "retry": retry, **catch}
    if catch_do:
        catch["do"] = catch_do
    return document([{"guard": {"try": [{"get": {"call": "fn"}}],
                                "catch": catch}}])


def fails(times):
    """Fail the first ``times`` function attempts with a 503, then succeed."""
    count = {"n": 0}

    def answer(activity):
        if activity.kind == "timer":
            return True
        count["n"] += 1
        return communication(503) if count["n"] <= times else {"ok": count["n"]}
    return answer


def timers(host):
    return [(a.id, a.spec["seconds"]) for a in host.asked if a.kind == "timer"]


@pytest.mark.parametrize("backoff,delays", [
    ({"constant": {}}, [2.0, 2.0, 2.0]),
    ({"linear": {}}, [2.0, 4.0, 6.0]),
    ({"exponential": {}}, [2.0, 4.0, 8.0]),
])
def test_backoff_delays_per_attempt(backoff, delays):
    host = Host(retrying({"delay": {"seconds": 2}, "backoff": backoff,
                          "limit": {"attempt": {"count": 5}}}), {"q": 1}, fails(3))
    outcome = host.run()
    assert outcome.status == "completed" and outcome.output == {"ok": 4}
    assert timers(host) == [("/do/0/guard/catch/retry#1", delays[0]),
                            ("/do/0/guard/catch/retry#2", delays[1]),
                            ("/do/0/guard/catch/retry#3", delays[2])]
    calls = [a.id for a in host.asked if a.kind == "function"]
    assert calls == ["/do/0/guard/try/0/get#1", "/do/0/guard/try/0/get#2",
                     "/do/0/guard/try/0/get#3", "/do/0/guard/try/0/get#4"]
    assert [a.spec["input"] for a in host.asked if a.kind == "function"] == [{"q": 1}] * 4
    guard = outcome.history[0]
    assert guard["attempts"] == 4 and guard["status"] == "completed"
    statuses = [(e["id"], e["status"], e["attempts"]) for e in outcome.history[1:]]
    assert statuses == [("/do/0/guard/try/0/get#1", "faulted", 1),
                        ("/do/0/guard/try/0/get#2", "faulted", 2),
                        ("/do/0/guard/try/0/get#3", "faulted", 3),
                        ("/do/0/guard/try/0/get#4", "completed", 4)]


def test_the_retry_timer_is_asked_only_after_the_failure_and_the_retry_after_the_timer():
    host = Host(retrying({"delay": {"seconds": 10}, "limit": {"attempt": {"count": 2}}}), {})
    [call] = host.replay().pending
    host.record(call, communication(503))
    outcome = host.replay()
    assert outcome.status == "waiting"
    [timer] = outcome.pending
    assert (timer.id, timer.kind, timer.spec) == (
        "/do/0/guard/catch/retry#1", "timer", {"seconds": 10.0, "purpose": "retry"})
    assert host.replay().pending == [timer]  # same replay, same ask
    host.record(timer, True)
    [again] = host.replay().pending
    assert again.id == "/do/0/guard/try/0/get#2"


def test_attempt_count_is_the_number_of_retries():
    host = Host(retrying({"delay": {"seconds": 1}, "limit": {"attempt": {"count": 2}}}), {},
                fails(10))
    outcome = host.run()
    assert outcome.status == "faulted" and outcome.error["status"] == 503
    assert outcome.error["instance"] == "/do/0/guard/try/0/get"
    assert len([a for a in host.asked if a.kind == "function"]) == 3


def test_limit_duration_is_judged_on_recorded_times():
    # each call lasts 1 s, each delay 4 s: attempt 1 fails at 1 s, retry waits to 5 s,
    # attempt 2 fails at 6 s; a third attempt would start at 10 s > 8 s: no retry
    host = Host(retrying({"delay": {"seconds": 4}, "limit": {"duration": {"seconds": 8}}}),
                {}, fails(10))
    outcome = host.run()
    assert outcome.status == "faulted"
    assert len([a for a in host.asked if a.kind == "function"]) == 2


def test_limit_attempt_duration_stops_after_a_too_long_attempt():
    durations = iter([1.0, 30.0, 1.0, 1.0])

    def duration(activity):
        return activity.spec["seconds"] if activity.kind == "timer" else next(durations)
    host = Host(retrying({"delay": {"seconds": 1},
                          "limit": {"attempt": {"count": 10, "duration": {"seconds": 10}}}}),
                {}, fails(10), duration=duration)
    outcome = host.run()
    assert outcome.status == "faulted"
    assert len([a for a in host.asked if a.kind == "function"]) == 2


def test_jitter_is_deterministic_and_within_range():
    retry = {"delay": {"seconds": 1}, "jitter": {"from": {"seconds": 1}, "to": {"seconds": 3}},
             "limit": {"attempt": {"count": 4}}}
    first = Host(retrying(retry), {}, fails(4))
    first.run()
    second = Host(retrying(retry), {}, fails(4))
    second.run()
    assert timers(first) == timers(second)
    delays = [s for _, s in timers(first)]
    assert len(delays) == 4 and all(2.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 1


def test_retry_when_and_except_when_see_the_error():
    host = Host(retrying({"delay": {"seconds": 1}, "when": "$error.status == 500",
                          "limit": {"attempt": {"count": 3}}}), {}, fails(10))
    assert host.run().status == "faulted"
    assert len([a for a in host.asked if a.kind == "function"]) == 1
    host = Host(retrying({"delay": {"seconds": 1}, "exceptWhen": "$error.status == 503",
                          "limit": {"attempt": {"count": 3}}}), {}, fails(10))
    host.run()
    assert len([a for a in host.asked if a.kind == "function"]) == 1


def test_catch_do_runs_before_each_retry_and_feeds_the_next_attempt():
    host = Host(retrying({"delay": {"seconds": 1}, "limit": {"attempt": {"count": 3}}},
                         catch_do=[{"bump": {"set": {"tries": "${ (.tries // 0) + 1 }"}}}]),
                {}, fails(2))
    outcome = host.run()
    assert outcome.status == "completed"
    inputs = [a.spec["input"] for a in host.asked if a.kind == "function"]
    assert inputs == [{}, {"tries": 1}, {"tries": 2}]
    bumps = [e["id"] for e in outcome.history if e["name"] == "bump"]
    assert bumps == ["/do/0/guard/catch/do/0/bump#1", "/do/0/guard/catch/do/0/bump#2"]


def test_reusable_retry_policy():
    doc = document([{"guard": {"try": [{"get": {"call": "fn"}}],
                               "catch": {"retry": "twice"}}}],
                   use={"retries": {"twice": {"delay": "PT5S",
                                              "limit": {"attempt": {"count": 2}}}}})
    host = Host(doc, {}, fails(10))
    assert host.run().status == "faulted"
    assert timers(host) == [("/do/0/guard/catch/retry#1", 5.0),
                            ("/do/0/guard/catch/retry#2", 5.0)]


def test_nested_retries_qualify_ids_with_the_outer_attempt():
    doc = document([{"outer": {"try": [{"inner": {"try": [{"get": {"call": "fn"}}],
                                                  "catch": {"retry": {"delay": {"seconds": 1},
                                                            "limit": {"attempt": {"count": 1}}}}}}],
                               "catch": {"retry": {"delay": {"seconds": 1},
                                                   "limit": {"attempt": {"count": 1}}}}}}])
    host = Host(doc, {}, fails(10))
    assert host.run().status == "faulted"
    assert [a.id for a in host.asked] == [
        "/do/0/outer/try/0/inner/try/0/get[try=1]#1",
        "/do/0/outer/try/0/inner/catch/retry[try=1]#1",
        "/do/0/outer/try/0/inner/try/0/get[try=1]#2",
        "/do/0/outer/catch/retry#1",
        "/do/0/outer/try/0/inner/try/0/get[try=2]#1",
        "/do/0/outer/try/0/inner/catch/retry[try=2]#1",
        "/do/0/outer/try/0/inner/try/0/get[try=2]#2"]
