"""A function's spec as the CLI gathers it: the flags ``create function`` and ``update
function`` share, the request body they make, and waiting for the build to settle.

Seed files (:mod:`cli.seed`) describe the same spec in YAML and reuse the JSON Schema
reader from here.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Callable

import click

from engine.sources import pack

from .client import DispatchClient
from .progress import settled, wait_options


def read_json_schema(path: str) -> dict[str, Any]:
    """The JSON Schema object in file ``path``; ``ValueError`` saying what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(schema, dict):
        raise ValueError(f"{path} must hold a JSON object (a JSON Schema)")
    return schema


def _schema_file(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    # read while parsing, so a bad file stops the command before any request
    if value is None:
        return None
    try:
        return read_json_schema(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


#: the spec flags, in ``--help`` order; each becomes a keyword of :func:`function_body`
SPEC_OPTIONS: tuple[Callable, ...] = (
    click.option("--image", required=True, help="Image to run the function on, e.g. python3."),
    click.option(
        "--handler",
        help="MODULE.FUNCTION to call; required if PATH is a directory "
        "[default for hello.py: hello.handle]",
    ),
    click.option("--timeout", type=click.IntRange(min=1), help="Run time limit in milliseconds."),
    click.option("--schema-in", type=click.Path(dir_okay=False), callback=_schema_file,
                 help="JSON Schema file the input must match."),
    click.option("--schema-out", type=click.Path(dir_okay=False), callback=_schema_file,
                 help="JSON Schema file the output must match."),
    click.option("--secret", "secrets", multiple=True,
                 help="A secret every run gets (repeatable)."),
    click.option("--network", is_flag=True,
                 help="Let the function reach the network (denied by default)."),
    click.option("--concurrency", type=click.IntRange(min=1),
                 help="At most this many runs of the function at once."),
    wait_options,
)


def spec_options(f: Callable) -> Callable:
    """Add the spec flags to a command taking ``NAME PATH``."""
    for option in reversed(SPEC_OPTIONS):
        f = option(f)
    return f


def function_body(
    name: str,
    path: str,
    *,
    image: str,
    handler: str | None,
    timeout: int | None,
    schema_in: dict[str, Any] | None,
    schema_out: dict[str, Any] | None,
    secrets: tuple[str, ...],
    network: bool,
    concurrency: int | None,
) -> dict[str, Any]:
    """The POST/PUT body for function ``name`` from source ``path`` and the spec flags.

    It has the fields the original CLI always sends, so both CLIs exercise the same server
    path; ``timeout``, ``network: true`` and ``concurrency`` only when given.
    """
    body: dict[str, Any] = {
        "name": name,
        "image": image,
        "handler": handler or default_handler(path),
        "source": base64.b64encode(pack(path)).decode("ascii"),
        "schema": {"in": schema_in, "out": schema_out},
        "secrets": list(secrets),
        "services": [],
        "tags": [],
    }
    optional = {"timeout": timeout, "network": network or None, "concurrency": concurrency}
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


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


def send_and_build(
    client: DispatchClient,
    request: Callable[[dict[str, Any]], dict[str, Any]],
    name: str,
    path: str,
    *,
    doing: str,
    wait: bool,
    spec: dict[str, Any],
) -> dict[str, Any]:
    """Send function ``name``'s body with ``request`` (a create or an update); with
    ``wait``, wait for its build: the function as it is then.

    :raises click.ClickException: waited, and the build ended in ERROR (the message has
        the reasons).
    """
    function = request(function_body(name, path, **spec))
    return settled(client, "Function", dict(function, name=function.get("name") or name),
                   doing, wait)
