"""``dispatch get …``: show entities as a table, or as JSON / YAML with ``-o``."""

from __future__ import annotations

import click

from .. import options
from ..output import TABLE, Column, field, show, timestamp, without_values

FUNCTION_COLUMNS = (
    Column("NAME", field("name")),
    Column("IMAGE", field("image")),
    Column("STATUS", field("status")),
    Column("CREATED DATE", timestamp("createdTime")),
)

RUN_COLUMNS = (
    Column("ID", field("name")),
    Column("FUNCTION", field("functionName")),
    Column("STATUS", field("status")),
    Column("STARTED", timestamp("executedTime")),
    Column("FINISHED", timestamp("finishedTime")),
)

DEAD_RUN_COLUMNS = (
    Column("ID", field("name")),
    Column("FUNCTION", field("functionName")),
    Column("ATTEMPTS", field("attempts")),
    Column("ERROR", lambda r: f"{(r.get('error') or {}).get('type')}: "
                              f"{(r.get('error') or {}).get('message')}"),
    Column("FINISHED", timestamp("finishedTime")),
)

SECRET_COLUMNS = (
    Column("NAME", field("name")),
    Column("ID", field("id")),
    Column("CREATED DATE", timestamp("createdTime")),
)

BASE_IMAGE_COLUMNS = (
    Column("NAME", field("name")),
    Column("URL", field("dockerUrl")),
    Column("LANGUAGE", field("language")),
    Column("STATUS", field("status")),
    Column("CREATED DATE", timestamp("createdTime")),
)

IMAGE_COLUMNS = (
    Column("NAME", field("name")),
    Column("URL", field("dockerUrl")),
    Column("BASEIMAGE", field("baseImageName")),
    Column("STATUS", field("status")),
    Column("CREATED DATE", timestamp("createdTime")),
)

SUBSCRIPTION_COLUMNS = (
    Column("NAME", field("name")),
    Column("EVENT TYPE", field("eventType")),
    Column("FUNCTION", field("function")),
    Column("STATUS", field("status")),
    Column("CREATED DATE", timestamp("createdTime")),
)

#: with --all, one line per value: ``key=value``
SECRET_VALUES = Column(
    "SECRETS", lambda s: "\n".join(f"{k}={v}" for k, v in (s.get("secrets") or {}).items())
)


@click.group(cls=options.ResourceGroup)
@options.global_options()
def get() -> None:
    """Show resources."""


@get.command("run")
@click.argument("function", required=False)
@click.argument("run", required=False)
@click.option("--last", is_flag=True, help="Show only the newest run.")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N runs, newest first.")
@click.option("--continue", "token", metavar="TOKEN",
              help="The next page: the token a previous listing printed.")
@click.option("--dead", is_flag=True,
              help="Only dead runs (retries exhausted, not redriven): `dispatch redrive RUN`.")
@options.global_options()
@click.pass_context
def get_run(
    ctx: click.Context, function: str | None, run: str | None, last: bool, limit: int | None,
    token: str | None, dead: bool,
) -> None:
    """Show run RUN of FUNCTION, FUNCTION's runs, or every run; newest first, a page at a
    time (the server's page is at most 1000 runs; `--continue TOKEN` shows the next)."""
    if run and (last or limit or dead or token):
        raise click.UsageError("--last, --limit, --continue and --dead list runs: "
                               "leave RUN out")
    if dead:
        if last:
            raise click.UsageError("--dead lists the dead runs: use --limit 1")
        data = options.client(ctx).list_dead_runs(function, limit)
        show(data, options.output_format(ctx), DEAD_RUN_COLUMNS)
        return
    if last and limit:
        raise click.UsageError("--last is --limit 1: give one or the other")
    client = options.client(ctx)
    if run:
        data = client.get_run(run, function)
    elif last:
        # the newest run alone, as one entity: `-o json` gives the Run, not a list of one
        newest = client.list_runs(function, limit=1)
        if not newest:
            whose = f"function {function} has" if function else "there are"
            raise click.ClickException(f"{whose} no runs yet")
        data = newest[0]
    else:
        data, more = client.list_runs_page(function, limit=limit, token=token)
        if more:
            click.echo(f"more runs: dispatch get runs {function + ' ' if function else ''}"
                       f"{f'--limit {limit} ' if limit else ''}--continue {more}", err=True)
    show(data, options.output_format(ctx), RUN_COLUMNS)


