"""``/v1/event``: emit CloudEvents, read received events, and manage subscriptions.

``POST /v1/event`` answers 200 with the emission (Dispatch's code): ``{id, name,
emitted-time, tags, event, duplicate}``; the body is read raw, since CloudEvents' HTTP
modes differ (see :mod:`engine.cloudevents`), and refused with 413 past
``DISPATCH_MAX_BODY_BYTES``. Subscriptions are Dispatch's: POST → 201, PUT and DELETE →
200 with the entity. Event drivers live in :mod:`blueprints.event_drivers`; events are
matched only by their 40-hex-digit names, so ``/v1/event/drivers`` is never an event.
"""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields
from marshmallow.validate import Range

from api.body import read_body
from api.context import org, parse_tags, system
from engine.cloudevents import parse_http
from engine.limits import LIST_LIMIT_MAX

from .common import Blueprint, EntitySchema, TagsQuerySchema, name_field

blp = Blueprint("event", __name__, url_prefix="/v1/event",
                description="Events: emit CloudEvents; subscriptions run functions on them")


class EventQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    type = fields.String(metadata={"description": "only events of this type"})
    limit = fields.Integer(validate=Range(1, LIST_LIMIT_MAX),
                           metadata={"description": "at most this many, newest first"})


class SubscriptionSchema(EntitySchema):
    name = name_field(allow_none=True,
                      metadata={"description": "random (petname + 6 digits) if left out"})
    eventType = fields.String(required=True)
    function = fields.String(required=True)
    secrets = fields.List(fields.String(), allow_none=True,
                          metadata={"description": "secrets given to the runs"})


def emission(record: dict) -> dict:
    """Dispatch's Emission: the event with the record's id, time and tags."""
    return {"id": record["id"], "name": record["name"],
            "emitted-time": record["createdTime"], "tags": record.get("tags") or [],
            "event": record["event"], "duplicate": record["duplicate"]}


# strict_slashes=False: "/v1/event" answers as "/v1/event/" (Dispatch's path) does
@blp.route("/", strict_slashes=False)
class Events(MethodView):
    @blp.response(200, description="the emission: {id, name, emitted-time, tags, event, "
                                   "duplicate}; a batch answers a list of them")
    def post(self):
        """Emit a CloudEvent: Dispatch's 0.1 JSON, or CloudEvents 1.0 (structured, batch
        or binary mode). An event whose (source, id) was seen already is not delivered
        again (``duplicate: true``)."""
        events = parse_http(request.headers, read_body())  # all checked before any is kept
        service, organization = system().events, org()
        emitted = [emission(service.emit(organization, event)) for event in events]
        batch = (request.mimetype or "").lower() == "application/cloudevents-batch+json"
        return emitted if batch else emitted[0]

    @blp.arguments(EventQuerySchema(), location="query")
    @blp.response(200, description="events received, newest first")
    def get(self, query):
        """List the organization's received events (kept for the retention period)."""
        return system().events.list(org(), event_type=query.get("type"),
                                    limit=query.get("limit"))


@blp.route("/<string(length=40):event_name>")
class Event(MethodView):
    @blp.response(200, description="the received event and the runs it started")
    def get(self, event_name):
        """Read one received event."""
        return system().events.get(org(), event_name)


@blp.route("/subscriptions", strict_slashes=False)
class Subscriptions(MethodView):
    @blp.arguments(SubscriptionSchema())
    @blp.response(201, SubscriptionSchema)
    def post(self, body):
        """Subscribe a function to an event type (CREATING, then READY)."""
        return system().subscriptions.create(org(), body)

    @blp.arguments(TagsQuerySchema(), location="query")
    @blp.response(200, SubscriptionSchema(many=True))
    def get(self, query):
        """List the organization's subscriptions."""
        return system().subscriptions.list(org(), tags=parse_tags(query.get("tags")))


@blp.route("/subscriptions/<string:subscription_name>")
class Subscription(MethodView):
    @blp.response(200, SubscriptionSchema)
    def get(self, subscription_name):
        """Read one subscription."""
        return system().subscriptions.get(org(), subscription_name)

    @blp.arguments(SubscriptionSchema())
    @blp.response(200, SubscriptionSchema)
    def put(self, body, subscription_name):
        """Re-target a subscription (UPDATING, then READY)."""
        return system().subscriptions.update(org(), subscription_name, body)

    @blp.response(200, SubscriptionSchema)
    def delete(self, subscription_name):
        """Delete a subscription (DELETING, then gone)."""
        return system().subscriptions.delete(org(), subscription_name)
