"""api.arguments: a request's query or JSON body loaded the short way is exactly what
webargs and marshmallow load (same keys, same order, same values), over every schema of
the API and values of every sort; what the short way cannot load it leaves to them."""

from __future__ import annotations

import itertools

import pytest
from flask import Flask
from marshmallow import EXCLUDE, INCLUDE, RAISE, Schema, ValidationError, fields
from marshmallow.validate import Length
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import MultiDict

from api.arguments import LoadPlan, load_mapping
from api.body import DispatchParser

from .api_schemas import api_schemas

SCHEMAS = api_schemas()

#: values of every sort, plain or not, for any field
VALUES = [None, "text é", "", "true", True, False, 0, 1, 7, 1.5, [], ["a", "b"], ["a", 1],
          [None], {}, {"k": "v", "n": [1, {"x": None}]}, "2026-12-06T10:00:00Z"]


def payloads(schema: Schema):
    keys = [(field.data_key or name) for name, field in schema.load_fields.items()]
    dump_only = [(field.data_key or name) for name, field in schema.dump_fields.items()
                 if name not in schema.load_fields]
    yield {}
    for key, value in itertools.product(keys, VALUES):
        yield {key: value}
    plain = {key: "v" for key in keys}
    yield plain
    yield dict(reversed(list(plain.items())))  # marshmallow's order is the schema's
    yield {**plain, "unknown": 1}
    for key in dump_only[:3]:
        yield {key: "v"}


def load(schema: Schema, data, unknown):
    try:
        return schema.load(data, **({"unknown": unknown} if unknown else {}))
    except ValidationError as exc:
        return exc


@pytest.mark.parametrize("cls", SCHEMAS, ids=lambda c: c.__name__)
def test_a_short_load_is_marshmallows_load(cls):
    schema = cls()
    for data, unknown in itertools.product(payloads(schema), (None, EXCLUDE, RAISE, INCLUDE)):
        ours = load_mapping(schema, data, unknown)
        if ours is None:
            continue  # marshmallow's own
        theirs = load(schema, data, unknown)
        assert not isinstance(theirs, ValidationError), (data, unknown, theirs.messages)
        assert ours == theirs and list(ours) == list(theirs), (data, unknown)


def test_schemas_are_found_and_the_run_request_takes_the_short_way():
    names = {cls.__name__ for cls in SCHEMAS}
    assert {"RunSchema", "RunQuerySchema", "FunctionSchema"} <= names and len(SCHEMAS) >= 20
    from blueprints.runs import RunQuerySchema, RunSchema

    assert load_mapping(RunSchema(), {"input": {"a": [1]}, "blocking": True,
                                      "secrets": ["s"]}, None) == {
        "blocking": True, "input": {"a": [1]}, "secrets": ["s"]}
    assert load_mapping(RunQuerySchema(), MultiDict([("functionName", "noop")]), EXCLUDE) == {
        "functionName": "noop"}


def test_what_marshmallow_converts_refuses_or_fills_in_is_left_to_it():
    class Things(Schema):
        name = fields.String()
        count = fields.Integer()
        short = fields.String(validate=Length(max=2))
        must = fields.String(required=True)
        default = fields.String(load_default="d")

    schema = Things()
    for data in ({"count": 1}, {"short": "abc"}, {}, {"must": "x"}, {"must": 1},
                 {"must": "x", "default": "e", "name": None}, {"must": "x", "other": 1}):
        assert load_mapping(schema, data, None) is None, data
    # a field marshmallow must load, even when the schema ignores unknown keys
    assert load_mapping(schema, {"count": 1}, EXCLUDE) is None


def test_a_schema_with_hooks_is_not_planned():
    from marshmallow import post_load

    class Hooked(Schema):
        name = fields.String()

        @post_load
        def upper(self, data, **_):
            return {"name": data["name"].upper()}

    assert LoadPlan.of(Hooked()) is None
    assert LoadPlan.of(Hooked(many=True)) is None
    assert LoadPlan.of(Hooked(partial=True)) is None


QUERIES = [[], [("functionName", "noop")], [("functionName", "a"), ("functionName", "b")],
           [("tags", "a=b"), ("tags", "c=d")], [("limit", "10")], [("limit", "x")],
           [("since", "-62135596800")], [("continue", "t")], [("dead", "true")],
           [("other", "1")], [("functionName", "")]]
BODIES = [b"", b"{}", b'{"input": {}, "blocking": true}', b'{"blocking": "yes"}',
          b'{"blocking": null}', b'{"secrets": ["a", 2]}', b'{"name": 5}', b"[1, 2]",
          b'{"input": null, "tags": [{"key": "k", "value": "v"}]}', b'{"status": "READY"}',
          b'{"unknown": 1}', b'"text"', b"{", b'{"input": 1'] + [b"[" * 300 + b"]" * 300]


def parse(parser, schema, location, query, body):
    app = Flask("t")
    with app.test_request_context("/", method="POST", query_string=query, data=body,
                                  content_type="application/json"):
        try:
            return parser.parse(schema, location=location)
        except Exception as exc:  # webargs' 422 (an HTTPException carrying the messages)
            return type(exc).__name__, getattr(exc, "data", None)


@pytest.mark.parametrize("cls", SCHEMAS, ids=lambda c: c.__name__)
def test_the_parser_answers_as_webargs_does(cls):
    ours, webargs = DispatchParser(), DispatchParser()
    webargs.parse = lambda *a, **k: FlaskParser.parse(webargs, *a, **k)  # the long way
    schema = cls()
    for query in QUERIES:
        assert (parse(ours, schema, "query", query, b"")
                == parse(webargs, schema, "query", query, b"")), query
    for body in BODIES:
        assert (parse(ours, schema, "json", [], body)
                == parse(webargs, schema, "json", [], body)), body


def test_a_body_left_to_webargs_is_read_once(monkeypatch):
    from blueprints.runs import RunSchema
    from engine import fastjson

    reads, loads = [], fastjson.loads
    monkeypatch.setattr(fastjson, "loads", lambda data: reads.append(data) or loads(data))
    parse(DispatchParser(), RunSchema(), "json", [], b'{"input": [1], "blocking": "yes"}')
    assert reads == [b'{"input": [1], "blocking": "yes"}']  # the short way declined it
