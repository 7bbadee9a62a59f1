"""``dispatch get …``: show entities as a table, or as JSON / YAML with ``-o``."""

from __future__ import annotations

import click

from .. import options
from ..output import Column, field, show, timestamp

FUNCTION_COLUMNS = (
    Column("NAME", field("name")),
    Column("IMAGE", field("image")),
    Column("STATUS", field("status")),
    Column("CREATED DATE", timestamp("createdTime")),
)

RUN_COLUMNS = (
    Column("ID", field("name")),
    Column("FUNCTION", field("functionName")),
    Column("STATUS", field("status")),
    Column("STARTED", timestamp("executedTime")),
    Column("FINISHED", timestamp("finishedTime")),
)


@click.group(cls=options.ResourceGroup)
@options.global_options()
def get() -> None:
    """Show resources."""


@get.command("function")
@click.argument("name", required=False)
@options.global_options()
@click.pass_context
def get_function(ctx: click.Context, name: str | None) -> None:
    """Show function NAME, or every function."""
    client = options.client(ctx)
    data = client.get_function(name) if name else client.list_functions()
    show(data, options.output_format(ctx), FUNCTION_COLUMNS)


@get.command("run")
@click.argument("function", required=False)
@click.argument("run", required=False)
@options.global_options()
@click.pass_context
def get_run(ctx: click.Context, function: str | None, run: str | None) -> None:
    """Show run RUN of FUNCTION, FUNCTION's runs, or every run."""
    client = options.client(ctx)
    data = client.get_run(run, function) if run else client.list_runs(function)
    show(data, options.output_format(ctx), RUN_COLUMNS)
