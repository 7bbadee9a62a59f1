"""Workflows on the command line:

* ``dispatch create|update workflow NAME FILE.yaml``, ``dispatch get workflow [NAME]``,
  ``dispatch delete workflow NAME`` (joined to those verbs' groups here);
* ``dispatch exec-workflow NAME [--input JSON] [--name EXECUTION] [--wait]``: start an
  execution; with ``--wait``, follow it (each task on stderr as it finishes) and print the
  finished Execution;
* ``dispatch get execution [NAME] [--workflow W] [--status S] [--limit N]``;
* ``dispatch cancel|suspend|resume execution NAME``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
import yaml

from engine.workflows import yaml12

from .. import options
from ..output import Column, field, show, show_document, show_outcome, timestamp
from .create import create
from .delete import delete
from .get import get
from .update import update

#: how often ``--wait`` asks for the execution again
POLL_INTERVAL_S = 0.3
FINISHED = ("completed", "faulted", "cancelled")

WORKFLOW_COLUMNS = (
    Column("NAME", field("name")),
    Column("DOCUMENT", lambda w: "{namespace}/{name}:{version}".format(
        **{k: (w.get("document") or {}).get(k) for k in ("namespace", "name", "version")})),
    Column("SCHEDULE", lambda w: ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                                           for k, v in (w.get("schedule") or {}).items())),
    Column("STATUS", field("status")),
    Column("CREATED DATE", timestamp("createdTime")),
)

EXECUTION_COLUMNS = (
    Column("NAME", field("name")),
    Column("WORKFLOW", field("workflowName")),
    Column("STATUS", field("status")),
    Column("TASKS", lambda e: str(len(e.get("tasks") or []))),
    Column("STARTED", timestamp("createdTime")),
    Column("FINISHED", timestamp("finishedTime")),
)


def read_definition(path: str) -> dict[str, Any]:
    """The workflow document in ``path`` (YAML or JSON), checked to be a mapping."""
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml12.load(f)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}",
                                 param_hint="FILE") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path} is not valid YAML: {exc}", param_hint="FILE") from None
    if not isinstance(document, dict):
        raise click.BadParameter(f"{path} must hold a workflow document (a mapping)",
                                 param_hint="FILE")
    return document


@create.command("workflow")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@options.global_options()
@click.pass_context
def create_workflow(ctx: click.Context, name: str, file: str) -> None:
    """Create workflow NAME from FILE, a Serverless Workflow DSL 1.0 document (YAML)."""
    workflow = options.client(ctx).create_workflow(
        {"name": name, "definition": read_definition(file)})
    show_outcome(workflow, options.output_format(ctx), f"Created workflow: {name}")


@update.command("workflow")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@options.global_options()
@click.pass_context
def update_workflow(ctx: click.Context, name: str, file: str) -> None:
    """Replace workflow NAME's definition with FILE (running executions keep theirs)."""
    workflow = options.client(ctx).update_workflow(
        name, {"name": name, "definition": read_definition(file)})
    show_outcome(workflow, options.output_format(ctx), f"Updated workflow: {name}")


@delete.command("workflow")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_workflow(ctx: click.Context, name: str) -> None:
    """Delete workflow NAME (its executions are kept until their retention ends)."""
    workflow = options.client(ctx).delete_workflow(name)
    show_outcome(workflow, options.output_format(ctx), f"Deleted workflow: {name}")


@get.command("workflow")
@click.argument("name", required=False)
@options.global_options()
@click.pass_context
def get_workflow(ctx: click.Context, name: str | None) -> None:
    """Show workflow NAME, or every workflow."""
    client = options.client(ctx)
    data = client.get_workflow(name) if name else client.list_workflows()
    show(data, options.output_format(ctx), WORKFLOW_COLUMNS)


@get.command("execution")
@click.argument("name", required=False)
@click.option("--workflow", help="Only the executions of this workflow.")
@click.option("--status", type=click.Choice(("pending", "running", "waiting", "suspended",
                                             "cancelled", "faulted", "completed")),
              help="Only executions in this status.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N, newest first.")
