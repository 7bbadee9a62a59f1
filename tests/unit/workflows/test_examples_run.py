"""Every supported example of the spec, interpreted to the end with hand-fed results."""

from __future__ import annotations

import pytest

from engine.workflows.definition import load
from engine.workflows.problems import error_type

from .driver import Host, communication
from .test_definition import SUPPORTED, example


def asked(host, kind=None):
    return [a for a in host.asked if kind is None or a.kind == kind]


def run_example(name, input=None, answer=lambda a: {"ok": True}, **kwargs):
    host = Host(load(example(name)), input, answer, **kwargs)
    return host, host.run()


def test_switch_then_string_takes_the_matching_case_and_exits():
    for order, expected in [("physical", {"inventory": "clear", "items": 1,
                                          "address": "Elmer St"}),
                            ("electronic", {"validate": True, "status": "fulfilled"}),
                            ("other", {"log": "warn", "message": "something's wrong"})]:
        host, outcome = run_example("switch-then-string.yaml", {"orderType": order})
        assert outcome.status == "completed" and outcome.output == expected
        assert [e["name"] for e in outcome.history][0] == "processOrder"
        assert len(outcome.history) == 2 and not host.asked


def test_set_and_set_expression_read_the_event_input():
    event = {"type": "io.serverlessworkflow.samples.events.trigger.v1", "data": {"a": 1}}
    _, outcome = run_example("set.yaml", [event])
    assert outcome.output == {"startEvent": event}
    _, outcome = run_example("set-expression.yaml", [event])
    assert outcome.output == event


def test_raise_inline_and_reusable_fault_with_the_evaluated_detail():
    for name in ("raise-inline.yaml", "raise-reusable.yaml"):
        _, outcome = run_example(name, {})
        assert outcome.status == "faulted"
        assert outcome.error == {
            "type": "https://serverlessworkflow.io/errors/not-implemented", "status": 500,
            "title": "Not Implemented", "instance": "/do/0/notImplemented",
            "detail": "The workflow 'raise-not-implemented:0.1.0' is a work in progress "
                      "and cannot be run yet"}


def test_conditional_task_raises_for_the_underage_and_calls_for_the_others():
    host, outcome = run_example("conditional-task.yaml", {"customer": {"age": 16}})
    assert outcome.status == "faulted" and outcome.error["status"] == 400
    assert outcome.error["instance"] == "/do/0/raiseErrorIfUnderage"
    assert not host.asked
    host, outcome = run_example("conditional-task.yaml", {"customer": {"age": 30}},
                                lambda a: {"placed": True})
    assert outcome.status == "completed" and outcome.output == {"placed": True}
    assert outcome.history[0]["status"] == "skipped"
    [call] = asked(host, "http")
    assert call.spec["method"] == "POST"
    assert call.spec["body"] == {"customer": ".customer", "bet": ".bet"}  # strict mode


def test_do_multiple_interpolates_the_uri_template_and_evaluates_the_body():
    host, outcome = run_example("do-multiple.yaml", {"petId": 7},
                                lambda a: {"id": 7, "name": "milou"} if a.spec["method"] == "GET"
                                else {"sold": True})
    assert outcome.status == "completed" and outcome.output == {"sold": True}
    get, put = asked(host)
    assert get.spec["endpoint"] == "https://petstore.swagger.io/v2/pet/7"
    assert put.spec["body"] == {"id": 7, "name": "milou", "status": "sold"}
    assert put.spec["endpoint"] == "https://petstore.swagger.io/v2/pet/"  # no petId: empty


@pytest.mark.parametrize("name", ["do-single.yaml",
                                  "call-http-endpoint-interpolation-shorthand.yaml",
                                  "call-http-endpoint-interpolation.yaml"])
def test_single_http_calls_build_the_final_url(name):
    host, outcome = run_example(name, {"petId": 3}, lambda a: {"pet": 3})
    assert outcome.status == "completed" and outcome.output == {"pet": 3}
    assert asked(host)[0].spec["endpoint"] == "https://petstore.swagger.io/v2/pet/3"


