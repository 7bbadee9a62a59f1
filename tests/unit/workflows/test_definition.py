"""Loading definitions: the official schema, Dispatch's subset, expressions, flow targets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.errors import InvalidInput
from engine.workflows import yaml12
from engine.workflows.definition import load

from .driver import document

EXAMPLES = Path(__file__).parent / "examples"

#: the spec's examples outside Dispatch's subset, and the path the error names
UNSUPPORTED = {
    "accumulate-room-readings.yaml": "/do/0/consumeReading/listen/to/all/0/correlate",
    "authentication-oauth2-secret.yaml": "/do/0/getPet/with/endpoint/authentication/oauth2",
    "authentication-oauth2.yaml": "/do/0/getPet/with/endpoint/authentication/oauth2",
    "authentication-oidc-secret.yaml": "/do/0/getPet/with/endpoint/authentication/oidc",
    "authentication-oidc.yaml": "/do/0/getPet/with/endpoint/authentication/oidc",
    "call-asyncapi-publish.yaml": "/do/0/findPet",
    "call-asyncapi-subscribe-consume-amount.yaml": "/do/0/getNotifications",
    "call-asyncapi-subscribe-consume-forever-foreach.yaml": "/do/0/getNotifications",
    "call-asyncapi-subscribe-consume-until.yaml": "/do/0/getNotifications",
    "call-asyncapi-subscribe-consume-while.yaml": "/do/0/getNotifications",
    "call-custom-function-cataloged.yaml": "/do/0/log",
    "call-grpc.yaml": "/do/0/greet",
    "call-mcp.yaml": "/do/0/publishMessageToSlack",
    "call-openapi-redirect.yaml": "/do/0/findPet",
    "call-openapi.yaml": "/do/0/findPet",
    "mock-service-extension.yaml": "/use/extensions/0/mockService",
    "run-container-cleanup-always.yaml": "/do/0/runContainer",
    "run-container-cleanup-eventually.yaml": "/do/0/runContainer",
    "run-container-stdin-and-arguments.yaml": "/do/1/runContainer",
    "run-container-with-name.yaml": "/do/0/runContainer",
    "run-container-with-pull-policy.yaml": "/do/0/runContainer",
    "run-container.yaml": "/do/0/runContainer",
    "run-return-all.yaml": "/do/0/runContainer",
    "run-return-code.yaml": "/do/0/runContainer",
    "run-return-none.yaml": "/do/0/runContainer",
    "run-return-stderr.yaml": "/do/0/runContainer",
    "run-shell-stdin-and-arguments.yaml": "/do/1/runShell",
}
ALL = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
SUPPORTED = [name for name in ALL if name not in UNSUPPORTED]


def example(name: str) -> dict:
    return yaml12.load((EXAMPLES / name).read_text())


def test_the_examples_are_all_accounted_for():
    assert len(ALL) == 65 and len(SUPPORTED) == 38


@pytest.mark.parametrize("name", SUPPORTED)
def test_supported_example_loads(name):
    workflow = load(example(name))
    assert workflow.name == example(name)["document"]["name"]


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_example_names_the_task_path(name):
    with pytest.raises(InvalidInput) as e:
        load(example(name))
    assert e.value.message.startswith(UNSUPPORTED[name] + ": unsupported: ")


def test_workflow_exposes_its_sections():
    wf = load(document([{"a": {"wait": "PT1S"}}],
                       input={"schema": {"document": {"type": "object"}}},
                       use={"secrets": ["s"], "timeouts": {"short": {"after": {"minutes": 2}}},
                            "functions": {"f": {"call": "dispatch",
                                                "with": {"function": "real"}}}},
                       timeout="short", schedule={"cron": "0 * * * *"}))
    assert (wf.name, wf.namespace, wf.version, wf.dsl) == ("wf", "test", "0.1.0", "1.0.3")
    assert wf.input_schema == {"type": "object"}
    assert wf.timeout == 120.0
    assert wf.secrets == ["s"]
    assert wf.schedule == {"cron": "0 * * * *"}
    assert wf.functions["f"]["with"]["function"] == "real"


def test_load_does_not_keep_the_callers_document():
    doc = document([{"a": {"set": {"x": 1}}}])
    wf = load(doc)
    doc["do"][0]["a"]["set"]["x"] = 2
    assert wf.document["do"][0]["a"]["set"]["x"] == 1


BAD = [
    ("not an object", [], "/: a workflow definition must be an object"),
    ("missing version", {"document": {"dsl": "1.0.3", "namespace": "t", "name": "x"},
                         "do": []}, "/document: 'version' is a required property"),
    ("unknown task kind", document([{"a": {"frob": 1}}]), "/do/0/a: not a task"),
    ("two tasks in one entry", document([{"a": {"set": {"v": 1}}, "b": {"set": {"v": 1}}}]),
     "/do/0: a task list entry must be one {name: task} object"),
    ("unknown property", document([{"a": {"set": {"x": 1}, "bogus": 2}}]),
     "/do/0/a: Unevaluated properties are not allowed ('bogus' was unexpected)"),
    ("nested bad duration", document([{"a": {"do": [{"b": {"wait": "PT1X"}}]}}]),
     "/do/0/a/do/0/b/wait: 'PT1X' is not valid"),
    ("http without endpoint", document([{"a": {"call": "http", "with": {"method": "get"}}}]),
     "/do/0/a/with: 'endpoint' is a required property"),
    ("then to a missing task", document([{"a": {"set": {"v": 1}, "then": "zz"}}]),
     "/do/0/a/then: then: 'zz' is not a task of this list"),
    ("then to another depth", document([{"a": {"do": [{"b": {"set": {"v": 1}, "then": "c"}}]}},
                                        {"c": {"set": {"v": 1}}}]),
     "/do/0/a/do/0/b/then: then: 'c' is not a task of this list"),
    ("switch then to a missing task",
     document([{"s": {"switch": [{"x": {"when": ".a", "then": "nope"}}]}}]),
     "/do/0/s/switch/0/x/then: then: 'nope'"),
    ("jq compile error", document([{"check": {"switch": [{"high": {"when": ".x >",
                                                                   "then": "end"}}]}}]),
     "/do/0/check/switch/0/high/when: jq compile error: "),
    ("jq compile error in a template", document([{"a": {"set": {"x": "${ .a | }"}}}]),
     "/do/0/a/set/x: jq compile error: "),
    ("jq compile error in if", document([{"a": {"set": {"v": 1}, "if": "(("}}]),
     "/do/0/a/if: jq compile error: "),
    ("jq compile error in output.as", document([{"a": {"set": {"v": 1}, "output": {"as": "]"}}}]),
     "/do/0/a/output/as: jq compile error: "),
    ("duplicate names", document([{"a": {"set": {"v": 1}}}, {"a": {"set": {"v": 1}}}]),
     "/do/1/a: duplicate task name 'a'"),
    ("two defaults", document([{"s": {"switch": [{"d1": {"then": "end"}},
                                                 {"d2": {"then": "end"}}]}}]),
     "/do/0/s/switch/1/d2: a switch may have only one default case"),
    ("unknown reusable error", document([{"r": {"raise": {"error": "nope"}}}]),
     "/do/0/r/raise/error: no error named 'nope' under use.errors"),
    ("unknown retry policy", document([{"t": {"try": [{"a": {"set": {"v": 1}}}],
                                              "catch": {"retry": "nope"}}}]),
     "/do/0/t/catch/retry: no retry policy named 'nope'"),
    ("unknown timeout", document([{"a": {"set": {"v": 1}, "timeout": "nope"}}]),
     "/do/0/a/timeout: no timeout named 'nope'"),
    ("unknown authentication", document([{"a": {"call": "http", "with": {
        "method": "get", "endpoint": {"uri": "http://x", "authentication": {"use": "nope"}}}}}]),
     "/do/0/a/with/endpoint/authentication/use: no authentication named 'nope'"),
    ("fork branch jump", document([{"f": {"fork": {"branches": [
        {"a": {"set": {"v": 1}, "then": "b"}}, {"b": {"set": {"v": 1}}}]}}}]),
     "/do/0/f/fork/branches/0/a/then: a fork branch cannot jump"),
    ("script language", document([{"s": {"run": {"script": {"language": "ruby",
                                                            "code": "1"}}}}]),
     "/do/0/s/run/script/language: unsupported: script language 'ruby'"),
    ("script source", document([{"s": {"run": {"script": {
        "language": "python", "source": {"endpoint": "https://x/y.py"}}}}}]),
     "/do/0/s/run/script: unsupported: script source resources"),
    ("catalog call", document([{"c": {"call": "log:1.0.0@global"}}]),
     "/do/0/c: unsupported: call of the catalog or external function 'log:1.0.0@global'"),
    ("dispatch alias without function", document(
        [{"c": {"call": "f"}}], use={"functions": {"f": {"call": "dispatch", "with": {}}}}),
     "/use/functions/f/with/function: call: dispatch needs with.function"),
    ("external schema", document([{"a": {"set": {"v": 1}, "input": {"schema": {
        "resource": {"endpoint": "https://x/s.json"}}}}}]),
     "/do/0/a/input/schema: unsupported: external schema resources"),
    ("bad JSON schema", document([{"a": {"set": {"v": 1}, "input": {"schema": {
        "document": {"type": "nonsense"}}}}}]),
     "/do/0/a/input/schema/document: not a JSON Schema"),
    ("loose mode", document([{"a": {"set": {"v": 1}}}], evaluate={"language": "jq",
                                                             "mode": "loose"}),
     "/evaluate/mode: unsupported: loose evaluation mode"),
    ("secret auth not declared", document([{"a": {"call": "http", "with": {
        "method": "get", "endpoint": {"uri": "http://x", "authentication": {
            "bearer": {"use": "tok"}}}}}}]),
     "/do/0/a/with/endpoint/authentication/bearer/use: secret 'tok' is not declared"),
]


@pytest.mark.parametrize("label,doc,message", BAD, ids=[b[0] for b in BAD])
def test_bad_definition_names_the_path(label, doc, message):
    with pytest.raises(InvalidInput) as e:
        load(doc)
    assert e.value.message.startswith(message), e.value.message


def test_a_thousand_tasks_load():
    branches = [{f"b{i}": {"call": "echo", "with": {"i": "${ .x }"}}} for i in range(1000)]
    wf = load(document([{"fan": {"fork": {"branches": branches}}}]))
    assert len(wf.document["do"][0]["fan"]["fork"]["branches"]) == 1000


def test_schedule_on_loads_from_json_and_yaml_1_2_but_not_yaml_1_1():
    on = {"one": {"with": {"type": "t"}}}
    assert load(document([{"a": {"set": {"v": 1}}}], schedule={"on": on})).schedule == {"on": on}
    text = (EXAMPLES / "schedule-event-driven.yaml").read_text()
    assert "on" in load(yaml12.load(text)).schedule
    with pytest.raises(InvalidInput) as e:
        load(yaml.safe_load(text))
    assert e.value.message.startswith("/schedule: the key `on` was read as the boolean true")


def test_expressions_may_only_read_declared_secrets():
    ok = document([{"a": {"set": {"t": "${ $secret.api.token }",
                                  "u": "${ $secrets[\"db-pass\"] }"}}}],
                  use={"secrets": ["api", "db-pass"]})
    load(ok)
    bad = document([{"a": {"set": {"t": "${ $secret.other }"}}}], use={"secrets": ["api"]})
    with pytest.raises(InvalidInput) as e:
        load(bad)
    assert e.value.message == "/do/0/a/set/t: secret 'other' is not declared under use.secrets"
