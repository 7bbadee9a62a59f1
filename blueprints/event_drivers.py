"""``/v1/event/drivertypes``, ``/v1/event/drivers`` and ``/v1/event/ingest``: event drivers,
their types, and where webhook and custom drivers post events.

Dispatch's codes: POST → 201 (409 if the name is taken), GET → 200, PUT → 200, DELETE →
200 with the entity (a driver: DELETING, gone once its sync job ran). Ingest answers 200
with one ``{id, name, duplicate, type, source}`` per event, 401 "token not recognized"
for a wrong or missing token, 409 for a driver not READY, 413 past the body limit.
"""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields

from api.body import read_body
from api.context import org, parse_tags, system

from .common import Blueprint, EntitySchema, TagsQuerySchema, name_field

blp = Blueprint("event_driver", __name__, url_prefix="/v1/event",
                description="Event drivers (cron, webhook, custom) and their types")


@blp.after_request
def no_store(response):
    # driver responses carry ingest tokens
    response.headers["Cache-Control"] = "no-store"
    return response


class ConfigSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    key = fields.String(required=True)
    value = fields.Raw(allow_none=True)


class DriverTypeSchema(EntitySchema):
    image = fields.String(allow_none=True, metadata={"description": "a container image"})
    command = fields.List(fields.String(), allow_none=True,
                          metadata={"description": "an executable's argv, run on the "
                                                   "scheduler's host (instead of image)"})
    expose = fields.Boolean(allow_none=True)
    config = fields.List(fields.Nested(ConfigSchema), allow_none=True,
                         metadata={"description": "default config of its drivers"})
    builtin = fields.Boolean(dump_only=True)
    description = fields.String(dump_only=True)


class DriverTypeUpdateSchema(DriverTypeSchema):
    name = fields.String()


class LastMissedSchema(Schema):
    # "from" is a Python keyword: declared by data_key
    from_ = fields.String(data_key="from", attribute="from", allow_none=True)
    to = fields.String(allow_none=True)
    count = fields.Integer()
    more = fields.Boolean()


class DriverSchema(EntitySchema):
    name = name_field(allow_none=True, metadata={"description": "random if left out"})
    type = fields.String(required=True)
    config = fields.List(fields.Nested(ConfigSchema), allow_none=True)
    secrets = fields.List(fields.String(), allow_none=True)
    expose = fields.Boolean(dump_only=True)
    url = fields.String(dump_only=True, metadata={"description": "the ingest URL"})
    token = fields.String(dump_only=True, metadata={"description": "the ingest token"})
    missedTicks = fields.Integer(dump_only=True)
    lastMissed = fields.Nested(LastMissedSchema, dump_only=True, allow_none=True)


class DriverUpdateSchema(DriverSchema):
    type = fields.String()


# ---- driver types ---------------------------------------------------------------------

@blp.route("/drivertypes", strict_slashes=False)
class DriverTypes(MethodView):
    @blp.arguments(DriverTypeSchema())
    @blp.response(201, DriverTypeSchema)
    def post(self, body):
        """Create a driver type (an image or a command)."""
        return system().event_drivers.create_type(org(), body)

    @blp.arguments(TagsQuerySchema(), location="query")
    @blp.response(200, DriverTypeSchema(many=True))
    def get(self, query):
        """List driver types: the built-in cron and webhook, then the organization's."""
        return system().event_drivers.list_types(org(), tags=parse_tags(query.get("tags")))


@blp.route("/drivertypes/<string:type_name>")
class DriverType(MethodView):
    @blp.response(200, DriverTypeSchema)
    def get(self, type_name):
        """Read one driver type."""
        return system().event_drivers.get_type(org(), type_name)

    @blp.arguments(DriverTypeUpdateSchema())
    @blp.response(200, DriverTypeSchema)
    def put(self, body, type_name):
        """Replace a driver type's image or command, expose, config and tags."""
        return system().event_drivers.update_type(org(), type_name, body)

    @blp.response(200, DriverTypeSchema)
    def delete(self, type_name):
        """Delete a driver type no driver uses (409 naming the drivers otherwise)."""
        return system().event_drivers.delete_type(org(), type_name)


# ---- drivers --------------------------------------------------------------------------

@blp.route("/drivers", strict_slashes=False)
class Drivers(MethodView):
    @blp.arguments(DriverSchema())
    @blp.response(201, DriverSchema)
    def post(self, body):
        """Create a driver (CREATING, then READY)."""
        return system().event_drivers.create(org(), body)

    @blp.arguments(TagsQuerySchema(), location="query")
    @blp.response(200, DriverSchema(many=True))
    def get(self, query):
        """List the organization's drivers."""
        return system().event_drivers.list(org(), tags=parse_tags(query.get("tags")))


@blp.route("/drivers/<string:driver_name>")
class Driver(MethodView):
    @blp.response(200, DriverSchema)
    def get(self, driver_name):
        """Read one driver (with its ingest url and token, and missed cron ticks)."""
        return system().event_drivers.get(org(), driver_name)

    @blp.arguments(DriverUpdateSchema())
    @blp.response(200, DriverSchema)
    def put(self, body, driver_name):
        """Replace a driver's config, secrets and tags (UPDATING, then READY)."""
        return system().event_drivers.update(org(), driver_name, body)

    @blp.response(200, DriverSchema)
    def delete(self, driver_name):
        """Delete a driver (DELETING, then gone)."""
        return system().event_drivers.delete(org(), driver_name)


# ---- ingest ---------------------------------------------------------------------------

def _token() -> str | None:
    header = request.headers.get("Authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.args.get("authToken")


def _ingest(driver_name: str | None):
    service = system().ingest
    # the token first: an unknown caller learns nothing, not even the body limit
    driver = service.authenticate(_token(), driver_name)
    records = service.ingest(driver, request.headers, read_body())
    return {"events": [{"id": r["event"]["id"], "source": r["event"]["source"],
                        "type": r["event"]["type"], "name": r["name"],
                        "duplicate": bool(r.get("duplicate"))} for r in records]}


@blp.route("/ingest/<string:driver_name>", methods=["POST"])
@blp.response(200, description="{events: [{id, source, type, name, duplicate}]}")
def ingest(driver_name):
    """Post events as the driver: ``Authorization: Bearer <token>`` (or
    ``?authToken=<token>``). A CloudEvent is emitted as it is; any other body becomes the
    data of an event of the driver's ``eventType``."""
    return _ingest(driver_name)


@blp.route("/ingest", methods=["POST"], strict_slashes=False)
@blp.response(200, description="{events: [{id, source, type, name, duplicate}]}")
def ingest_by_token():
    """Dispatch Solo's ingest: the driver is the one whose token is ``?authToken=``."""
    return _ingest(None)