def test_query_headers_expressions():
    host, outcome = run_example("call-http-query-headers-expressions.yaml",
                                {"searchQuery": "luke"}, lambda a: {"count": 1})
    assert outcome.status == "completed"
    [call] = asked(host)
    assert call.spec["query"] == {"search": "luke"}
    assert call.spec["headers"] == {"Accept": "application/json"}


def test_query_parameters_and_redirect():
    for name, redirect in (("call-http-query-parameters.yaml", False),
                           ("call-http-redirect.yaml", True)):
        host, outcome = run_example(name, {"searchQuery": "leia"}, lambda a: [1])
        assert outcome.status == "completed"
        assert asked(host)[0].spec["query"] == {"search": "leia"}
        assert asked(host)[0].spec["redirect"] is redirect


def test_input_schema_of_the_examples_faults_with_a_validation_error():
    _, outcome = run_example("call-http-query-parameters.yaml", {"nope": 1})
    assert outcome.status == "faulted"
    assert outcome.error["type"] == error_type("validation")
    assert "'searchQuery' is a required property" in outcome.error["detail"]


def test_star_wars_homeworld_exports_to_the_context():
    def answer(a):
        if a.spec["endpoint"].endswith("/people/1"):
            return {"statusCode": 200, "content": {"homeworld": "https://swapi.dev/planets/1"}}
        return {"name": "Tatooine"}
    host, outcome = run_example("star-wars-homeworld.yaml", {"id": 1}, answer)
    assert outcome.status == "completed" and outcome.output == {"name": "Tatooine"}
    first, second = asked(host)
    assert first.spec["output"] == "response"
    assert second.spec["endpoint"] == "https://swapi.dev/planets/1"


def test_bearer_authentication_becomes_the_authorization_header():
    for name in ("authentication-bearer.yaml", "authentication-bearer-uri-format.yaml",
                 "authentication-reusable.yaml"):
        host, outcome = run_example(name, {"token": "t0k3n", "petId": 1}, lambda a: {})
        assert outcome.status == "completed"
        assert asked(host)[0].spec["headers"]["Authorization"] == "Bearer t0k3n"


def test_custom_inline_function_runs_its_definition_with_the_call_arguments():
    host, outcome = run_example("call-custom-function-inline.yaml", {}, lambda a: {"id": 69})
    assert outcome.status == "completed" and outcome.output == {"id": 69}
    [call] = asked(host)
    assert call.id == "/do/0/getPet#1" and call.kind == "http"
    assert call.spec["endpoint"] == "https://petstore.swagger.io/v2/pet/69"


def test_emit_asks_for_the_event():
    host, outcome = run_example("emit.yaml", {"x": 1}, lambda a: True)
    assert outcome.status == "completed" and outcome.output == {"x": 1}
    [emit] = asked(host)
    assert emit.kind == "emit"
    assert emit.spec["event"]["type"] == "com.petstore.order.placed.v1"
    assert emit.spec["event"]["specversion"] == "1.0"
    assert emit.spec["event"]["data"]["items"] == [{"breed": "dalmatian", "quantity": 101}]


def test_for_example_listens_per_pet_and_faults_naming_its_output_expression():
    # output.as `.pets + [{id: $pet.id}]` reads `.pets` of the listen output, which the
    # spec makes an array of events: the expression fails and names the task
    host, outcome = run_example("for.yaml", {"pets": [{"id": "a"}, {"id": "b"}],
                                             "vet": "dr"}, lambda a: {"checked": True})
    [listen] = asked(host, "listen")
    assert listen.id == "/do/0/checkup/do/0/waitForCheckup[for=0]#1"
    assert listen.spec["to"] == {"one": {"with": {
        "type": "com.fake.petclinic.pets.checkup.completed.v2"}}}
    assert outcome.status == "faulted"
    assert outcome.error["type"] == error_type("expression")
    assert outcome.error["status"] == 400
    assert outcome.error["instance"] == "/do/0/checkup/do/0/waitForCheckup"
    assert outcome.error["detail"].startswith(
        "/do/0/checkup/do/0/waitForCheckup/output/as: Cannot index array")


