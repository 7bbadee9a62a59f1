"""Schemas every resource shares: the entity envelope and tags."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields


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
    name = fields.String(required=True)
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
