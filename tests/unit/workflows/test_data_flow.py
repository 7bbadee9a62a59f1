"""Data flow as dsl.md "Data Flow" describes it, and the runtime expression arguments."""

from __future__ import annotations

from engine.workflows.problems import error_type

from .driver import RUNTIME, Host, document, echo, run


def test_workflow_input_from_then_task_input_from_output_as_and_export_as():
    doc = document(
        [{"first": {"set": {"kept": "${ .a }", "dropped": 1},
                    "input": {"from": "${ {a: .a, ctx: $context} }"},
                    "output": {"as": "${ {kept} }"},
                    "export": {"as": "${ $context + {seen: .kept} }"}}},
         {"second": {"set": {"fromContext": "${ $context.seen }", "input": "${ $input }"}}}],
        input={"from": "${ .payload }"},
        output={"as": "${ .fromContext }"})
    outcome = run(doc, {"payload": {"a": 42, "noise": True}})
    assert outcome.status == "completed"
    assert outcome.output == 42
    first, second = outcome.history
    assert first["input"] == {"a": 42, "noise": True}  # raw task input
    assert first["output"] == {"kept": 42}
    assert second["input"] == {"kept": 42}


def test_input_from_as_an_object_template():
    doc = document([{"t": {"set": "${ . }", "input": {"from": {"x": "${ .a }", "y": 2}}}}])
    assert run(doc, {"a": 1}).output == {"x": 1, "y": 2}


def test_expression_fields_need_no_dollar_braces():
    doc = document([{"t": {"set": {"v": 1}, "if": ".go",
                           "output": {"as": ".v + 1"}, "export": {"as": "{n: .}"}}},
                    {"u": {"set": "${ $context }"}}])
    assert run(doc, {"go": True}).output == {"n": 2}


def test_context_starts_empty_and_is_replaced_by_export():
    doc = document([{"a": {"set": {"v": "${ $context }"}}},
                    {"b": {"set": {"w": 0}, "export": {"as": "[1]"}}},
                    {"c": {"set": {"v": "${ $context }"}}}])
    outcome = run(doc, {})
    assert [e["output"] for e in outcome.history] == [{"v": {}}, {"w": 0}, {"v": [1]}]


def test_workflow_input_schema_faults_before_any_task():
    doc = document([{"a": {"set": {"v": 1}}}],
                   input={"schema": {"format": "json", "document": {
                       "type": "object", "required": ["id"]}}})
    outcome = run(doc, {"x": 1})
    assert outcome.status == "faulted" and outcome.history == []
    assert outcome.error["type"] == error_type("validation")
    assert outcome.error["status"] == 400
    assert outcome.error["instance"] == "/input/schema"
    assert "workflow input is invalid at /: 'id' is a required property" == \
        outcome.error["detail"]


def test_task_input_and_output_schemas_fault_with_the_task_instance():
    bad_in = document([{"a": {"set": {"v": 1}, "input": {"schema": {
        "document": {"type": "string"}}}}}])
    outcome = run(bad_in, {"x": 1})
    assert outcome.error["type"] == error_type("validation")
    assert outcome.error["instance"] == "/do/0/a"
    assert outcome.error["detail"].startswith("task input is invalid")
    bad_out = document([{"a": {"set": {"v": "s"}, "output": {"schema": {
        "document": {"properties": {"v": {"type": "integer"}}}}}}}])
    outcome = run(bad_out, {})
    assert outcome.error["detail"] == "task output is invalid at /v: 's' is not of type 'integer'"
    bad_export = document([{"a": {"set": {"v": 1}, "export": {"as": ".", "schema": {
        "document": {"required": ["w"]}}}}}])
    assert run(bad_export, {}).error["detail"].startswith("exported context is invalid")


def test_workflow_output_schema():
    doc = document([{"a": {"set": {"v": 1}}}],
                   output={"schema": {"document": {"required": ["w"]}}})
    outcome = run(doc, {})
    assert outcome.status == "faulted" and outcome.error["instance"] == "/output/schema"


def test_skipped_task_outputs_its_raw_input_and_ignores_then():
    doc = document([{"a": {"set": {"v": 1}, "if": "${ .run }", "then": "end"}},
                    {"b": {"set": {"after": "${ . }"}}}])
    outcome = run(doc, {"run": False})
    assert outcome.output == {"after": {"run": False}}
    assert [e["status"] for e in outcome.history] == ["skipped", "completed"]