def test_for_example_stops_when_while_is_false():
    host, outcome = run_example("for.yaml", {"pets": [{"id": "a"}], "vet": None})
    assert outcome.status == "completed" and not host.asked


def test_fork_example_competes_and_the_first_to_finish_wins():
    durations = {"nurses": 5.0, "doctor": 2.0}
    host = Host(load(example("fork.yaml")), {"patient": {"fullName": "Jo"}, "room": {"number": 3}},
                lambda a: {"who": a.spec["endpoint"].rsplit("/", 1)[-1]},
                duration=lambda a: durations[a.spec["endpoint"].rsplit("/", 1)[-1]])
    outcome = host.run()
    assert outcome.status == "completed" and outcome.output == {"who": "doctor"}
    fork = outcome.history[0]
    assert fork["winner"] == "callDoctor"
    assert {a.spec["body"]["room"] for a in host.asked} == {3}


@pytest.mark.parametrize("name,events,expected", [
    ("listen-to-one.yaml", {"data": 1}, [{"data": 1}]),
    ("listen-to-all.yaml", [{"temperature": 39}, {"bpm": 50}],
     [{"temperature": 39}, {"bpm": 50}]),
    ("listen-to-any.yaml", [{"a": 1}], [{"a": 1}]),
    ("listen-to-any-filter.yaml", [{"temperature": 40}], [{"temperature": 40}]),
    ("listen-to-any-until-condition.yaml", [1, 2, 3, 4], [1, 2, 3, 4]),
    ("listen-to-any-until-consumed.yaml", [{"bpm": 120}], [{"bpm": 120}]),
])
def test_listen_examples_output_the_consumed_events(name, events, expected):
    host, outcome = run_example(name, {}, lambda a: events if a.kind == "listen" else {})
    assert outcome.status == "completed"
    listen = asked(host, "listen")[0]
    assert listen.spec["to"] == example(name)["do"][0][next(iter(example(name)["do"][0]))][
        "listen"]["to"]
    assert listen.spec["read"] == "data"
    if name != "listen-to-one.yaml":
        assert outcome.output == expected
    else:
        assert outcome.history[0]["output"] == expected


def test_listen_forever_foreach_runs_the_iteration_per_event():
    host, outcome = run_example("listen-to-any-forever-foreach.yaml", {"roomId": "r1"},
                                lambda a: [{"msg": "a"}, {"msg": "b"}] if a.kind == "listen"
                                else {"posted": True})
    assert outcome.status == "completed"
    posts = asked(host, "http")
    assert [p.id for p in posts] == [
        "/do/0/listenToGossips/foreach/do/0/postToChatApi[each=0]#1",
        "/do/0/listenToGossips/foreach/do/0/postToChatApi[each=1]#1"]
    assert [p.spec["body"] for p in posts] == [{"event": {"msg": "a"}}, {"event": {"msg": "b"}}]
    assert outcome.output == [{"posted": True}, {"posted": True}]


def test_run_script_and_subflow():
    host, outcome = run_example("run-script-with-stdin-and-arguments.yaml", {},
                                lambda a: "stdin > Hello Workflow")
    assert outcome.status == "completed" and outcome.output == "stdin > Hello Workflow"
    [script] = asked(host)
    assert script.spec["language"] == "js" and script.spec["arguments"] == ["hello"]
    assert script.spec["stdin"] == "Hello Workflow"
    assert script.spec["environment"] == {"foo": "bar"}
    assert script.spec["return"] == "stdout"
    host, outcome = run_example("run-subflow.yaml", {"user": "u"}, lambda a: {"id": 1})
    assert outcome.status == "completed" and outcome.output == {"id": 1}
    [sub] = asked(host)
    assert sub.kind == "workflow"
    assert sub.spec == {"name": "register-customer", "namespace": "test", "version": "0.1.0",
                        "input": {"customer": ".user"}, "await": True}


