"""Options every command shares, and the verb groups that take resource kinds.

Global options behave like the original CLI's persistent flags: they may be given before
the verb (``dispatch -o json get functions``) or after it (``dispatch get functions -o
json``). Each is remembered in the click context's ``meta``, which every nested command
shares; a value given later (nearer the leaf command) wins.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import click

from . import config
from .client import DispatchClient
from .output import JSON, TABLE

_META = "dispatch.option."


def _store(ctx: click.Context, name: str, value: Any) -> None:
    if value is not None:  # an option left out must not undo one given before the verb
        ctx.meta[_META + name] = value


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    _store(ctx, param.name, value)
    return value


def _option(*decls: str, **attrs: Any) -> Callable:
    return click.option(*decls, default=None, expose_value=False, callback=_remember, **attrs)


#: name → decorator, in the order they appear in ``--help``
GLOBAL_OPTIONS: dict[str, Callable] = {
    "output": _option(
        "-o", "--output", type=click.Choice(["json", "yaml"]),
        help="Print JSON or YAML instead of a table.",
    ),
    "json": click.option(  # the original's hidden spelling of -o json
        "--json", is_flag=True, default=None, hidden=True, expose_value=False,
        callback=lambda ctx, param, value: _store(ctx, "output", JSON if value else None),
    ),
    "host": _option("--host", help="Dispatch host [default: 127.0.0.1]"),
    "port": _option("--port", type=click.IntRange(1, 65535), help="Dispatch port [default: 8080]"),
    "scheme": _option("--scheme", type=click.Choice(["http", "https"]), help="[default: http]"),
    "organization": _option("--organization", help="Organization [default: default]"),
    "config": _option(
        "--config", type=click.Path(dir_okay=False),
        help="Config file [default: $DISPATCH_CONFIG or ~/.dispatch/config.json]",
    ),
    "insecure": _option("--insecure", is_flag=True, help="Do not verify TLS certificates."),
    "token": _option("--token", help="Bearer token (JWT) to send instead of the cookie."),
    "service_account": _option(
        "--service-account", help="Sign requests as this service account (NAME or ORG/NAME)."),
    "jwt_private_key": _option(
        "--jwt-private-key", type=click.Path(dir_okay=False),
        help="The service account's RSA private key file (PEM).",
    ),
}


def global_options(*names: str) -> Callable:
    """Add the global options (all of them, or only ``names``) to a command or group."""

    def decorate(f: Callable) -> Callable:
        for name, option in reversed(GLOBAL_OPTIONS.items()):
            if not names or name in names:
                f = option(f)
        return f

    return decorate


def given(ctx: click.Context, name: str) -> Any:
    """The value of global option ``name`` if it was given anywhere, else ``None``."""
    return ctx.meta.get(_META + name)


def output_format(ctx: click.Context) -> str:
    """``table``, ``json`` or ``yaml``."""
    return given(ctx, "output") or TABLE


def config_file(ctx: click.Context) -> str:
    """The config file to read and write."""
    return config.config_path(given(ctx, "config"))


def resolve_context(ctx: click.Context) -> config.Context:
    """The server context: defaults < config file < environment < flags."""
    names = ("host", "port", "scheme", "organization", "insecure", "token", "service_account",
             "jwt_private_key")
    flags = {name: given(ctx, name) for name in names}
    return config.resolve(flags, os.environ, config_file(ctx))


def client(ctx: click.Context) -> DispatchClient:
    """A client for the resolved context, made once per command line."""
    found = ctx.meta.get("dispatch.client")
    if found is None:
        found = ctx.meta["dispatch.client"] = DispatchClient(resolve_context(ctx))
    return found


class _GlobalHelp:
    """Lists the global options under their own heading, after the command's own."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own, shared = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record:
                # `up` has its own --host/--port, which are not the shared ones
                is_global = param.name in GLOBAL_OPTIONS and not param.expose_value
                (shared if is_global else own).append(record)
        for title, records in (("Options", own), ("Global options", shared)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)
        if isinstance(self, click.Group):
            self.format_commands(ctx, formatter)


class DispatchCommand(_GlobalHelp, click.Command):
    """A leaf command (``exec``, ``get function``…)."""


class DispatchGroup(_GlobalHelp, click.Group):
    """The ``dispatch`` group: its subcommands are DispatchCommands unless said otherwise."""

    command_class = DispatchCommand


class ResourceGroup(DispatchGroup):
    """A verb whose subcommands are resource kinds; plurals work too (``get functions``)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name.endswith("s"):
            command = super().get_command(ctx, cmd_name[:-1])
        return command
