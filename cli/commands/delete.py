"""``dispatch delete …``: remove entities. Functions today; later kinds join ``delete``."""

from __future__ import annotations

import click

from .. import options
from ..output import show_outcome


@click.group(cls=options.ResourceGroup)
@options.global_options()
def delete() -> None:
    """Delete a resource."""


@delete.command("function")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_function(ctx: click.Context, name: str) -> None:
    """Delete function NAME."""
    function = options.client(ctx).delete_function(name)
    show_outcome(function, options.output_format(ctx), f"Deleted function: {name}")