def test_schedule_examples_run_their_tasks():
    host, outcome = run_example("schedule-cron.yaml", None, lambda a: {"started": True})
    assert outcome.status == "completed"
    event = {"data": {"patient": {"id": "p", "name": "n", "room": {"number": 1},
                                  "vitals": {"bpm": 40}}, "timestamp": "t"}}
    host, outcome = run_example("schedule-event-driven.yaml", [event], lambda a: {})
    assert outcome.status == "completed"
    assert asked(host)[0].spec["body"]["vitals"] == {"heartRate": 40, "timestamp": "t"}


@pytest.mark.parametrize("name", ["wait-duration-inline.yaml", "wait-duration-iso8601.yaml"])
def test_wait_examples_ask_for_a_timer(name):
    host, outcome = run_example(name, {"k": 1}, lambda a: True)
    assert outcome.status == "completed" and outcome.output == {"k": 1}
    [timer] = asked(host)
    assert timer.kind == "timer" and timer.spec == {"seconds": 30.0, "purpose": "wait"}


def test_try_catch_swallows_a_404_and_faults_on_others():
    _, outcome = run_example("try-catch.yaml", {"petId": 1}, lambda a: communication(404))
    assert outcome.status == "completed" and outcome.output == {"petId": 1}
    _, outcome = run_example("try-catch.yaml", {"petId": 1}, lambda a: communication(500))
    assert outcome.status == "faulted" and outcome.error["status"] == 500
    assert outcome.error["instance"] == "/do/0/tryGetPet/try/0/getPet"


def test_try_catch_then_notifies_and_skips_the_purchase():
    def answer(a):
        if a.kind == "http":
            return communication(404, "no such pet")
        return True
    host, outcome = run_example("try-catch-then.yaml", {"petId": 1}, answer)
    assert outcome.status == "completed"
    emit = asked(host, "emit")[0]
    assert emit.spec["event"]["data"]["status"] == 404
    assert outcome.output == {"error": "$error"}  # a literal in strict mode
    assert [e["status"] for e in outcome.history if e["name"] == "buyPet"] == ["skipped"]


@pytest.mark.parametrize("name", ["try-catch-retry-inline.yaml",
                                  "try-catch-retry-reusable.yaml"])
def test_try_catch_retry_backs_off_exponentially_then_faults(name):
    host, outcome = run_example(name, {"petId": 1},
                                lambda a: True if a.kind == "timer" else communication(503))
    assert outcome.status == "faulted" and outcome.error["status"] == 503
    timers = [a.spec["seconds"] for a in asked(host, "timer")]
    assert timers == [3.0, 6.0, 12.0, 24.0, 48.0]
    assert len(asked(host, "http")) == 6
    assert outcome.history[0]["attempts"] == 6


def test_every_supported_example_is_exercised():
    exercised = {
        "switch-then-string.yaml", "set.yaml", "set-expression.yaml", "raise-inline.yaml",
        "raise-reusable.yaml", "conditional-task.yaml", "do-multiple.yaml", "do-single.yaml",
        "call-http-endpoint-interpolation-shorthand.yaml",
        "call-http-endpoint-interpolation.yaml", "call-http-query-headers-expressions.yaml",
        "call-http-query-parameters.yaml", "call-http-redirect.yaml",
        "star-wars-homeworld.yaml", "authentication-bearer.yaml",
        "authentication-bearer-uri-format.yaml", "authentication-reusable.yaml",
        "call-custom-function-inline.yaml", "emit.yaml", "for.yaml", "fork.yaml",
        "listen-to-one.yaml", "listen-to-all.yaml", "listen-to-any.yaml",
        "listen-to-any-filter.yaml", "listen-to-any-until-condition.yaml",
        "listen-to-any-until-consumed.yaml", "listen-to-any-forever-foreach.yaml",
        "run-script-with-stdin-and-arguments.yaml", "run-subflow.yaml", "schedule-cron.yaml",
        "schedule-event-driven.yaml", "wait-duration-inline.yaml",
        "wait-duration-iso8601.yaml", "try-catch.yaml", "try-catch-then.yaml",
        "try-catch-retry-inline.yaml", "try-catch-retry-reusable.yaml"}
    assert exercised == set(SUPPORTED)
