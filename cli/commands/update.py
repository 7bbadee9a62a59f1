"""``dispatch update …``: replace entities — a function, an image, or every entity of a
seed file (``-f``)."""

from __future__ import annotations

from typing import Any

import click

from .. import options
from ..apply import file_options, run_group
from ..function_spec import send_and_build, spec_options
from ..image_spec import image_body, read_manifest, read_system_deps
from ..output import show_outcome
from ..progress import settled, wait_option, wait_options


@click.group(cls=options.ResourceGroup, invoke_without_command=True)
@file_options
@wait_option
@options.global_options()
@click.pass_context
def update(ctx: click.Context, file: str | None, workdir: str | None, wait: bool) -> None:
    """Update a resource, or every resource of a seed file (-f).

    Each command returns once the server has the change; a rebuild shows in `dispatch get
    KIND NAME`, or --wait waits for it.
    """
    run_group(ctx, "update", file, workdir, wait)


@update.command("function")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, readable=True))
@spec_options
@options.global_options()
@click.pass_context
def update_function(
    ctx: click.Context, name: str, path: str, wait: bool, **spec: Any
) -> None:
    """Replace function NAME's spec and source with PATH and the flags.

    The spec is replaced whole, as a PUT does: a flag left out goes back to its default.
    Runs keep going to the current version until the new one is READY.
    """
    client = options.client(ctx)
    function = send_and_build(client, lambda body: client.update_function(name, body),
                              name, path, doing="Updating", wait=wait, spec=spec)
    show_outcome(function, options.output_format(ctx), f"Updated function: {name}")


@update.command("image")
@click.argument("name")
@click.argument("base_image")
@click.option("--runtime-deps", type=click.Path(exists=True, dir_okay=False),
              help="The runtime dependencies' manifest: requirements.txt or package.json.")
@click.option("--system-deps", type=click.Path(exists=True, dir_okay=False),
              help="System packages: 'name [version]' per line, or a JSON list.")
@wait_options
@options.global_options()
@click.pass_context
def update_image(ctx: click.Context, name: str, base_image: str, runtime_deps: str | None,
                 system_deps: str | None, wait: bool) -> None:
    """Replace image NAME's base and dependencies; it is rebuilt. Functions built on it
    keep their build until they are updated."""
    body = image_body(name, base_image, read_manifest(runtime_deps) if runtime_deps else None,
                      read_system_deps(system_deps) if system_deps else [])
    client = options.client(ctx)
    image = settled(client, "Image", dict(client.update_image(name, body), name=name),
                    "Updating", wait)
    show_outcome(image, options.output_format(ctx), f"Updated image: {name}")
