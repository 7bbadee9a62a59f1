"""``dispatch create …``: add entities — functions, secrets, base images, images, the seed
images, or every entity of a seed file (``-f``). Later kinds join ``create`` here and in
:mod:`cli.seed`."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click
import yaml

from .. import options, seed
from ..apply import VERBS, apply_documents, file_options, run_group
from ..client import ApiError
from ..function_spec import send_and_build, spec_options
from ..image_spec import image_body, read_manifest, read_system_deps, seed_documents
from ..output import show_outcome, without_values
from ..progress import settled, wait_option, wait_options


@click.group(cls=options.ResourceGroup, invoke_without_command=True)
@file_options
@wait_option
@options.global_options()
@click.pass_context
def create(ctx: click.Context, file: str | None, workdir: str | None, wait: bool) -> None:
    """Create a resource, or every resource of a seed file (-f).

    Each command returns once the server has the entity; what is then built or set up
    (functions, images, subscriptions, APIs…) shows in `dispatch get KIND NAME`, or
    --wait waits for it.
    """
    run_group(ctx, "create", file, workdir, wait)


@create.command("function")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, readable=True))
@spec_options
@options.global_options()
@click.pass_context
def create_function(
    ctx: click.Context, name: str, path: str, wait: bool, **spec: Any
) -> None:
    """Create function NAME from PATH, a source file or a directory.

    It is then built on the server: `dispatch get function NAME` shows READY or ERROR
    (or give --wait).
    """
    client = options.client(ctx)
    function = send_and_build(client, client.create_function, name, path,
                              doing="Creating", wait=wait, spec=spec)
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


@create.command("subscription")
@click.argument("function")
@click.option("--event-type", required=True, help="The event type that runs FUNCTION.")
@click.option("--name", help="The subscription's name [default: a random one].")
@click.option("--secret", "secrets", multiple=True,
              help="A secret given to the runs (repeatable).")
@wait_options
@options.global_options()
@click.pass_context
def create_subscription(ctx: click.Context, function: str, event_type: str, name: str | None,
                        secrets: tuple[str, ...], wait: bool) -> None:
    """Subscribe FUNCTION to events of --event-type: each such event of the organization
    runs it, with the event's data as input."""
    body = {"name": name, "eventType": event_type, "function": function,
            "secrets": list(secrets), "tags": []}
    client = options.client(ctx)
    sub = settled(client, "Subscription", client.create_subscription(body), "Creating", wait)
    show_outcome(sub, options.output_format(ctx), f"Created subscription: {sub['name']}")


def _pairs(values: tuple[str, ...], option: str) -> list[dict[str, str]]:
    pairs = []
    for value in values:
        key, sep, v = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        pairs.append({"key": key, "value": v})
    return pairs


@create.command("eventdriver")
@click.argument("type_name", metavar="TYPE")
@click.option("--name", help="The driver's name [default: a random one].")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A config value (repeatable), e.g. --set schedule='*/5 * * * *'.")
@click.option("--secret", "secrets", multiple=True,
              help="A secret whose values reach the driver's program (repeatable).")
@wait_options
@options.global_options()
@click.pass_context
def create_event_driver(ctx: click.Context, type_name: str, name: str | None,
                        settings: tuple[str, ...], secrets: tuple[str, ...],
                        wait: bool) -> None:
    """Create an event driver of TYPE: cron, webhook, or a driver type's name."""
    body = {"name": name, "type": type_name, "config": _pairs(settings, "--set"),
            "secrets": list(secrets), "tags": []}
    client = options.client(ctx)
    driver = settled(client, "Driver", client.create_driver(body), "Creating", wait)
    message = f"Created event driver: {driver['name']}"
    if driver.get("url"):
        message += f"\nIngest URL: {driver['url']}\nToken: {driver['token']}"
    show_outcome(driver, options.output_format(ctx), message)


@create.command("eventdrivertype")
@click.argument("name")
@click.argument("image", required=False)
@click.option("--command", "command", help="Instead of IMAGE: an executable's command "
              "line, run on the scheduler's host (split as a shell would).")
@click.option("--expose", is_flag=True, help="Mark its drivers as exposed.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A default config value of its drivers (repeatable).")
@options.global_options()
@click.pass_context
def create_event_driver_type(ctx: click.Context, name: str, image: str | None,
                             command: str | None, expose: bool,
                             settings: tuple[str, ...]) -> None:
    """Create event driver type NAME from a container IMAGE or a --command."""
    if bool(image) == bool(command):
        raise click.UsageError("give exactly one of IMAGE or --command")
    body = {"name": name, "image": image or "", "command": shlex.split(command or ""),
            "expose": expose, "config": _pairs(settings, "--set"), "tags": []}
    dtype = options.client(ctx).create_driver_type(body)
    show_outcome(dtype, options.output_format(ctx), f"Created event driver type: {name}")


