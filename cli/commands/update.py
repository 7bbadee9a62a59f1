"""``dispatch update …``: replace entities — a function, an image, or every entity of a
seed file (``-f``)."""

from __future__ import annotations

from typing import Any

import click

from .. import options
from ..apply import file_options, run_group
from ..function_spec import send_and_build, spec_options
from ..image_spec import (image_body, read_manifest, read_system_deps, settle_failure,
                          wait_settled)
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


@update.command("image")
@click.argument("name")
@click.argument("base_image")
@click.option("--runtime-deps", type=click.Path(exists=True, dir_okay=False),
              help="The runtime dependencies' manifest: requirements.txt or package.json.")
@click.option("--system-deps", type=click.Path(exists=True, dir_okay=False),
              help="System packages: 'name [version]' per line, or a JSON list.")
@click.option("--no-wait", is_flag=True, help="Return at once instead of waiting for READY.")
@options.global_options()
@click.pass_context
def update_image(ctx: click.Context, name: str, base_image: str, runtime_deps: str | None,
                 system_deps: str | None, no_wait: bool) -> None:
    """Replace image NAME's base and dependencies; it is rebuilt. Functions built on it
    keep their build until they are updated."""
    body = image_body(name, base_image, read_manifest(runtime_deps) if runtime_deps else None,
                      read_system_deps(system_deps) if system_deps else [])
    client = options.client(ctx)
    image = client.update_image(name, body)
    if not no_wait:
        image = wait_settled(client, "Image", name, "Updating")
        failure = settle_failure(image)
        if failure:
            raise click.ClickException(failure)
    show_outcome(image, options.output_format(ctx), f"Updated image: {name}")