def test_if_sees_the_raw_input_not_input_from():
    doc = document([{"a": {"set": {"v": "${ . }"}, "if": ".raw",
                           "input": {"from": "{raw: false}"}}}])
    assert run(doc, {"raw": True}).output == {"v": {"raw": False}}


def test_descriptors_task_workflow_runtime():
    doc = document([{"describe": {"set": {
        "task": "${ $task | {name, reference, input} }",
        "definition": "${ $task.definition | keys }",
        "wf": "${ $workflow | {id, input, name: .definition.document.name} }",
        "started": "${ $workflow.startedAt.iso8601 }",
        "epoch": "${ $workflow.startedAt.epoch.seconds }",
        "runtime": "${ $runtime.name }",
        "org": "${ $runtime.metadata.organization }"}}}])
    outcome = run(doc, {"k": 1})
    assert outcome.output == {
        "task": {"name": "describe", "reference": "/do/0/describe", "input": {"k": 1}},
        "definition": ["set"],
        "wf": {"id": "exec-1", "input": {"k": 1}, "name": "wf"},
        "started": RUNTIME["execution"]["startedAt"], "epoch": 1767225600,
        "runtime": "dispatch", "org": "o"}


def test_input_output_arguments_in_output_as_and_export_as():
    doc = document([{"a": {"call": "fn", "with": {"n": "${ .n }"},
                           "output": {"as": "${ {raw: ., in: $input, rawTask: $task.output} }"},
                           "export": {"as": "${ {out: $output, in: $input} }"}}},
                    {"b": {"set": "${ $context }"}}])
    outcome = run(doc, {"n": 5}, echo)
    first = outcome.history[0]["output"]
    assert first == {"raw": {"echo": {"n": 5}}, "in": {"n": 5},
                     "rawTask": {"echo": {"n": 5}}}
    assert outcome.output == {"out": first, "in": {"n": 5}}


def test_an_expression_failing_at_run_time_faults_naming_the_task():
    doc = document([{"ok": {"set": {"v": 1}}},
                    {"broken": {"set": {"v": "${ .v | tonumber | . + \"x\" }"}}}])
    outcome = run(doc, {})
    assert outcome.status == "faulted"
    assert outcome.error["type"] == error_type("expression")
    assert outcome.error["status"] == 400
    assert outcome.error["instance"] == "/do/1/broken"
    assert outcome.error["detail"].startswith("/do/1/broken/set/v: ")
    assert outcome.history[1]["status"] == "faulted"


def test_several_jq_results_are_a_list_and_none_is_null():
    doc = document([{"a": {"set": {"many": "${ .[] }", "none": "${ empty }"}}}])
    assert run(doc, [1, 2]).output == {"many": [1, 2], "none": None}


def test_secrets_are_readable_but_redacted_from_history_and_output():
    doc = document([{"a": {"set": {"token": "${ $secret.api.token }",
                                   "note": "${ \"Bearer \" + $secrets.api.token }"}}},
                    {"b": {"call": "fn"}}],
                   use={"secrets": ["api"]})
    host = Host(doc, {}, echo, secrets={"api": {"token": "s3cr3t-value"}})
    outcome = host.run()
    assert outcome.status == "completed"
    [call] = host.asked
    assert call.spec["input"] == {"token": "s3cr3t-value", "note": "Bearer s3cr3t-value"}
    text = repr(outcome.history) + repr(outcome.output)
    assert "s3cr3t" not in text
    assert outcome.history[0]["output"] == {"token": "********", "note": "Bearer ********"}


def test_expression_errors_name_the_exact_field_of_a_template():
    doc = document([{"c": {"call": "fn", "with": {"list": [1, "${ .a.b.c }"]}}}])
    outcome = run(doc, {"a": 5})
    assert outcome.error["detail"].startswith("/do/0/c/with/list/1: Cannot index number")


def test_a_declared_secret_the_host_could_not_give_is_an_authorization_error():
    doc = document([{"a": {"set": {"t": "${ $secret.api.token }"}}}], use={"secrets": ["api"]})
    outcome = run(doc, {}, secrets={})
    assert outcome.status == "faulted"
    assert outcome.error["type"] == error_type("authorization")
    assert outcome.error["status"] == 403
    assert outcome.error["detail"] == "/do/0/a/set/t: secret 'api' is not available"
