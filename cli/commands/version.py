"""``dispatch version``: this CLI's version and, if reachable, the server's."""

from __future__ import annotations

from importlib import metadata

import click

from .. import options
from ..client import ApiError
from ..output import TABLE, dump


def cli_version() -> str:
    """The installed ``dispatch`` distribution's version."""
    try:
        return metadata.version("dispatch")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


@click.command(cls=options.DispatchCommand)
@options.global_options()
@click.pass_context
def version(ctx: click.Context) -> None:
    """Print the CLI's version and the server's."""
    try:
        server = options.client(ctx).version()
        problem = None
    except ApiError as exc:
        server, problem = None, exc.message
    fmt = options.output_format(ctx)
    if fmt != TABLE:
        click.echo(dump({"client": cli_version(), "server": server}, fmt))
        return
    click.echo(f"Client: {cli_version()}")
    if server is None:
        click.echo(f"Server: unknown ({problem})")
    else:
        commit = server.get("commit")
        click.echo(f"Server: {server.get('version')}" + (f" ({commit})" if commit else ""))
