"""``dispatch create …``: add entities — functions, secrets, or every entity of a seed file
(``-f``). Later kinds join ``create`` here and in :mod:`cli.seed`."""

from __future__ import annotations

import json
from typing import Any

import click

from .. import options
from ..apply import file_options, run_group
from ..function_spec import send_and_build, spec_options
from ..output import show_outcome, without_values


@click.group(cls=options.ResourceGroup, invoke_without_command=True)
@file_options
@options.global_options()
@click.pass_context
def create(ctx: click.Context, file: str | None, workdir: str | None) -> None:
    """Create a resource, or every resource of a seed file (-f)."""
    run_group(ctx, "create", file, workdir)


@create.command("function")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, readable=True))
@spec_options
@options.global_options()
@click.pass_context
def create_function(
    ctx: click.Context, name: str, path: str, no_wait: bool, **spec: Any
) -> None:
    """Create function NAME from PATH, a source file or a directory."""
    client = options.client(ctx)
    function = send_and_build(client, client.create_function, name, path,
                              doing="Creating", no_wait=no_wait, spec=spec)
    show_outcome(function, options.output_format(ctx), f"Created function: {name}")


@create.command("secret")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@options.global_options()
@click.pass_context
def create_secret(ctx: click.Context, name: str, file: str) -> None:
    """Create secret NAME from FILE, a JSON object of string values.

    \b
    e.g. {"username": "admin", "password": "OpenSesame"}
    """
    body = {"name": name, "secrets": read_secret_values(file), "tags": []}
    secret = options.client(ctx).create_secret(body)
    # values are shown by `get secret --all` only, never as a side effect of creating
    show_outcome(without_values(secret), options.output_format(ctx), f"Created secret: {name}")


def read_secret_values(path: str) -> dict[str, str]:
    """FILE's object of string values; checked before any request, never echoing a value."""
    try:
        with open(path, encoding="utf-8") as f:
            values: Any = json.load(f)
    except UnicodeDecodeError:
        # its message would quote the bad byte, a piece of the secret
        raise click.BadParameter(f"{path} is not UTF-8 text", param_hint="FILE") from None
    except ValueError as exc:  # JSONDecodeError says only where, never what
        raise click.BadParameter(f"{path} is not valid JSON ({exc})", param_hint="FILE") from None
    if not isinstance(values, dict):
        raise click.BadParameter(f"{path} must hold a JSON object of string values",
                                 param_hint="FILE")
    for key, value in values.items():
        if not isinstance(value, str):
            raise click.BadParameter(f"{path}: the value of {key!r} must be a string",
                                     param_hint="FILE")
    return values
