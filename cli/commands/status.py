"""``dispatch status``: which processes are up, which are degraded, and why."""

from __future__ import annotations

import sys

import click

from .. import options
from ..client import ApiError
from ..output import TABLE, dump


@click.command(cls=options.DispatchCommand)
@click.option("--process", "processes", multiple=True, metavar="NAME=URL",
              help="Also ask this process's health port, e.g. "
                   "worker=http://10.0.0.7:9191 (repeatable).")
@options.global_options()
@click.pass_context
def status(ctx: click.Context, processes: tuple[str, ...]) -> None:
    """Say whether the server (and the processes named) are ready, and why not.

    Reads each one's /readyz and the server's version; exits 1 when any is not ready or
    does not answer.
    """
    client = options.client(ctx)
    targets = [("api", None)]
    for spec in processes:
        name, sep, url = spec.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{spec!r} is not NAME=http(s)://HOST:PORT",
                                     param_hint="--process")
        targets.append((name, url))
    results = []
    for name, url in targets:
        where = url or client.base_url
        try:
            code, report = client.readiness(url)
            results.append({"name": name, "url": where, "ready": code == 200 and
                            bool(report.get("ready")), "report": report})
        except ApiError as exc:
            results.append({"name": name, "url": where, "ready": False,
                            "error": exc.message})
    version = None
    if results[0].get("ready"):
        try:
            version = client.version().get("version")
        except ApiError as exc:
            results[0]["version_error"] = exc.message
    ready = all(r["ready"] for r in results)
    fmt = options.output_format(ctx)
    if fmt != TABLE:
        click.echo(dump({"ready": ready, "version": version, "processes": results}, fmt))
    else:
        for result in results:
            click.echo(_describe(result, version if result is results[0] else None))
        click.echo("Dispatch is ready" if ready else "Dispatch is NOT ready")
    if not ready:
        sys.exit(1)


def _describe(result: dict, version: str | None) -> str:
    head = f"{result['name']} ({result['url']}): "
    if "error" in result:
        return head + f"DOWN — {result['error']}"
    report = result["report"]
    role = report.get("role")
    head += ("ready" if result["ready"] else "DEGRADED") + (f", role {role}" if role else "")
    if version:
        head += f", version {version}"
    lines = [head]
    for check in report.get("checks", []):
        mark = "ok  " if check.get("ok") else "FAIL"
        lines.append(f"  {mark} {check.get('name')}: {check.get('message')}")
    if result.get("version_error"):
        lines.append(f"  FAIL version: {result['version_error']}")
    return "\n".join(lines)
