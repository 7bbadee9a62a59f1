"""``dispatch delete …``: remove entities — functions, secrets, images, base images, or
every entity of a seed file (``-f``). Later kinds join ``delete`` here and in
:mod:`cli.seed`."""

from __future__ import annotations

import click

from .. import options
from ..apply import file_options, run_group
from ..output import show_outcome


@click.group(cls=options.ResourceGroup, invoke_without_command=True)
@file_options
@options.global_options()
@click.pass_context
def delete(ctx: click.Context, file: str | None, workdir: str | None) -> None:
    """Delete a resource, or every resource of a seed file (-f)."""
    run_group(ctx, "delete", file, workdir)


@delete.command("secret")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_secret(ctx: click.Context, name: str) -> None:
    """Delete secret NAME."""
    options.client(ctx).delete_secret(name)
    # the server answers 204 with no body: -o json|yaml prints the name of what went
    show_outcome({"name": name}, options.output_format(ctx), f"Deleted secret: {name}")


def _deleter(command: str, what: str, method: str, help: str) -> None:
    """``dispatch delete COMMAND NAME``: the client's ``method``, then "Deleted WHAT: NAME"
    (or the entity the server answered, with -o)."""

    @delete.command(command, help=help)
    @click.argument("name")
    @options.global_options()
    @click.pass_context
    def command_(ctx: click.Context, name: str) -> None:
        entity = getattr(options.client(ctx), method)(name)
        show_outcome(entity, options.output_format(ctx), f"Deleted {what}: {name}")


#: (command, what the message calls it, client method, help)
for _row in (
    ("function", "function", "delete_function", "Delete function NAME."),
    ("subscription", "subscription", "delete_subscription",
     "Delete subscription NAME: its function runs on no more events."),
    ("eventdriver", "event driver", "delete_driver",
     "Delete event driver NAME (its program, if any, stops)."),
    ("eventdrivertype", "event driver type", "delete_driver_type",
     "Delete event driver type NAME (refused while drivers use it)."),
    ("base-image", "base image", "delete_base_image",
     "Delete base image NAME (refused while images use it)."),
    ("image", "image", "delete_image", "Delete image NAME (refused while functions use it)."),
    ("api", "api", "delete_api", "Delete API NAME; its paths stop answering at once."),
):
    _deleter(*_row)
