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


@delete.command("subscription")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_subscription(ctx: click.Context, name: str) -> None:
    """Delete subscription NAME: its function runs on no more events."""
    sub = options.client(ctx).delete_subscription(name)
    show_outcome(sub, options.output_format(ctx), f"Deleted subscription: {name}")


@delete.command("eventdriver")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_event_driver(ctx: click.Context, name: str) -> None:
    """Delete event driver NAME (its program, if any, stops)."""
    driver = options.client(ctx).delete_driver(name)
    show_outcome(driver, options.output_format(ctx), f"Deleted event driver: {name}")


@delete.command("eventdrivertype")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_event_driver_type(ctx: click.Context, name: str) -> None:
    """Delete event driver type NAME (refused while drivers use it)."""
    dtype = options.client(ctx).delete_driver_type(name)
    show_outcome(dtype, options.output_format(ctx), f"Deleted event driver type: {name}")


@delete.command("base-image")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_base_image(ctx: click.Context, name: str) -> None:
    """Delete base image NAME (refused while images use it)."""
    base = options.client(ctx).delete_base_image(name)
    show_outcome(base, options.output_format(ctx), f"Deleted base image: {name}")


@delete.command("image")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_image(ctx: click.Context, name: str) -> None:
    """Delete image NAME (refused while functions use it)."""
    image = options.client(ctx).delete_image(name)
    show_outcome(image, options.output_format(ctx), f"Deleted image: {name}")


@delete.command("api")
@click.argument("name")
@options.global_options()
@click.pass_context
def delete_api(ctx: click.Context, name: str) -> None:
    """Delete API NAME; its paths stop answering at once."""
    api = options.client(ctx).delete_api(name)
    show_outcome(api, options.output_format(ctx), f"Deleted api: {name}")
