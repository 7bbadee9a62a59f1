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
    click.option("--retry-attempts", type=click.IntRange(min=1, max=100),
                 help="Start a failed run up to N times in all (a retry policy)."),
    click.option("--retry-backoff", type=click.Choice(["constant", "exponential"]),
                 help="How the delay between attempts grows [default: exponential]."),
    click.option("--retry-delay", type=click.IntRange(min=0),
                 help="Milliseconds before the first retry [default: 1000]."),
    click.option("--retry-max-delay", type=click.IntRange(min=0),
                 help="The longest delay between attempts, ms [default: 60000]."),
    click.option("--retry-jitter", type=click.FloatRange(0, 1),
                 help="The fraction of each delay drawn at random [default: 0.1]."),
    click.option("--retry-on", multiple=True,
                 type=click.Choice(["SystemError", "FunctionError"]),
                 help="An error type to retry (repeatable) [default: SystemError]."),
    click.option("--keep-runs", type=click.IntRange(min=1),
                 help="Keep at most N settled runs of the function (the oldest go)."),
    click.option("--keep-runs-for", type=click.IntRange(min=1),
                 help="Prune settled runs older than this many seconds."),
    wait_options,
)


def retry_policy(attempts: int | None, backoff: str | None, delay: int | None,
                 max_delay: int | None, jitter: float | None,
                 on: tuple[str, ...]) -> dict[str, Any] | None:
    """The ``retry`` field from the --retry-* flags (None if none was given)."""
    given = {"attempts": attempts, "backoff": backoff, "delayMs": delay,
             "maxDelayMs": max_delay, "jitter": jitter, "on": list(on) or None}
    policy = {k: v for k, v in given.items() if v is not None}
    if policy and "attempts" not in policy:
        raise click.UsageError("--retry-* flags need --retry-attempts N")
    return policy or None


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
    retry_attempts: int | None = None,
    retry_backoff: str | None = None,
    retry_delay: int | None = None,
    retry_max_delay: int | None = None,
    retry_jitter: float | None = None,
    retry_on: tuple[str, ...] = (),
    keep_runs: int | None = None,
    keep_runs_for: int | None = None,
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
    retention = {k: v for k, v in {"count": keep_runs, "ageSeconds": keep_runs_for}.items()
                 if v is not None}
    optional = {"timeout": timeout, "network": network or None, "concurrency": concurrency,
                "retry": retry_policy(retry_attempts, retry_backoff, retry_delay,
                                      retry_max_delay, retry_jitter, retry_on),
                "retention": retention or None}
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
