"""``dispatch update …``: replace entities — a function, or every entity of a seed file
(``-f``)."""

from __future__ import annotations

from typing import Any

import click

from .. import options
from ..apply import file_options, run_group
from ..function_spec import send_and_build, spec_options
from ..output import show_outcome


@click.group(cls=options.ResourceGroup, invoke_without_command=True)
@file_options
@options.global_options()
@click.pass_context
def update(ctx: click.Context, file: str | None, workdir: str | None) -> None:
    """Update a resource, or every resource of a seed file (-f)."""
    run_group(ctx, "update", file, workdir)


@update.command("function")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, readable=True))
@spec_options
@options.global_options()
@click.pass_context
def update_function(
    ctx: click.Context, name: str, path: str, no_wait: bool, **spec: Any
) -> None:
    """Replace function NAME's spec and source with PATH and the flags.

    The spec is replaced whole, as a PUT does: a flag left out goes back to its default.
    Runs keep going to the current version until the new one is READY.
    """
    client = options.client(ctx)
    function = send_and_build(client, lambda body: client.update_function(name, body),
                              name, path, doing="Updating", no_wait=no_wait, spec=spec)
    show_outcome(function, options.output_format(ctx), f"Updated function: {name}")