@create.command("base-image")
@click.argument("name")
@click.argument("url")
@click.option("--language", required=True, help="The runtime it has: python3 or nodejs.")
@wait_options
@options.global_options()
@click.pass_context
def create_base_image(ctx: click.Context, name: str, url: str, language: str,
                      wait: bool) -> None:
    """Create base image NAME from URL: an image reference (docker builder), or an
    interpreter's absolute path or a runtime's name (local builder)."""
    client = options.client(ctx)
    base = client.create_base_image({"name": name, "dockerUrl": url, "language": language,
                                     "tags": []})
    base = settled(client, "BaseImage", base, "Creating", wait)
    show_outcome(base, options.output_format(ctx), f"Created base image: {name}")


@create.command("image")
@click.argument("name")
@click.argument("base_image")
@click.option("--runtime-deps", type=click.Path(exists=True, dir_okay=False),
              help="The runtime dependencies' manifest: requirements.txt or package.json.")
@click.option("--system-deps", type=click.Path(exists=True, dir_okay=False),
              help="System packages: 'name [version]' per line, or a JSON list.")
@wait_options
@options.global_options()
@click.pass_context
def create_image(ctx: click.Context, name: str, base_image: str, runtime_deps: str | None,
                 system_deps: str | None, wait: bool) -> None:
    """Create image NAME on BASE_IMAGE with dependencies; it is built on the server."""
    body = image_body(name, base_image, read_manifest(runtime_deps) if runtime_deps else None,
                      read_system_deps(system_deps) if system_deps else [])
    client = options.client(ctx)
    image = settled(client, "Image", client.create_image(body), "Creating", wait)
    show_outcome(image, options.output_format(ctx), f"Created image: {name}")


@create.command("seed-images")
@click.option("-O", "--output-file", type=click.Path(dir_okay=False, writable=True),
              help="Write them to a seed file instead of creating them.")
@click.option("--base-url", "base_urls", multiple=True, metavar="LANGUAGE=URL",
              help="The base image of LANGUAGE (default: by the server's builder).")
@wait_options
@options.global_options()
@click.pass_context
def create_seed_images(ctx: click.Context, output_file: str | None,
                       base_urls: tuple[str, ...], wait: bool) -> None:
    """Create base images python3-base and nodejs-base, and images python3 and nodejs on
    them, for the server's builder. Those that exist already are kept.

    The images take the place of the built-in python3 and nodejs images in the
    organization: functions created afterwards on python3 or nodejs run on them.
    """
    overrides = {}
    for pair in base_urls:
        language, sep, url = pair.partition("=")
        if not sep or not url:
            raise click.BadParameter(f"{pair!r} is not LANGUAGE=URL", param_hint="--base-url")
        overrides[language] = url
    client = options.client(ctx)
    try:
        server = client.version()
    except ApiError:
        if not output_file:
            raise
        server = {}  # no server to ask: the embedded default
    documents = seed_documents(server.get("builder") or "local", overrides,
                               server.get("registry"))
    if output_file:
        with open(output_file, "w", encoding="utf-8") as f:
            yaml.safe_dump_all(documents, f, sort_keys=False)
        click.echo(f"Wrote {len(documents)} documents to {output_file}")
        return
    checked = [seed.Document(n, d["kind"], d["name"], {k: v for k, v in d.items() if k != "kind"})
               for n, d in enumerate(documents, 1)]
    apply_documents(ctx, VERBS["create"], checked, existing_ok=True, wait=wait)


@create.command("api")
@click.argument("name")
@click.argument("function")
@click.option("-m", "--method", "methods", multiple=True, metavar="METHOD",
              help="An HTTP method it answers (repeatable; default GET).")
@click.option("-p", "--path", "paths", multiple=True, metavar="PATH",
              help="A path it answers, under /<org> unless on a host (repeatable; default /).")
@click.option("-d", "--domain", "hosts", multiple=True, metavar="HOST",
              help="A host name it answers on; its paths are then not under /<org>.")
@click.option("--cors", is_flag=True, help="Answer CORS preflights and allow any origin.")
@click.option("--disable", is_flag=True, help="Create it disabled (not routed).")
@click.option("--auth", "authentication", default="public", show_default=True,
              help="Authentication: public (bearer arrives with identity).")
@wait_options
@options.global_options()
@click.pass_context
def create_api(ctx: click.Context, name: str, function: str, methods: tuple[str, ...],
               paths: tuple[str, ...], hosts: tuple[str, ...], cors: bool, disable: bool,
               authentication: str, wait: bool) -> None:
    """Create API NAME: requests on its paths run FUNCTION through the gateway."""
    body = {"name": name, "function": function, "methods": list(methods) or ["GET"],
            "uris": list(paths) or ["/"], "hosts": list(hosts), "cors": cors,
            "enabled": not disable, "authentication": authentication, "tags": []}
    client = options.client(ctx)
    api = settled(client, "API", client.create_api(body), "Creating", wait)
    show_outcome(api, options.output_format(ctx), f"Created api: {name}")
