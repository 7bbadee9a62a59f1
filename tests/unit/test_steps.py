"""The run pipeline's steps: schema validation and secret injection."""

from __future__ import annotations

import pytest

from engine.drivers.base import Outcome
from engine.errors import InvalidInput
from engine.steps import Call, Step, StepError, run_pipeline
from engine.steps.secrets import SecretInjection
from engine.steps.validation import SchemaValidation, check_schema

SCHEMA_IN = {"type": "object", "required": ["name"],
             "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
SCHEMA_OUT = {"type": "object", "required": ["myField"]}


def call(payload=None, schema=None, secrets=(), version="v1"):
    fn = {"faasId": version, "schema": schema or {"in": None, "out": None}}
    run = {"organizationId": "o", "secrets": list(secrets)}
    return Call(run=run, function=fn, context={"secrets": {}}, payload=payload)


def returning(payload):
    return lambda c: Outcome(payload=payload, logs={"stdout": ["ran"], "stderr": []})


def test_valid_input_and_output_pass_through():
    outcome = run_pipeline([SchemaValidation()], call({"name": "x"}, {"in": SCHEMA_IN, "out": SCHEMA_OUT}),
                           returning({"myField": "hi"}))
    assert outcome.error is None and outcome.payload == {"myField": "hi"}


def test_invalid_input_is_an_input_error_naming_the_path_and_the_function_never_runs():
    ran = []
    outcome = run_pipeline([SchemaValidation()], call({"name": "x", "age": "old"}, {"in": SCHEMA_IN}),
                           lambda c: ran.append(1))
    assert ran == []
    assert outcome.error["type"] == "InputError"
    assert outcome.error["message"] == "Input invalid against schema: $.age: 'old' is not of type 'integer'"


def test_missing_required_input_names_the_property():
    outcome = run_pipeline([SchemaValidation()], call({}, {"in": SCHEMA_IN}), returning(None))
    assert "'name' is a required property" in outcome.error["message"]


def test_invalid_output_is_a_function_error_and_keeps_the_logs():
    outcome = run_pipeline([SchemaValidation()], call({"name": "x"}, {"out": SCHEMA_OUT}),
                           returning({"other": 1}))
    assert outcome.error["type"] == "FunctionError"
    assert outcome.error["message"].startswith("Output invalid against schema: $: ")
    assert outcome.payload is None and outcome.logs["stdout"] == ["ran"]


def test_schema_draft_is_taken_from_its_dollar_schema():
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
              "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}}
    check_schema(draft4, "schema.in")
    outcome = run_pipeline([SchemaValidation()], call({"n": 0}, {"in": draft4}), returning(1))
    assert outcome.error["type"] == "InputError"


@pytest.mark.parametrize("schema", [{"type": "nope"}, {"required": "name"}, [1, 2], "string"])
def test_invalid_schema_is_refused_naming_the_field(schema):
    with pytest.raises(InvalidInput, match=r"^schema\.in "):
        check_schema(schema, "schema.in")


def test_secrets_are_merged_into_the_context_in_order():
    values = {"a": {"user": "u", "password": "1"}, "b": {"password": "2"}}

    def resolve(org, names):
        merged = {}
        for name in names:
            merged.update(values[name])
        return merged

    seen = {}
    c = call(secrets=["a", "b", "a"])
    run_pipeline([SecretInjection(resolve)], c, lambda c: seen.update(c.context["secrets"]) or Outcome())
    assert seen == {"user": "u", "password": "2"}
    assert "secrets" not in c.run or c.run["secrets"] == ["a", "b", "a"]  # names only on the run


def test_missing_secret_is_an_input_error_and_the_function_never_runs():
    def resolve(org, names):
        raise InvalidInput("secret nope not found")

    ran = []
    outcome = run_pipeline([SecretInjection(resolve)], call(secrets=["nope"]), lambda c: ran.append(1))
    assert ran == [] and outcome.error == {"type": "InputError", "message": "secret nope not found",
                                            "stacktrace": []}


def test_steps_run_before_in_order_and_after_in_reverse():
    order = []

    class Recording(Step):
        def __init__(self, name):
            self.name = name

        def before(self, c):
            order.append(f"before {self.name}")

        def after(self, c, outcome):
            order.append(f"after {self.name}")

    run_pipeline([Recording("a"), Recording("b")], call(), lambda c: order.append("call") or Outcome())
    assert order == ["before a", "before b", "call", "after b", "after a"]


def test_a_step_error_after_the_call_fails_the_run():
    class Refuse(Step):
        def after(self, c, outcome):
            raise StepError("FunctionError", "no")

    outcome = run_pipeline([Refuse()], call(), returning(1))
    assert outcome.error["message"] == "no"


def test_compiled_schemas_are_bounded_least_recently_used_first():
    from engine.steps.validation import SchemaValidation
    validation = SchemaValidation(max_validators=2)
    schema = {"schema": {"in": {"type": "object"}}}
    for version in ("v1", "v2", "v1", "v3"):  # v1 used again: v2 is the oldest unused
        assert validation._validator(dict(schema, faasId=version), "in") is not None
    assert list(validation._validators) == [("v1", "in"), ("v3", "in")]
