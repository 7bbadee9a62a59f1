"""``dispatch exec NAME``: run a function and print the Run."""

from __future__ import annotations

import json
from typing import Any

import click

from .. import options
from ..output import show_document


def _json_input(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    # checked before any request, so a typo never reaches the server
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}): {value}") from None


@click.command("exec", cls=options.DispatchCommand)
@click.argument("name")
@click.option(
    "--input", "payload", default="{}", show_default=True, callback=_json_input,
    help="The function's input, as JSON.",
)
@click.option("--wait", is_flag=True, help="Wait for the run to finish and print its output.")
@click.option("--secret", "secrets", multiple=True, help="A secret to pass (repeatable).")
@click.option("--idempotency-key", help="Send this Idempotency-Key (default: a new UUID, "
              "reused when the request is sent again after a dropped connection).")
@click.option("--run-name", help="Name the run (it is then started at most once).")
@options.global_options()
@click.pass_context
def exec_(
    ctx: click.Context, name: str, payload: Any, wait: bool, secrets: tuple[str, ...],
    idempotency_key: str | None, run_name: str | None,
) -> None:
    """Run function NAME; with --wait, until it finishes.

    The Run prints as JSON (or YAML with -o yaml) either way, as the original CLI does.
    The request carries an Idempotency-Key, so when it is sent again (a dropped
    connection, a 502/503/504) the server answers with the same run.
    """
    body = {"input": payload, "blocking": wait, "secrets": list(secrets)}
    if run_name:
        body["name"] = run_name
    run = options.client(ctx).run_function(name, body, idempotency_key)
    show_document(run, options.output_format(ctx))
