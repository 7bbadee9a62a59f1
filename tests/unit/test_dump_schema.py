"""blueprints.common.DumpSchema: every schema of the API dumps a dict exactly as
marshmallow's own Schema.dump does (same keys, same order, same values)."""

from __future__ import annotations

import datetime

import pytest
from marshmallow import Schema, fields

from blueprints.common import DumpSchema

from .api_schemas import api_schemas

SCHEMAS = api_schemas(DumpSchema)


def sample(field: fields.Field, depth: int = 0):
    if isinstance(field, fields.Nested):
        nested = field.schema
        return full(nested, depth + 1) if depth < 3 else {}
    if isinstance(field, fields.List):
        return [sample(field.inner, depth + 1), sample(field.inner, depth + 1)]
    if isinstance(field, fields.Dict):
        return {"k": "v", "n": [1, {"x": None}]}
    if isinstance(field, fields.Boolean):
        return True
    if isinstance(field, fields.Integer):
        return 7
    if isinstance(field, (fields.Float, fields.Number)):
        return 1.5
    if isinstance(field, fields.DateTime):
        return datetime.datetime(2026, 12, 6, 10, 0, tzinfo=datetime.timezone.utc)
    if isinstance(field, fields.String):
        return "text é"
    return {"any": ["json", 1, None]}


def full(schema: Schema, depth: int = 0) -> dict:
    return {(field.attribute or name): sample(field, depth) for name, field in schema.dump_fields.items()}


def objects(schema: Schema) -> list:
    every = full(schema)
    return [
        {},
        every,
        {key: None for key in every},
        {**every, "unknown": 1, "revision": 3, "secret": "never dumped"},
        dict(list(every.items())[::2]),  # every other field missing
        {"items": [1], "keys": "dict attributes are not fields"},
        # values of other types than their fields': marshmallow converts them
        {key: 1 for key in every if isinstance(schema.dump_fields.get(key), (
            fields.Integer, fields.Float, fields.String, fields.Raw, fields.Boolean))},
        {key: "1" for key in every if isinstance(schema.dump_fields.get(key), (
            fields.Integer, fields.Float, fields.String, fields.Raw))},
        {key: True for key in every if isinstance(schema.dump_fields.get(key), (
            fields.Integer, fields.Float, fields.String, fields.Raw, fields.Boolean))},
        {key: 2.5 for key in every if isinstance(schema.dump_fields.get(key), (
            fields.Integer, fields.Float, fields.String))},
    ]


@pytest.mark.parametrize("cls", SCHEMAS, ids=lambda c: c.__name__)
def test_a_dump_is_marshmallows_dump(cls):
    schema = cls()
    assert schema._plain, f"{cls.__name__} takes marshmallow's own path: no gain, check why"
    for obj in objects(schema):
        ours, theirs = schema.dump(obj), Schema.dump(schema, obj)
        assert ours == theirs and list(ours) == list(theirs), obj
    many = objects(schema)
    assert schema.dump(many, many=True) == Schema.dump(schema, many, many=True)
    assert cls(many=True).dump(many) == Schema.dump(cls(many=True), many)


def test_schemas_are_found():
    names = {cls.__name__ for cls in SCHEMAS}
    assert {"RunSchema", "TagSchema"} <= names and len(SCHEMAS) >= 15


def test_an_object_that_is_not_a_dict_goes_through_marshmallow():
    class Thing:
        name, kind = "thing", "run"

    from blueprints.runs import RunSchema
    schema = RunSchema()
    assert schema.dump(Thing()) == Schema.dump(schema, Thing()) == {"kind": "run", "name": "thing"}


def test_a_field_named_as_a_dict_attribute_reads_it_as_marshmallow_does():
    class Odd(DumpSchema):  # marshmallow's accessor falls back to the dict's attributes
        items = fields.Raw()
        name = fields.String()

    obj = {"name": "n"}
    assert Odd().dump(obj) == Schema.dump(Odd(), obj) == {"items": obj.items, "name": "n"}
