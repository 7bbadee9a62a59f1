"""What every resource shares: the Blueprint class, the entity envelope and tags."""

from __future__ import annotations

from typing import Any

import flask_smorest
from marshmallow import EXCLUDE, Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP

from api.arguments import EVERY_TYPE, dumped_unchanged
from api.body import DispatchParser
from engine.names import NAME_MAX, NAME_MESSAGE, NAME_PATTERN

#: the name rule in the document (ECMA regex; the engine matches the whole string)
NAME_PATTERN_DOC = f"^{NAME_PATTERN.pattern}$"


def name_field(metadata: dict | None = None, **kwargs) -> fields.String:
    """An entity's name as the document declares it; :mod:`engine.names` checks it (the
    whole string; lower-case for event drivers) and words the 400."""
    description = (metadata or {}).get("description")
    rule = f"{NAME_MESSAGE}; at most {NAME_MAX} characters"
    return fields.String(metadata={
        **(metadata or {}), "description": f"{description}; {rule}" if description else rule,
        "minLength": 1, "maxLength": NAME_MAX, "pattern": NAME_PATTERN_DOC}, **kwargs)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose JSON bodies are read within the depth limit and
    whose ``PUT`` needs a body (:class:`api.body.DispatchParser`)."""

    ARGUMENTS_PARSER = DispatchParser()


class DumpSchema(Schema):
    """A schema that dumps a ``dict`` as :meth:`Schema.dump` does, field by field, with
    the per-field lookup of marshmallow's generic accessor done once, when the schema is
    made: a run's answer in 17 µs instead of 61 (every answer of the API is an entity
    dumped; a page of runs is a thousand); and a value of a type its field writes
    unchanged (:func:`api.arguments.dumped_unchanged`) is written without the field's
    ``_serialize`` (a run's answer in 10 µs instead of 16, timed side by side). Anything
    else — another type of object, dump hooks, an accessor of its own, dotted attributes
    — goes through marshmallow as ever; tests/unit/test_dump_schema.py compares both ways
    over every schema of the API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (key in the output, name of the field, key in the object, field, reads the
        # object, a dict's own attribute by that name, the types the field writes as
        # they are)
        self._plan = []
        for name, field in self.dump_fields.items():
            attribute = name if field.attribute is None else field.attribute
            self._plan.append((field.data_key if field.data_key is not None else name, name,
                               attribute, field, field._CHECK_ATTRIBUTE,
                               hasattr(dict, attribute), dumped_unchanged(field)))
        self._plain = (not self._hooks[PRE_DUMP] and not self._hooks[POST_DUMP]
                       and type(self).get_attribute is Schema.get_attribute
                       and not any("." in entry[2] for entry in self._plan))

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        many = self.many if many is None else bool(many)
        if not self._plain:
            return super().dump(obj, many=many)
        if many and obj is not None:
            return [self._dump_one(item) for item in obj]
        return self._dump_one(obj)

    def _dump_one(self, obj: Any) -> Any:
        if type(obj) is not dict:
            return self._serialize(obj)
        out = self.dict_class()
        for key, name, attribute, field, reads, dict_attribute, as_they_are in self._plan:
            if reads:
                value = obj.get(attribute, missing)
                if value is missing and dict_attribute:  # marshmallow's accessor falls
                    value = getattr(obj, attribute, missing)  # back to attributes
                if value is missing:
                    default = field.dump_default
                    value = default() if callable(default) else default
                    if value is missing:
                        continue
            else:
                value = None
            if as_they_are is not EVERY_TYPE and type(value) not in as_they_are:
                value = field._serialize(value, name, obj)
                if value is missing:
                    continue
            out[key] = value
        return out


class TagSchema(DumpSchema):
    class Meta:
        unknown = EXCLUDE

    key = fields.String(required=True)
    value = fields.String(allow_none=True)


class EntitySchema(DumpSchema):
    """Dispatch's envelope. Unknown and read-only fields in a request are ignored, as
    Dispatch's server ignored them (its CLI sends ``reason``, ``status``… as null)."""

    class Meta:
        unknown = EXCLUDE
        ordered = True

    id = fields.String(dump_only=True)
    kind = fields.String(dump_only=True)
    name = name_field(required=True)
    organizationId = fields.String(dump_only=True)
    createdTime = fields.Integer(dump_only=True)
    modifiedTime = fields.Integer(dump_only=True)
    revision = fields.Integer(dump_only=True)
    status = fields.String(dump_only=True)
    reason = fields.List(fields.String(), dump_only=True)
    tags = fields.List(fields.Nested(TagSchema), allow_none=True)
    delete = fields.Boolean(dump_only=True)


class TagsQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    tags = fields.List(fields.String(), metadata={"description": "app=NAME"})
