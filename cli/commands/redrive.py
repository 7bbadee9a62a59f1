"""``dispatch redrive RUN``: start a dead run (or any run in ERROR) again."""

from __future__ import annotations

import click

from .. import options
from ..output import show_document


@click.command("redrive", cls=options.DispatchCommand)
@click.argument("run")
@options.global_options()
@click.pass_context
def redrive(ctx: click.Context, run: str) -> None:
    """Start run RUN again as a new run (its ``redrivenFrom`` names RUN); RUN leaves the
    dead-letter list (`dispatch get runs --dead`). Prints the new Run."""
    show_document(options.client(ctx).redrive_run(run), options.output_format(ctx))
