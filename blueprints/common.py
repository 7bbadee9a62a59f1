"""What every resource shares: the Blueprint class, the entity envelope and tags."""

from __future__ import annotations

import flask_smorest
from marshmallow import EXCLUDE, Schema, fields

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


class TagSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    key = fields.String(required=True)
    value = fields.String(allow_none=True)


class EntitySchema(Schema):
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
