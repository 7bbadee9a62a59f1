"""``/v1/api``: APIs of the gateway — map methods, uris and hosts to a function.

Dispatch's codes: POST → 200 (not 201; 409 if the name is taken or a route collides),
PUT → 200, DELETE → 200 with the entity (``DELETING``; removed once synced). Both
``/v1/api`` and ``/v1/api/`` list and create.
"""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields

from api.context import org, parse_tags, system

from .common import Blueprint, EntitySchema, name_field

blp = Blueprint("api", __name__, url_prefix="/v1/api",
                description="APIs: HTTP routes of the gateway, each running a function")


class ApiSchema(EntitySchema):
    # the service checks and normalizes each field, naming the one at fault
    function = fields.String(required=True, metadata={"description": "the function run"})
    hosts = fields.List(fields.String(), allow_none=True,
                        metadata={"description": "host names; none: /<org>/<uri>"})
    uris = fields.List(fields.String(), allow_none=True,
                       metadata={"description": "paths starting with / (default /)"})
    methods = fields.List(fields.String(), allow_none=True,
                          metadata={"description": "GET, POST, … (default GET)"})
    protocols = fields.List(fields.String(), allow_none=True,
                            metadata={"description": "http, https (default both)"})
    authentication = fields.String(allow_none=True,
                                   metadata={"description": "public (default) or bearer"})
    enabled = fields.Boolean(allow_none=True, metadata={"description": "default true"})
    cors = fields.Boolean(allow_none=True)
    tls = fields.String(allow_none=True, metadata={"description": "a secret's name"})


class ApiUpdateSchema(ApiSchema):
    name = name_field(metadata={"description": "must match the path's name if given"})
    function = fields.String(allow_none=True)


class ApiQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    function = fields.String(metadata={"description": "only this function's APIs"})
    tags = fields.List(fields.String(), metadata={"description": "app=NAME"})


@blp.route("/", strict_slashes=False)
class Apis(MethodView):
    @blp.arguments(ApiSchema())
    @blp.response(200, ApiSchema)
    def post(self, body):
        """Create an API (200, as Dispatch answered)."""
        return system().apis.create(org(), body)

    @blp.arguments(ApiQuerySchema(), location="query")
    @blp.response(200, ApiSchema(many=True))
    def get(self, query):
        """List the organization's APIs."""
        return system().apis.list(org(), query.get("function"),
                                  parse_tags(query.get("tags")))


@blp.route("/<string:api_name>")
class Api(MethodView):
    @blp.response(200, ApiSchema)
    def get(self, api_name):
        """Read one API."""
        return system().apis.get(org(), api_name)

    @blp.arguments(ApiUpdateSchema())
    @blp.response(200, ApiSchema)
    def put(self, body, api_name):
        """Update an API: the fields given replace the stored ones."""
        return system().apis.update(org(), api_name, body)

    @blp.response(200, ApiSchema)
    def delete(self, api_name):
        """Delete an API; answers it, DELETING."""
        return system().apis.delete(org(), api_name)
