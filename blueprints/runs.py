"""``/v1/runs``: run functions, blocking or not, and read their runs."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields
from marshmallow.validate import Range

from api.context import org, parse_tags, system
from engine.limits import LIST_LIMIT_MAX, TIME_MAX

from .common import Blueprint, EntitySchema

blp = Blueprint("runs", __name__, url_prefix="/v1/runs", description="Runs of functions")


class RunSchema(EntitySchema):
    name = fields.String(dump_only=True)
    functionName = fields.String(dump_only=True)
    functionId = fields.String(dump_only=True)
    faasId = fields.String(dump_only=True)
    blocking = fields.Boolean(allow_none=True)
    input = fields.Raw(allow_none=True, metadata={"description": "any JSON"})
    output = fields.Raw(dump_only=True)
    error = fields.Dict(dump_only=True, metadata={"description": "{type, message, stacktrace}"})
    logs = fields.Dict(dump_only=True, metadata={"description": "{stdout: [], stderr: []}"})
    event = fields.Dict(dump_only=True)
    httpContext = fields.Dict(dump_only=True)
    secrets = fields.List(fields.String(), allow_none=True)
    services = fields.List(fields.String(), allow_none=True)
    executedTime = fields.Integer(dump_only=True, allow_none=True)
    finishedTime = fields.Integer(dump_only=True, allow_none=True)
    durationMs = fields.Float(dump_only=True)
    coldStartMs = fields.Float(dump_only=True)
    # the openwhisk driver's: the run's activation and OpenWhisk's own times
    activationId = fields.String(dump_only=True)
    initTimeMs = fields.Float(dump_only=True)
    waitTimeMs = fields.Float(dump_only=True)
    activationDurationMs = fields.Float(dump_only=True)


class RunQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    functionName = fields.String()
    # Dispatch's CLI sends Go's zero time, -62135596800
    since = fields.Integer(validate=Range(-TIME_MAX, TIME_MAX),
                           metadata={"description": "Unix seconds: runs modified after"})
    tags = fields.List(fields.String())
    limit = fields.Integer(validate=Range(1, LIST_LIMIT_MAX),
                           metadata={"description": "at most this many runs, newest first"})


@blp.route("")
class Runs(MethodView):
    @blp.arguments(RunQuerySchema(), location="query")
    @blp.arguments(RunSchema())
    @blp.response(200, RunSchema, description="blocking: the finished run")
    @blp.alt_response(202, schema=RunSchema, description="non-blocking: the run, INITIALIZED")
    def post(self, query, body):
        """Run a function. Blocking runs answer once the run is READY or ERROR."""
        runs = system().runs
        run = runs.start(org(), query.get("functionName"), body)
        if not run["blocking"]:
            return run, 202
        return runs.wait(run)

    @blp.arguments(RunQuerySchema(), location="query")
    @blp.response(200, RunSchema(many=True))
    def get(self, query):
        """List runs, newest first."""
        return system().runs.list(org(), query.get("functionName"), query.get("since"),
                                  parse_tags(query.get("tags")), query.get("limit"))


@blp.route("/<string:run_name>")
class Run(MethodView):
    @blp.arguments(RunQuerySchema(), location="query")
    @blp.response(200, RunSchema)
    def get(self, query, run_name):
        """Read one run."""
        return system().runs.get(org(), run_name, query.get("functionName"))