@options.global_options()
@click.pass_context
def get_execution(ctx: click.Context, name: str | None, workflow: str | None,
                  status: str | None, limit: int | None) -> None:
    """Show execution NAME (with its tasks), or executions newest first."""
    client = options.client(ctx)
    if name:
        execution = client.get_execution(name)
        fmt = options.output_format(ctx)
        if fmt in ("json", "yaml"):
            show_document(execution, fmt)
            return
        show(execution, fmt, EXECUTION_COLUMNS)
        _print_tasks(execution.get("tasks") or [], 0)
        return
    show(client.list_executions(workflow, status, limit), options.output_format(ctx),
         EXECUTION_COLUMNS)


def _json_input(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}): {value}") from None


@click.command("exec-workflow", cls=options.DispatchCommand)
@click.argument("workflow")
@click.option("--input", "payload", default="{}", show_default=True, callback=_json_input,
              help="The execution's input, as JSON.")
@click.option("--name", help="The execution's name: starting the same name again returns "
                             "the existing execution (idempotent start).")
@click.option("--wait", is_flag=True,
              help="Follow the execution, printing each task as it finishes (on stderr), "
                   "then print the finished Execution.")
@options.global_options()
@click.pass_context
def exec_workflow(ctx: click.Context, workflow: str, payload: Any, name: str | None,
                  wait: bool) -> None:
    """Start an execution of WORKFLOW; with --wait, until it finishes.

    The Execution prints as JSON (or YAML with -o yaml), as `dispatch exec` prints a Run.
    A faulted or cancelled execution exits with status 1.
    """
    client = options.client(ctx)
    body: dict[str, Any] = {"input": payload, "blocking": False}
    if name:
        body["name"] = name
    execution = client.start_execution(workflow, body)
    if wait:
        click.echo(f"Execution {execution['name']} of {workflow}", err=True)
        shown = 0
        while True:
            shown = _print_tasks(execution.get("tasks") or [], shown, finished_only=True)
            if execution["status"] in FINISHED:
                break
            time.sleep(POLL_INTERVAL_S)
            execution = client.get_execution(execution["name"])
        click.echo(f"{execution['status']}"
                   + (f": {_describe(execution.get('error'))}" if execution.get("error")
                      else ""), err=True)
    fmt = options.output_format(ctx)
    show_document(execution, fmt if fmt in ("json", "yaml") else "json")
    if wait and execution["status"] != "completed":
        sys.exit(1)


def _print_tasks(tasks: list[dict[str, Any]], shown: int, finished_only: bool = False) -> int:
    """Print the tasks from index ``shown`` on (stopping at the first unfinished one when
    ``finished_only``); returns how many are shown now."""
    for task in tasks[shown:]:
        if finished_only and task.get("status") == "running":
            break
        line = f"  {task.get('status', '?'):<9} {task.get('reference')}"
        if task.get("error"):
            line += f"  ({_describe(task['error'])})"
        click.echo(line, err=True)
        shown += 1
    return shown


def _describe(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    kind = str(error.get("type", "")).rsplit("/", 1)[-1]
    return f"{kind} {error.get('status', '')}: {error.get('detail') or error.get('title')}"


def _action_group(action: str, help: str) -> click.Group:
    @click.group(action, cls=options.ResourceGroup, help=help)
    @options.global_options()
    def group() -> None:
        pass

    @group.command("execution")
    @click.argument("name")
    @options.global_options()
    @click.pass_context
    def command_(ctx: click.Context, name: str) -> None:
        execution = options.client(ctx).execution_action(name, action)
        past = {"cancel": "Cancelling", "suspend": "Suspended", "resume": "Resumed"}[action]
        show_outcome(execution, options.output_format(ctx), f"{past} execution: {name}")

    command_.help = {"cancel": "Cancel execution NAME: no further task starts.",
                     "suspend": "Suspend execution NAME until it is resumed.",
                     "resume": "Resume suspended execution NAME."}[action]
    return group


cancel = _action_group("cancel", "Cancel a workflow execution.")
suspend = _action_group("suspend", "Suspend a workflow execution.")
resume = _action_group("resume", "Resume a suspended workflow execution.")
