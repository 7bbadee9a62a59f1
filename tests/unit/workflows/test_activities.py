"""What the interpreter asks the host for: activity kinds and their specs."""

from __future__ import annotations

import base64

from engine.workflows.problems import error_type

from .driver import Host, document, run


def ask(doc, input=None, **kwargs):
    """The first activity a replay asks for."""
    host = Host(doc, input, **kwargs)
    return host.replay().pending[0]


def http(endpoint, **with_):
    return document([{"get": {"call": "http", "with": {"method": "get", "endpoint": endpoint,
                                                       **with_}}}])


def test_http_spec_evaluates_everything():
    activity = ask(http({"uri": "https://api.example.com/{kind}/{id}"},
                        headers={"X-Trace": "${ .trace }"}, query={"q": "${ .q }", "n": "1"},
                        body={"name": "${ .name }"}, output="response"),
                   {"kind": "pets", "id": 7, "trace": "t", "q": "x", "name": "milou"})
    assert (activity.id, activity.kind, activity.reference) == ("/do/0/get#1", "http", "/do/0/get")
    assert activity.spec == {"method": "GET", "endpoint": "https://api.example.com/pets/7",
                             "headers": {"X-Trace": "t"}, "query": {"q": "x", "n": "1"},
                             "body": {"name": "milou"}, "output": "response",
                             "redirect": False}


def test_uri_template_identifiers_are_top_level_and_verbatim():
    activity = ask(http("https://x/{pet.id}/{flag}/{missing}"), {"pet.id": "a/b", "flag": True,
                                                                "pet": {"id": 1}})
    assert activity.spec["endpoint"] == "https://x/a%2Fb/true/"


def test_uri_template_with_an_object_value_is_an_expression_error():
    outcome = run(http("https://x/{pet}"), {"pet": {"id": 1}})
    assert outcome.status == "faulted"
    assert outcome.error["type"] == error_type("expression")
    assert outcome.error["instance"] == "/do/0/get"
    assert "{pet}" in outcome.error["detail"]


def test_endpoint_expression_must_give_a_string():
    assert ask(http("${ \"https://x/\" + .p }"), {"p": "y"}).spec["endpoint"] == "https://x/y"
    outcome = run(http("${ .n }"), {"n": 1})
    assert outcome.error["type"] == error_type("expression")


def test_basic_and_secret_bearer_authentication():
    doc = http({"uri": "https://x", "authentication": {"basic": {"username": "${ .u }",
                                                                 "password": "pw"}}})
    header = ask(doc, {"u": "ann"}).spec["headers"]["Authorization"]
    assert header == "Basic " + base64.b64encode(b"ann:pw").decode()
    doc = document([{"get": {"call": "http", "with": {"method": "get", "endpoint": {
        "uri": "https://x", "authentication": {"bearer": {"use": "tok"}}}}}}],
        use={"secrets": ["tok"]})
    activity = ask(doc, {}, secrets={"tok": {"token": "abc123"}})
    assert activity.spec["headers"]["Authorization"] == "Bearer abc123"


def test_a_missing_secret_for_authentication_is_an_authorization_error():
    doc = document([{"get": {"call": "http", "with": {"method": "get", "endpoint": {
        "uri": "https://x", "authentication": {"bearer": {"use": "tok"}}}}}}],
        use={"secrets": ["tok"]})
    outcome = run(doc, {})
    assert outcome.error["type"] == error_type("authorization")
    assert outcome.error["status"] == 403


def test_a_call_of_any_other_name_is_a_dispatch_function():
    activity = ask(document([{"greet": {"call": "hello-py", "with": {"name": "${ .n }"},
                                        "metadata": {"tags": {"team": "a"}}}}]), {"n": "Jon"})
    assert activity.kind == "function"
    assert activity.spec == {"function": "hello-py", "input": {"name": "Jon"},
                             "tags": {"team": "a"}}


def test_a_dispatch_function_without_with_gets_the_task_input():
    assert ask(document([{"f": {"call": "fn"}}]), {"k": 1}).spec["input"] == {"k": 1}


def test_use_functions_dispatch_alias():
    doc = document([{"greet": {"call": "hello", "with": {"a": 1}}}],
                   use={"functions": {"hello": {"call": "dispatch",
                                                "with": {"function": "hello-py"}}}})
    activity = ask(doc, {})
    assert activity.spec["function"] == "hello-py" and activity.spec["input"] == {"a": 1}


def test_use_functions_custom_definition_validates_its_input():
    doc = document([{"c": {"call": "getPet", "with": {"petId": "x"}}}],
                   use={"functions": {"getPet": {
                       "input": {"schema": {"document": {"properties": {
                           "petId": {"type": "integer"}}}}},
                       "call": "http", "with": {"method": "get",
                                                "endpoint": "https://x/{petId}"}}}})
    outcome = run(doc, {})
    assert outcome.error["type"] == error_type("validation")
    assert outcome.error["instance"] == "/do/0/c"


