"""``/ui/workflows``: workflows (definition, task graph, executions), an execution's graph
with each task's live status and its history; start an execution with input; cancel one.

Over the engine's workflow and execution services, as ``/v1/workflow`` and
``/v1/executions`` are: an execution's ``tasks`` (its history, entries with the task's
JSON pointer ``reference`` and ``status``) light up the graph of its definition snapshot.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from engine.errors import InvalidInput

from . import forms
from .graph import task_graph
from .session import allow, may, org, system

bp = Blueprint("workflows", __name__, url_prefix="/workflows")

#: the REST paths (so the resources) the workflow API serves: /v1/workflow, /v1/executions
WORKFLOW_RESOURCE, EXECUTION_RESOURCE = "workflow", "executions"
RECENT = 50
#: statuses in which an execution may still be cancelled
CANCELLABLE = ("pending", "running", "waiting", "suspended")


@bp.route("/")
def index():
    allow(WORKFLOW_RESOURCE)
    executions = (system().executions.list(org(), limit=RECENT)
                  if may(EXECUTION_RESOURCE) else None)
    return render_template("ui/workflows.html", workflows=system().workflows.list(org()),
                           executions=executions)


def _show(name: str, input_text: str = "", error: str | None = None, status: int = 200):
    allow(WORKFLOW_RESOURCE)
    workflow = system().workflows.get(org(), name)
    definition = workflow.get("definition") or {}
    schema = ((definition.get("input") or {}).get("schema") or {}).get("document")
    executions = (system().executions.list(org(), name, limit=RECENT)
                  if may(EXECUTION_RESOURCE) else None)
    return render_template(
        "ui/workflow.html", workflow=workflow, definition=definition,
        graph=task_graph(definition, []), schema=schema, executions=executions,
        can_start=may(EXECUTION_RESOURCE, "create"), input_text=input_text,
        error=error), status


@bp.route("/<name>")
def show(name: str):
    return _show(name)


@bp.route("/<name>/start", methods=["POST"])
def start(name: str):
    """Start an execution with the form's JSON input (checked against the workflow's
    input schema by the engine: a failure is shown beside the field, nothing starts)."""
    allow(EXECUTION_RESOURCE, "create")
    text = request.form.get("input", "")
    try:
        value = forms.json_field(request.form, "input", "Input", default={})
        execution = system().executions.start(org(), name, {"input": value})
    except InvalidInput as exc:
        return _show(name, text, exc.message, 400)
    return redirect(url_for(".execution", name=execution["name"]), 303)


@bp.route("/executions/<name>")
def execution(name: str):
    allow(EXECUTION_RESOURCE)
    found = system().executions.get(org(), name)
    definition = found.get("definition") or {}
    return render_template(
        "ui/execution.html", execution=found,
        graph=task_graph(definition, found.get("tasks") or []),
        # the REST API's cancel is POST /v1/executions/<name>/cancel: a "create"
        can_cancel=(may(EXECUTION_RESOURCE, "create")
                    and found.get("status") in CANCELLABLE))


@bp.route("/executions/<name>/cancel", methods=["POST"])
def cancel(name: str):
    allow(EXECUTION_RESOURCE, "create")
    system().executions.cancel(org(), name)
    return redirect(url_for(".execution", name=name), 303)