@get.command("secret")
@click.argument("name", required=False)
@click.option("--all", "reveal", is_flag=True, help="Show the secrets' values too.")
@options.global_options()
@click.pass_context
def get_secret(ctx: click.Context, name: str | None, reveal: bool) -> None:
    """Show secret NAME, or every secret. The table shows values only with --all; -o json
    and -o yaml show them, as Dispatch's CLI did (scripts read `.secrets.KEY`)."""
    client = options.client(ctx)
    data = client.get_secret(name) if name else client.list_secrets()
    fmt = options.output_format(ctx)
    if fmt != TABLE:
        show(data, fmt, SECRET_COLUMNS)
    elif reveal:
        show(data, fmt, SECRET_COLUMNS + (SECRET_VALUES,))
    else:
        show(without_values(data), fmt, SECRET_COLUMNS)


DRIVER_COLUMNS = (
    Column("NAME", field("name")),
    Column("TYPE", field("type")),
    Column("CONFIG", lambda d: "\n".join(f"{c['key']}={c.get('value')}"
                                          for c in d.get("config") or [])),
    Column("STATUS", field("status")),
    Column("CREATED DATE", timestamp("createdTime")),
)

DRIVER_TYPE_COLUMNS = (
    Column("NAME", field("name")),
    Column("IMAGE/COMMAND", lambda t: t.get("image") or " ".join(t.get("command") or [])
           or "(built in)"),
    Column("STATUS", field("status")),
    Column("CREATED DATE", timestamp("createdTime")),
)


API_COLUMNS = (
    Column("NAME", field("name")),
    Column("FUNCTION", field("function")),
    Column("METHODS", lambda a: "\n".join(a.get("methods") or [])),
    Column("PATHS", lambda a: "\n".join(
        [f"{h}{u}" for h in a.get("hosts") or [] for u in a.get("uris") or []]
        or [f"/{a.get('organizationId')}{u}".rstrip("/") or "/" for u in a.get("uris") or []])),
    Column("STATUS", field("status")),
    Column("ENABLED", lambda a: "true" if a.get("enabled", True) else "false"),
)


@get.command("api")
@click.argument("name", required=False)
@click.option("--function", help="Only the APIs of this function.")
@options.global_options()
@click.pass_context
def get_api(ctx: click.Context, name: str | None, function: str | None) -> None:
    """Show API NAME, or every API (of --function)."""
    client = options.client(ctx)
    data = client.get_api(name) if name else client.list_apis(function)
    show(data, options.output_format(ctx), API_COLUMNS)


def _getter(command: str, getter: str, lister: str, columns: tuple, help: str) -> None:
    """``dispatch get COMMAND [NAME]``: one entity (client ``getter``) or all of them
    (``lister``), as a table of ``columns`` or with -o."""

    @get.command(command, help=help)
    @click.argument("name", required=False)
    @options.global_options()
    @click.pass_context
    def command_(ctx: click.Context, name: str | None) -> None:
        client = options.client(ctx)
        data = getattr(client, getter)(name) if name else getattr(client, lister)()
        show(data, options.output_format(ctx), columns)


#: (command, client getter, client lister, columns, help)
for _row in (
    ("function", "get_function", "list_functions", FUNCTION_COLUMNS,
     "Show function NAME, or every function."),
    ("subscription", "get_subscription", "list_subscriptions", SUBSCRIPTION_COLUMNS,
     "Show subscription NAME, or every subscription."),
    ("eventdriver", "get_driver", "list_drivers", DRIVER_COLUMNS,
     "Show event driver NAME, or every event driver."),
    ("eventdrivertype", "get_driver_type", "list_driver_types", DRIVER_TYPE_COLUMNS,
     "Show event driver type NAME, or every type (the built-in cron and webhook too)."),
    ("base-image", "get_base_image", "list_base_images", BASE_IMAGE_COLUMNS,
     "Show base image NAME, or every base image."),
    ("image", "get_image", "list_images", IMAGE_COLUMNS, "Show image NAME, or every image."),
):
    _getter(*_row)
