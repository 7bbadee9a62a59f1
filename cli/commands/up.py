"""``dispatch up``: run the whole of Dispatch in this process and point the CLI at it."""

from __future__ import annotations

import os

import click

from engine.settings import Settings

from .. import config, options

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

#: the identity the embedded server bootstraps (engine.identity.bootstrap) and where it
#: keeps the private key (api.embedded)
ADMIN, ADMIN_ORG, ADMIN_KEY_FILE = "admin", "default", "admin.key"

#: addresses that mean "every interface": a client must use a concrete one instead
_WILDCARDS = {"0.0.0.0", "::", ""}


@click.command(cls=options.DispatchCommand)
@click.option("--host", help=f"Address to listen on [default: {DEFAULT_HOST}]")
@click.option(
    "--port", type=click.IntRange(1, 65535), help=f"Port to listen on [default: {DEFAULT_PORT}]"
)
@click.option(
    "--home", type=click.Path(file_okay=False),
    help="Where state is kept [default: $DISPATCH_HOME or ~/.dispatch]",
)
@options.global_options("config", "organization")
@click.pass_context
def up(ctx: click.Context, host: str | None, port: int | None, home: str | None) -> None:
    """Start Dispatch (embedded: SQLite, in-process workers, local functions).

    Writes the CLI's "local" context first, so that other commands reach this server with
    no flags and as its admin (service account "admin" of organization "default", whose
    private key the server keeps in HOME/admin.key). Runs until interrupted (Ctrl-C or
    SIGTERM).
    """
    # `dispatch --port 9000 up` means the same as `dispatch up --port 9000`
    host = host or options.given(ctx, "host") or DEFAULT_HOST
    port = port or options.given(ctx, "port") or DEFAULT_PORT
    home = home or os.environ.get("DISPATCH_HOME") or os.path.expanduser("~/.dispatch")
    try:
        settings = Settings.from_env(home=home)
    except ValueError as exc:  # e.g. DISPATCH_AUTH=of
        raise click.ClickException(str(exc)) from None
    check_sandbox(settings)
    organization = options.given(ctx, "organization") or ADMIN_ORG
    # the server creates (or keeps) this admin and its key file when it starts; with auth
    # off (DISPATCH_AUTH=off) there is nobody to be, and stale credentials are dropped
    admin = {}
    if settings.auth == "on":
        # qualified: the admin signs as itself whatever --organization a command names
        admin = {"service_account": f"{ADMIN_ORG}/{ADMIN}",
                 "jwt_private_key": os.path.join(settings.home, ADMIN_KEY_FILE)}
    context = config.Context(
        host=DEFAULT_HOST if host in _WILDCARDS else host,
        port=port,
        scheme="http",
        organization=organization,
        **admin,
    )
    path = options.config_file(ctx)
    config.write_context(path, context, credentials=True)
    click.echo(f"CLI context {config.LOCAL_CONTEXT!r} written to {path}", err=True)

    from api.embedded import serve_embedded  # the server's imports are only paid for here

    try:
        serve_embedded(home=settings.home, host=host, port=port)
    except OSError as exc:  # most often: the port is taken by another server
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror or exc}")


def check_sandbox(settings: Settings) -> None:
    """Refuse to run functions unconfined unless asked to in so many words.

    The local driver confines functions with bubblewrap; on a machine without it they
    would run as plain processes with the server's rights (its store, its keys). That
    takes ``DISPATCH_SANDBOX=off``, said explicitly.
    """
    from engine.drivers.sandbox import BWRAP_ENV, INSTALL_HINT, bwrap_path

    if settings.driver != "local":
        return
    if settings.sandbox == "off":
        click.echo("Warning: DISPATCH_SANDBOX=off: functions run unsandboxed, with this "
                   "server's rights on this host", err=True)
        return
    if bwrap_path() is None:
        where = os.environ.get(BWRAP_ENV) or "bwrap (on PATH)"
        raise click.ClickException(
            f"bubblewrap is not installed ({where} not found), and without it functions "
            f"would run unconfined, with this server's rights on this host. Install it "
            f"(`{INSTALL_HINT}`), or run them unsandboxed knowingly with "
            "`DISPATCH_SANDBOX=off dispatch up`.")
