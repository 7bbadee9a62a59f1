"""``dispatch create …``: add entities. Functions and secrets; later kinds join ``create``."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import click

from engine.entities import ERROR
from engine.sources import pack

from .. import options
from ..output import show_outcome, without_values
from ..progress import wait_until_settled

#: how long ``create function`` waits for READY before giving up (building may install
#: dependencies, so this is generous)
CREATE_WAIT_S = 300.0


@click.group(cls=options.ResourceGroup)
@options.global_options()
def create() -> None:
    """Create a resource."""


@create.command("function")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, readable=True))
@click.option("--image", required=True, help="Image to run the function on, e.g. python3.")
@click.option(
    "--handler",
    help="MODULE.FUNCTION to call; required if PATH is a directory "
    "[default for hello.py: hello.handle]",
)
@click.option("--timeout", type=click.IntRange(min=1), help="Run time limit in milliseconds.")
@click.option("--no-wait", is_flag=True, help="Return at once instead of waiting for READY.")
@options.global_options()
@click.pass_context
def create_function(
    ctx: click.Context,
    name: str,
    path: str,
    image: str,
    handler: str | None,
    timeout: int | None,
    no_wait: bool,
) -> None:
    """Create function NAME from PATH, a source file or a directory."""
    body = {
        "name": name,
        "image": image,
        "handler": handler or default_handler(path),
        "source": base64.b64encode(pack(path)).decode("ascii"),
        # the rest as the original CLI sends it, so both CLIs exercise the same server path
        "schema": {"in": None, "out": None},
        "secrets": [],
        "services": [],
        "tags": [],
    }
    if timeout is not None:
        body["timeout"] = timeout
    client = options.client(ctx)
    function = client.create_function(body)
    if not no_wait:
        function = wait_until_settled(
            lambda: client.get_function(name), f"Creating function {name}", CREATE_WAIT_S
        )
        if function.get("status") == ERROR:
            reasons = "; ".join(function.get("reason") or []) or "no reason given"
            raise click.ClickException(f"function {name} failed: {reasons}")
    show_outcome(function, options.output_format(ctx), f"Created function: {name}")


def default_handler(path: str) -> str:
    """``hello.handle`` for ``hello.py``; a directory or another language must say."""
    module, extension = os.path.splitext(os.path.basename(path))
    if os.path.isdir(path):
        raise click.UsageError("--handler is required when PATH is a directory")
    if extension != ".py":
        raise click.UsageError(
            f"--handler is required for {os.path.basename(path)} "
            "(the default MODULE.handle applies to .py files)"
        )
    return f"{module}.handle"


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