def test_emit_spec():
    doc = document([{"e": {"emit": {"event": {"with": {
        "source": "https://me", "type": "t.v1", "subject": "${ .s }", "data": "${ .d }"}}}}}])
    activity = ask(doc, {"s": "sub", "d": {"x": 1}})
    assert activity.kind == "emit"
    assert activity.spec == {"event": {"specversion": "1.0", "source": "https://me",
                                       "type": "t.v1", "subject": "sub", "data": {"x": 1}}}


def test_listen_spec_and_read_mode_and_waiting_status():
    doc = document([{"l": {"listen": {"to": {"any": [{"with": {"type": "a"}}],
                                             "until": ". | length > 1"},
                                      "read": "envelope"}}}])
    host = Host(doc, {})
    outcome = host.replay()
    assert outcome.status == "waiting"
    [activity] = outcome.pending
    assert activity.kind == "listen"
    assert activity.spec == {"to": {"any": [{"with": {"type": "a"}}],
                                    "until": ". | length > 1"}, "read": "envelope"}
    host.record(activity, {"type": "a"})
    assert host.replay().output == [{"type": "a"}]  # one event is a list of one


def test_listen_foreach_output_as_and_export():
    doc = document([{"l": {"listen": {"to": {"any": []}},
                           "foreach": {"item": "ev", "at": "n",
                                       "output": {"as": "{v: ., n: $n}"},
                                       "export": {"as": "$context + {last: $ev}"}}}},
                    {"after": {"set": {"out": "${ . }", "ctx": "${ $context }"}}}])
    outcome = run(doc, {}, lambda a: [1, 2])
    assert outcome.output == {"out": [{"v": 1, "n": 0}, {"v": 2, "n": 1}],
                              "ctx": {"last": 2}}


def test_wait_with_an_expression_duration():
    doc = document([{"w": {"wait": "${ .d }"}}])
    activity = ask(doc, {"d": "PT1M30S"})
    assert activity.spec == {"seconds": 90.0, "purpose": "wait"}
    outcome = run(doc, {"d": "soon"})
    assert outcome.error["type"] == error_type("expression")


def test_run_workflow_defaults_and_await_false():
    doc = document([{"sub": {"run": {"workflow": {"namespace": "n", "name": "child",
                                                  "version": "1.0.0"}, "await": False}}}])
    host = Host(doc, {"k": 1}, lambda a: {"started": True})
    outcome = host.run()
    [activity] = host.asked
    assert activity.spec == {"name": "child", "namespace": "n", "version": "1.0.0",
                             "input": {"k": 1}, "await": False}
    assert outcome.output == {"k": 1}


def test_run_python_script_spec():
    doc = document([{"s": {"run": {"script": {"language": "python", "code": "print(1)",
                                              "arguments": ["${ .a }"],
                                              "environment": {"E": "${ .e }"}},
                                   "return": "all"}}}])
    activity = ask(doc, {"a": "x", "e": "y"})
    assert activity.kind == "script"
    assert activity.spec == {"language": "python", "code": "print(1)", "arguments": ["x"],
                             "environment": {"E": "y"}, "stdin": None, "return": "all",
                             "await": True}


def test_status_is_running_while_work_is_pending_and_waiting_on_timers_only():
    doc = document([{"fan": {"fork": {"branches": [{"w": {"wait": "PT1S"}},
                                                   {"c": {"call": "fn"}}]}}}])
    host = Host(doc, {})
    outcome = host.replay()
    assert outcome.status == "running" and len(outcome.pending) == 2
    host.record(outcome.pending[1], "done")
    assert host.replay().status == "waiting"


def test_authorization_descriptor_in_output_as():
    doc = document([{"get": {"call": "http", "with": {"method": "get", "endpoint": {
        "uri": "https://x", "authentication": {"bearer": {"token": "${ .t }"}}}},
        "output": {"as": "${ {body: ., scheme: $authorization.scheme, "
                          "parameter: $authorization.parameter} }"}}}])
    outcome = run(doc, {"t": "tok"}, lambda a: {"ok": 1})
    assert outcome.output == {"body": {"ok": 1}, "scheme": "Bearer", "parameter": "tok"}


def test_call_dispatch_names_the_function_and_its_input():
    doc = document([{"c": {"call": "dispatch", "with": {"function": "hello-py",
                                                        "input": {"n": "${ .n }"}}}}])
    activity = ask(doc, {"n": 1})
    assert activity.spec["function"] == "hello-py" and activity.spec["input"] == {"n": 1}
    doc = document([{"c": {"call": "dispatch", "with": {"function": "hello-py"}}}])
    assert ask(doc, {"k": 2}).spec["input"] == {"k": 2}
