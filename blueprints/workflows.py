"""``/v1/workflow`` (definitions) and ``/v1/executions`` (their executions, as
``/v1/runs`` is to functions)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from api.context import org, parse_tags, system

from .common import EntitySchema, TagsQuerySchema

blp = Blueprint("workflow", __name__, url_prefix="/v1/workflow",
                description="Workflows: Serverless Workflow DSL 1.0 documents")
executions_blp = Blueprint("executions", __name__, url_prefix="/v1/executions",
                           description="Executions of workflows")


class WorkflowSchema(EntitySchema):
    definition = fields.Dict(required=True, metadata={
        "description": "the workflow document (Serverless Workflow DSL 1.0) as JSON"})
    document = fields.Dict(dump_only=True,
                           metadata={"description": "the document's dsl, namespace, name, "
                                                    "version"})
    schedule = fields.Dict(dump_only=True, allow_none=True)
    definitionRevision = fields.Integer(dump_only=True)


class WorkflowUpdateSchema(WorkflowSchema):
    name = fields.String(metadata={"description": "must match the path's name if given"})


@blp.route("")
class Workflows(MethodView):
    @blp.arguments(WorkflowSchema())
    @blp.response(201, WorkflowSchema)
    def post(self, body):
        """Create a workflow; a definition that fails the DSL's schema or what Dispatch
        supports is a 400 naming the JSON path."""
        return system().workflows.create(org(), body)

    @blp.arguments(TagsQuerySchema(), location="query")
    @blp.response(200, WorkflowSchema(many=True))
    def get(self, query):
        """List the organization's workflows."""
        return system().workflows.list(org(), tags=parse_tags(query.get("tags")))


@blp.route("/<string:workflow_name>")
class Workflow(MethodView):
    @blp.response(200, WorkflowSchema)
    def get(self, workflow_name):
        """Read one workflow."""
        return system().workflows.get(org(), workflow_name)

    @blp.arguments(WorkflowUpdateSchema())
    @blp.response(200, WorkflowSchema)
    def put(self, body, workflow_name):
        """Replace a workflow's definition (running executions keep theirs)."""
        return system().workflows.update(org(), workflow_name, body)

    @blp.response(200, WorkflowSchema)
    def delete(self, workflow_name):
        """Delete a workflow (its executions stay until their retention ends)."""
        return system().workflows.delete(org(), workflow_name)


class ExecutionSchema(EntitySchema):
    name = fields.String(allow_none=True,
                         metadata={"description": "idempotent start: an existing "
                                                  "execution of that name is returned"})
    workflowName = fields.String(dump_only=True)
    workflowId = fields.String(dump_only=True)
    definitionRevision = fields.Integer(dump_only=True)
    blocking = fields.Boolean(allow_none=True)
    input = fields.Raw(allow_none=True, metadata={"description": "any JSON"})
    output = fields.Raw(dump_only=True)
    error = fields.Dict(dump_only=True, allow_none=True,
                        metadata={"description": "RFC 7807 Problem Details"})
    tasks = fields.List(fields.Dict(), dump_only=True,
                        metadata={"description": "the history, in the order tasks started"})
    trigger = fields.Dict(dump_only=True)
    parent = fields.String(dump_only=True, allow_none=True)
    cancelRequested = fields.Boolean(dump_only=True)
    existing = fields.Boolean(dump_only=True,
                              metadata={"description": "true: this name was started before"})
    startedTime = fields.Integer(dump_only=True, allow_none=True)
    finishedTime = fields.Integer(dump_only=True, allow_none=True)
    durationMs = fields.Float(dump_only=True, allow_none=True)


class ExecutionQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    workflowName = fields.String()
    status = fields.String(metadata={"description": "pending, running, waiting, suspended, "
                                                    "cancelled, faulted or completed"})
    limit = fields.Integer(metadata={"description": "at most this many, newest first"})


@executions_blp.route("")
class Executions(MethodView):
    @executions_blp.arguments(ExecutionQuerySchema(), location="query")
    @executions_blp.arguments(ExecutionSchema())
    @executions_blp.response(200, ExecutionSchema, description="blocking: the finished "
                                                               "execution")
    @executions_blp.alt_response(202, schema=ExecutionSchema,
                                 description="non-blocking: the execution, pending")
    def post(self, query, body):
        """Start an execution of ``workflowName``. Blocking starts answer once it has
        completed, faulted or been cancelled."""
        executions = system().executions
        execution = executions.start(org(), query.get("workflowName"), body,
                                     name=body.get("name"))
        if not body.get("blocking"):
            return execution, 202
        existing = execution.get("existing")
        execution = executions.wait(execution)
        if existing:
            execution = dict(execution, existing=True)
        return execution

    @executions_blp.arguments(ExecutionQuerySchema(), location="query")
    @executions_blp.response(200, ExecutionSchema(many=True))
    def get(self, query):
        """List executions, newest first."""
        return system().executions.list(org(), query.get("workflowName"),
                                        query.get("status"), query.get("limit"))


@executions_blp.route("/<string:execution_name>")
class Execution(MethodView):
    @executions_blp.arguments(ExecutionQuerySchema(), location="query")
    @executions_blp.response(200, ExecutionSchema)
    def get(self, query, execution_name):
        """Read one execution, with its history."""
        return system().executions.get(org(), execution_name, query.get("workflowName"))


class ActionSchema(Schema):
    """An optional body of cancel, suspend and resume."""

    class Meta:
        unknown = EXCLUDE

    reason = fields.String(allow_none=True, validate=validate.Length(max=1000),
                           metadata={"description": "why (kept in the execution's reason)"})


@executions_blp.route("/<string:execution_name>/cancel")
class CancelExecution(MethodView):
    @executions_blp.arguments(ActionSchema(), required=False)
    @executions_blp.response(202, ExecutionSchema)
    def post(self, body, execution_name):
        """Cancel an execution: no further task starts; it ends ``cancelled``. 409 if it
        has finished."""
        return system().executions.cancel(org(), execution_name, (body or {}).get("reason"))


@executions_blp.route("/<string:execution_name>/suspend")
class SuspendExecution(MethodView):
    @executions_blp.arguments(ActionSchema(), required=False)
    @executions_blp.response(200, ExecutionSchema)
    def post(self, body, execution_name):
        """Suspend an execution: nothing new starts until it is resumed. 409 if it has
        finished."""
        return system().executions.suspend(org(), execution_name, (body or {}).get("reason"))


@executions_blp.route("/<string:execution_name>/resume")
class ResumeExecution(MethodView):
    @executions_blp.arguments(ActionSchema(), required=False)
    @executions_blp.response(202, ExecutionSchema)
    def post(self, body, execution_name):
        """Resume a suspended execution (409 if it is not suspended)."""
        return system().executions.resume(org(), execution_name, (body or {}).get("reason"))
