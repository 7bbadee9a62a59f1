"""``/v1/function``: create, list, read, update and delete functions."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields
from marshmallow.validate import Range

from api.context import org, parse_tags, system
from engine.limits import CONCURRENCY_MAX, TIMEOUT_MAX_MS

from .common import Blueprint, EntitySchema, TagsQuerySchema, name_field

blp = Blueprint("function", __name__, url_prefix="/v1/function",
                description="Functions: source built onto an image, run by a driver")


class FunctionSchemasSchema(Schema):
    """A function's input and output JSON Schemas."""

    class Meta:
        unknown = EXCLUDE

    # "in" is a Python keyword: declare the field under another name
    in_ = fields.Dict(data_key="in", attribute="in", allow_none=True, metadata={"description": "JSON Schema of the input"})
    out = fields.Dict(allow_none=True, metadata={"description": "JSON Schema of the output"})


class FunctionSchema(EntitySchema):
    image = fields.String(allow_none=True, metadata={"description": "the image to run on, e.g. python3"})
    handler = fields.String(allow_none=True, metadata={"description": "MODULE.FUNCTION"})
    source = fields.String(load_only=True, allow_none=True,
                           metadata={"description": "base64 of a tar.gz of the source"})
    sourceURL = fields.String(allow_none=True)
    schema = fields.Nested(FunctionSchemasSchema, allow_none=True)
    secrets = fields.List(fields.String(), allow_none=True)
    services = fields.List(fields.String(), allow_none=True)
    timeout = fields.Integer(allow_none=True, validate=Range(0, TIMEOUT_MAX_MS),
                             metadata={"description": "milliseconds (0: the default)"})
    network = fields.Boolean(allow_none=True,
                             metadata={"description": "may the function reach the network"})
    concurrency = fields.Integer(allow_none=True, validate=Range(0, CONCURRENCY_MAX),
                                 metadata={"description": "most instances at once (0: default)"})
    retry = fields.Dict(allow_none=True, metadata={
        "description": "retry policy: {attempts, backoff: constant|exponential, delayMs, "
                       "maxDelayMs, jitter (0-1), on: [SystemError, FunctionError]}"})
    retention = fields.Dict(allow_none=True, metadata={
        "description": "runs kept: {count, ageSeconds} (default: the server's)"})
    faasId = fields.String(dump_only=True)
    functionImageURL = fields.String(dump_only=True, allow_none=True)


class FunctionUpdateSchema(FunctionSchema):
    name = name_field(metadata={"description": "must match the path's name if given"})


@blp.route("")
class Functions(MethodView):
    @blp.arguments(FunctionSchema())
    @blp.response(201, FunctionSchema)
    def post(self, body):
        """Create a function (built asynchronously: INITIALIZED, then READY or ERROR)."""
        return system().functions.create(org(), body)

    @blp.arguments(TagsQuerySchema(), location="query")
    @blp.response(200, FunctionSchema(many=True))
    def get(self, query):
        """List the organization's functions."""
        return system().functions.list(org(), tags=parse_tags(query.get("tags")))


@blp.route("/<string:function_name>")
class Function(MethodView):
    @blp.response(200, FunctionSchema)
    def get(self, function_name):
        """Read one function."""
        return system().functions.get(org(), function_name)

    @blp.arguments(FunctionUpdateSchema())
    @blp.response(200, FunctionSchema)
    def put(self, body, function_name):
        """Replace a function's spec and source: a new version is built."""
        return system().functions.update(org(), function_name, body)

    @blp.response(200, FunctionSchema)
    def delete(self, function_name):
        """Delete a function with its runs (DELETING until its removal completes)."""
        return system().functions.delete(org(), function_name)
