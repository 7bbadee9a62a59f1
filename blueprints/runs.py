"""``/v1/runs``: run functions, blocking or not, and read their runs."""

from __future__ import annotations

from flask import request
from flask.views import MethodView
from marshmallow import EXCLUDE, Schema, fields
from marshmallow.validate import Range

from api.context import org, parse_tags, system
from engine.limits import LIST_LIMIT_MAX, TIME_MAX

from .common import Blueprint, EntitySchema

blp = Blueprint("runs", __name__, url_prefix="/v1/runs", description="Runs of functions")


class RunSchema(EntitySchema):
    name = fields.String(metadata={
        "description": "the run's name (default: a random UUID); a client-chosen name is "
                       "an idempotency key: a run of the same function by that name is "
                       "answered again instead of starting a second"})
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
    attempts = fields.Integer(dump_only=True, metadata={
        "description": "how many times the function was started for this run"})
    retry = fields.Dict(dump_only=True, allow_none=True, metadata={
        "description": "the function's retry policy when the run started"})
    retryAt = fields.Float(dump_only=True, allow_none=True, metadata={
        "description": "Unix seconds: when the next attempt is due (INITIALIZED)"})
    attemptHistory = fields.List(fields.Dict(), dump_only=True, metadata={
        "description": "[{attempt, executedTime, finishedTime, status, error}] under a "
                       "retry policy"})
    dead = fields.Boolean(dump_only=True, metadata={
        "description": "ended ERROR with an error its policy retries and no attempt left"})
    redrivenFrom = fields.String(dump_only=True, metadata={
        "description": "the dead run this one started again"})
    redrivenTo = fields.String(dump_only=True, metadata={
        "description": "the run that started this one again"})
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
    limit = fields.Integer(validate=Range(1, LIST_LIMIT_MAX), metadata={
        "description": "at most this many runs, newest first (default and most: 1000); "
                       "if there are more, X-Dispatch-Continue carries the next page's token"})
    continue_ = fields.String(data_key="continue", attribute="continue", metadata={
        "description": "the token of a previous page's X-Dispatch-Continue: the next page"})
    dead = fields.Boolean(metadata={
        "description": "only the dead-letter list: dead runs not redriven, most recently "
                       "dead first"})


@blp.route("")
class Runs(MethodView):
    @blp.arguments(RunQuerySchema(), location="query")
    @blp.arguments(RunSchema())
    @blp.response(200, RunSchema, description="blocking: the finished run")
    @blp.alt_response(202, schema=RunSchema, description="non-blocking: the run, INITIALIZED")
    @blp.doc(parameters=[{
        "in": "header", "name": "Idempotency-Key", "required": False,
        "schema": {"type": "string", "maxLength": 255},
        "description": "the same key (per organization and function, within "
                       "DISPATCH_IDEMPOTENCY_SECONDS) answers with the run the first "
                       "request started, with Idempotent-Replayed: true; nothing runs again"}])
    def post(self, query, body):
        """Run a function. Blocking runs answer once the run is READY or ERROR.

        A repeated ``Idempotency-Key`` (or run ``name``) answers as the first request
        would now: 202 with the run as it is (non-blocking), or 200 once it settles
        (blocking); ``Idempotent-Replayed: true`` says it is a replay.
        """
        runs = system().runs
        run, replayed = runs.invoke(org(), query.get("functionName"), body,
                                    request.headers.get("Idempotency-Key"))
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        if not run["blocking"]:
            return run, 202, headers
        if run["status"] not in ("READY", "ERROR"):
            run = runs.wait(run)
        return run, 200, headers

    @blp.arguments(RunQuerySchema(), location="query")
    @blp.response(200, RunSchema(many=True), headers={
        "X-Dispatch-Continue": {"description": "the next page's token (pass it as "
                                               "?continue=); absent on the last page",
                                "schema": {"type": "string"}}})
    def get(self, query):
        """List runs, newest first, a page at a time (the body stays Dispatch's plain
        list; the next page's token is in ``X-Dispatch-Continue``)."""
        if query.get("dead"):
            return system().runs.dead(org(), query.get("functionName"), query.get("limit"))
        page = system().runs.page(org(), query.get("functionName"), query.get("since"),
                                  parse_tags(query.get("tags")), query.get("limit"),
                                  query.get("continue"))
        headers = {"X-Dispatch-Continue": page.token} if page.token else {}
        return page.items, 200, headers


@blp.route("/<string:run_name>")
class Run(MethodView):
    @blp.arguments(RunQuerySchema(), location="query")
    @blp.response(200, RunSchema)
    def get(self, query, run_name):
        """Read one run."""
        return system().runs.get(org(), run_name, query.get("functionName"))


@blp.route("/<string:run_name>/redrive")
class Redrive(MethodView):
    @blp.response(202, RunSchema, description="the new run, INITIALIZED")
    def post(self, run_name):
        """Start a run in ERROR (a dead one) again, as a new run that names it in
        ``redrivenFrom``; 409 if the run is not in ERROR or was redriven already."""
        return system().runs.redrive(org(), run_name)
