"""``/ui/workflows``: workflows (definition, executions), an execution's graph with each
task's live status and its history; start an execution with input; cancel one.

Entities are the workflow engine's (``/dispatch/workflow/<org>/<name>`` with its
``definition``; ``/dispatch/execution/<org>/<name>`` with ``tasks``, the history). Starting
and cancelling go through the engine's execution service; on a server without one the
pages still show what the store holds and say that starting is unavailable.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for

from engine.errors import InvalidInput, NotFound

from . import forms
from .graph import task_graph
from .session import allow, may, org, system

bp = Blueprint("workflows", __name__, url_prefix="/workflows")

WORKFLOW, EXECUTION = "workflow", "execution"
#: the REST paths (so the resources) the workflow API serves
WORKFLOW_RESOURCE, EXECUTION_RESOURCE = "workflow", "executions"
RECENT = 50


def _executions_service():
    return getattr(system(), "executions", None)


def _workflow(name: str) -> dict[str, Any]:
    try:
        return system().store.get(WORKFLOW, org(), name)
    except NotFound:
        raise NotFound(f"workflow {name} not found") from None


def _executions(workflow: str | None = None) -> list[dict[str, Any]]:
    fields = {"workflowName": workflow} if workflow else None
    found = system().store.list(EXECUTION, org(), fields=fields)
    found.sort(key=lambda e: e.get("createdAt", e.get("createdTime") or 0), reverse=True)
    return found[:RECENT]


@bp.route("/")
def index():
    allow(WORKFLOW_RESOURCE)
    executions = _executions() if may(EXECUTION_RESOURCE) else None
    return render_template("ui/workflows.html",
                           workflows=system().store.list(WORKFLOW, org()),
                           executions=executions)


def _show(name: str, input_text: str = "", error: str | None = None, status: int = 200):
    allow(WORKFLOW_RESOURCE)
    workflow = _workflow(name)
    definition = workflow.get("definition") or {}
    schema = ((definition.get("input") or {}).get("schema") or {}).get("document")
    return render_template(
        "ui/workflow.html", workflow=workflow, definition=definition,
        graph=task_graph(definition, []), schema=schema,
        executions=_executions(name) if may(EXECUTION_RESOURCE) else None,
        can_start=_executions_service() is not None and may(EXECUTION_RESOURCE, "create"),
        input_text=input_text, error=error), status


@bp.route("/<name>")
def show(name: str):
    return _show(name)


@bp.route("/<name>/start", methods=["POST"])
def start(name: str):
    allow(EXECUTION_RESOURCE, "create")
    service = _executions_service()
    if service is None:
        abort(503, "workflows are not available on this server")
    text = request.form.get("input", "")
    try:
        value = forms.json_field(request.form, "input", "Input", default={})
        execution = service.start(org(), name, {"input": value})
    except InvalidInput as exc:
        return _show(name, text, exc.message, 400)
    return redirect(url_for(".execution", name=execution["name"]), 303)


@bp.route("/executions/<name>")
def execution(name: str):
    allow(EXECUTION_RESOURCE)
    try:
        found = system().store.get(EXECUTION, org(), name)
    except NotFound:
        raise NotFound(f"execution {name} not found") from None
    definition = found.get("definition") or {}
    return render_template(
        "ui/execution.html", execution=found, graph=task_graph(definition, found.get("tasks") or []),
        can_cancel=(_executions_service() is not None and may(EXECUTION_RESOURCE, "update")
                    and found.get("status") in ("pending", "running", "waiting", "suspended")))


@bp.route("/executions/<name>/cancel", methods=["POST"])
def cancel(name: str):
    allow(EXECUTION_RESOURCE, "update")
    service = _executions_service()
    if service is None:
        abort(503, "workflows are not available on this server")
    service.cancel(org(), name)
    return redirect(url_for(".execution", name=name), 303)
