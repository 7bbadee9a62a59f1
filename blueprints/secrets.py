"""``/v1/secret``: Dispatch's secret store — create, list, read, update and delete secrets.

Dispatch's codes, quirks included: POST → 201 (409 if the name is taken), PUT → 201,
DELETE → 204 with no body. Its basePath was ``/v1/secret`` with paths ``/``, so both
``/v1/secret`` and ``/v1/secret/`` list and create. Responses carry the values (see
:mod:`engine.services.secrets` for why) and are marked not to be cached.
"""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import fields

from api.context import org, parse_tags, system

from .common import Blueprint, EntitySchema, TagsQuerySchema, name_field

blp = Blueprint("secret", __name__, url_prefix="/v1/secret",
                description="Secrets: maps of strings, encrypted at rest, given to runs")


@blp.after_request
def no_store(response):
    # values must not linger in a proxy's or a browser's cache
    response.headers["Cache-Control"] = "no-store"
    return response


class SecretSchema(EntitySchema):
    # the service checks the values itself, so that a bad one is named by its key and
    # never echoed back
    secrets = fields.Dict(allow_none=True,
                          metadata={"description": "names to string values"})


class SecretUpdateSchema(SecretSchema):
    name = name_field(metadata={"description": "must match the path's name if given"})
    secrets = fields.Dict(allow_none=True,
                          metadata={"description": "the new values; left out: kept as they are"})


# strict_slashes=False: "/v1/secret" answers as "/v1/secret/" does, without a redirect
@blp.route("/", strict_slashes=False)
class Secrets(MethodView):
    @blp.arguments(SecretSchema())
    @blp.response(201, SecretSchema)
    def post(self, body):
        """Create a secret."""
        return system().secrets.create(org(), body)

    @blp.arguments(TagsQuerySchema(), location="query")
    @blp.response(200, SecretSchema(many=True))
    def get(self, query):
        """List the organization's secrets."""
        return system().secrets.list(org(), tags=parse_tags(query.get("tags")))


@blp.route("/<string:secret_name>")
class Secret(MethodView):
    @blp.response(200, SecretSchema)
    def get(self, secret_name):
        """Read one secret."""
        return system().secrets.get(org(), secret_name)

    @blp.arguments(SecretUpdateSchema())
    @blp.response(201, SecretSchema)
    def put(self, body, secret_name):
        """Replace a secret's values and tags (201, as Dispatch answered)."""
        return system().secrets.update(org(), secret_name, body)

    @blp.response(204)
    def delete(self, secret_name):
        """Delete a secret."""
        system().secrets.delete(org(), secret_name)
