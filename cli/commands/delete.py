"""``dispatch delete …``: remove entities. Functions and secrets; later kinds join ``delete``."""

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


@delete.command("secret")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_secret(ctx: click.Context, name: str) -> None:
    """Delete secret NAME."""
    options.client(ctx).delete_secret(name)
    # the server answers 204 with no body: -o json|yaml prints the name of what went
    show_outcome({"name": name}, options.output_format(ctx), f"Deleted secret: {name}")
