"""``dispatch create|update|delete -f FILE [-w WORKDIR]``: apply a seed file's documents.

One :class:`Verb` per command says in which order kinds go; :data:`REQUESTS` says which
request each (verb, kind) sends. The documents are all read and checked first
(:func:`cli.seed.load`), then applied one by one:

- a refused request (a 409 on create, a 404 on delete…) stops there, naming the
  document; what was applied before it is reported as usual;
- with ``--wait``, each entity that settles (function, image, base image, subscription,
  API, event driver) is waited for before the next document; one that ends in ERROR is
  reported with its reason and the rest is still applied; the command then exits
  non-zero. Without it, the command returns once the server has every document, as
  Dispatch's did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import click

from . import options, seed
from .client import ApiError, DispatchClient
from .output import TABLE, dump, without_values
from .progress import KIND_WORDS, settle_failure, wait_settled

#: the kinds that settle after a create or update (``--wait`` waits for them)
SETTLING = tuple(KIND_WORDS)


@dataclass(frozen=True)
class Verb:
    """How one command applies documents."""

    name: str
    #: the past tense printed per document: ``Created Function: hello-py``
    done: str
    #: the progressive shown while waiting: ``Creating function hello-py``
    doing: str
    #: the kinds in the order they are applied: functions name secrets and images, and
    #: images name base images, so these exist before what names them and outlive it
    order: tuple[str, ...]
    #: whether what it sends settles later (so ``--wait`` has something to wait for)
    builds: bool
    #: whether documents are sent (so sources and schema files must be read)
    sends_bodies: bool


VERBS = {
    verb.name: verb
    for verb in (
        Verb("create", "Created", "Creating", ("Organization", "ServiceAccount", "Policy",
                                                "Secret", "BaseImage", "Image", "Function",
                                                "Subscription", "API", "DriverType",
                                                "Driver"),
             builds=True, sends_bodies=True),
        Verb("update", "Updated", "Updating", ("Organization", "ServiceAccount", "Policy",
                                                "Secret", "BaseImage", "Image", "Function",
                                                "Subscription", "API", "DriverType",
                                                "Driver"),
             builds=True, sends_bodies=True),
        Verb("delete", "Deleted", "Deleting", ("Driver", "DriverType", "API",
                                                "Subscription", "Function", "Image",
                                                "BaseImage", "Secret", "Policy",
                                                "ServiceAccount", "Organization"),
             builds=False, sends_bodies=False),
    )
}

Request = Callable[[DispatchClient, seed.Document], Any]


def _iam_requests(kind: str) -> dict[str, Request]:
    """The requests of an identity kind (one path pattern: ``/v1/iam/{kind}``)."""
    return {
        "create": lambda client, doc: client.create_iam(kind, doc.body),
        "update": lambda client, doc: client.update_iam(kind, doc.name, doc.body),
        "delete": lambda client, doc: client.delete_iam(kind, doc.name),
    }


#: (verb, kind) → the request that applies a document and returns the resulting entity
REQUESTS: dict[tuple[str, str], Request] = {
    ("create", "Function"): lambda client, doc: client.create_function(doc.body),
    ("update", "Function"): lambda client, doc: client.update_function(doc.name, doc.body),
    ("delete", "Function"): lambda client, doc: client.delete_function(doc.name),
    ("create", "Secret"): lambda client, doc: client.create_secret(doc.body),
    ("update", "Secret"): lambda client, doc: client.update_secret(doc.name, doc.body),
    # 204 with no body: the entity is described by what the document named
    ("delete", "Secret"): lambda client, doc: (
        client.delete_secret(doc.name) or {"kind": "Secret", "name": doc.name}),
    ("create", "BaseImage"): lambda client, doc: client.create_base_image(doc.body),
    ("update", "BaseImage"): lambda client, doc: client.update_base_image(doc.name, doc.body),
    ("delete", "BaseImage"): lambda client, doc: client.delete_base_image(doc.name),
    ("create", "Image"): lambda client, doc: client.create_image(doc.body),
    ("update", "Image"): lambda client, doc: client.update_image(doc.name, doc.body),
    ("delete", "Image"): lambda client, doc: client.delete_image(doc.name),
    ("create", "Subscription"): lambda client, doc: client.create_subscription(doc.body),
    ("update", "Subscription"): lambda client, doc: client.update_subscription(doc.name,
                                                                               doc.body),
    ("delete", "Subscription"): lambda client, doc: client.delete_subscription(doc.name),
    ("create", "API"): lambda client, doc: client.create_api(doc.body),
    ("update", "API"): lambda client, doc: client.update_api(doc.name, doc.body),
    ("delete", "API"): lambda client, doc: client.delete_api(doc.name),
    ("create", "DriverType"): lambda client, doc: client.create_driver_type(doc.body),
    ("update", "DriverType"): lambda client, doc: client.update_driver_type(doc.name,
                                                                           doc.body),
    ("delete", "DriverType"): lambda client, doc: client.delete_driver_type(doc.name),
    ("create", "Driver"): lambda client, doc: client.create_driver(doc.body),
    ("update", "Driver"): lambda client, doc: client.update_driver(doc.name, doc.body),
    ("delete", "Driver"): lambda client, doc: client.delete_driver(doc.name),
    **{(verb, kind): request
       for kind, path in (("Organization", "organization"), ("ServiceAccount", "serviceaccount"),
                          ("Policy", "policy"))
       for verb, request in _iam_requests(path).items()},
}


def file_options(f: Callable) -> Callable:
    """Add ``-f/--file`` and ``-w/--work-dir`` to a verb's group."""
    f = click.option(
        "-w", "--work-dir", "workdir", type=click.Path(exists=True, file_okay=False),
        help="Directory sourcePath and @FILE are relative to [default: the file's own].",
    )(f)
    return click.option(
        "-f", "--file", "file", type=click.Path(exists=True, dir_okay=False),
        help="A seed file: multi-document YAML, one entity per document.",
    )(f)


def run_group(ctx: click.Context, verb: str, file: str | None, workdir: str | None,
              wait: bool = False) -> None:
    """The body of a verb group: apply ``file`` if given, else leave it to a subcommand."""
    if ctx.invoked_subcommand is not None:
        if file or workdir:
            raise click.UsageError(f"-f/-w apply a file: use `dispatch {verb} -f FILE` "
                                   f"without `{ctx.invoked_subcommand}`")
        if wait:
            raise click.UsageError(f"give --wait after `{ctx.invoked_subcommand}`: "
                                   f"`dispatch {verb} {ctx.invoked_subcommand} … --wait`")
        return
    if file is None:
        if workdir:
            raise click.UsageError("-w/--work-dir needs -f/--file")
        if wait:
            raise click.UsageError(f"--wait goes after what to {verb}: `dispatch {verb} "
                                   f"KIND NAME … --wait`, or `dispatch {verb} -f FILE --wait`")
        click.echo(ctx.get_help())
        ctx.exit(0)
    apply_file(ctx, VERBS[verb], file, workdir, wait)


def apply_file(ctx: click.Context, verb: Verb, file: str, workdir: str | None,
               wait: bool = False) -> None:
    """Check every document of ``file``, then apply them in ``verb``'s order."""
    apply_documents(ctx, verb, seed.load(file, workdir, resolve=verb.sends_bodies),
                    wait=wait)


def apply_documents(ctx: click.Context, verb: Verb, documents: list[seed.Document], *,
                    existing_ok: bool = False, wait: bool = False) -> None:
    """Apply checked documents in ``verb``'s order, reporting each.

    :param existing_ok: on create, an entity that exists already is kept as it is (and,
        with ``wait``, waited for) instead of stopping there
    :param wait: wait for each entity that settles later to be READY or ERROR
    """
    documents = sorted(documents, key=lambda doc: verb.order.index(doc.kind))  # stable
    client = options.client(ctx)
    fmt = options.output_format(ctx)
    applied: list[Any] = []
    failed: list[str] = []
    try:
        for document in documents:
            entity = _apply(client, verb, document, existing_ok, wait)
            failure = settle_failure(entity, document.kind) if document.kind in SETTLING \
                else None
            if failure:
                failed.append(document.label)
                click.echo(f"Error: {document.label}: {failure}", err=True)
            elif fmt == TABLE:
                click.echo(f"{verb.done} {document.kind}: {document.name}")
            # values are only ever shown by `get secret --all`
            applied.append(without_values(entity) if document.kind == "Secret" else entity)
    finally:
        # what was applied is printed even when a request stops the rest
        if fmt != TABLE:
            click.echo(dump(applied, fmt))
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(documents)} documents failed: {', '.join(failed)}")


def _apply(client: DispatchClient, verb: Verb, document: seed.Document,
           existing_ok: bool = False, wait: bool = False) -> Any:
    """Send ``document``'s request and, with ``wait``, wait for the entity to settle."""
    try:
        try:
            entity = REQUESTS[(verb.name, document.kind)](client, document)
        except ApiError as exc:
            if not (existing_ok and exc.status == 409):
                raise
            click.echo(f"{document.kind} {document.name} exists already: kept as it is",
                       err=True)
            entity = {"kind": document.kind, "name": document.name}
        if wait and verb.builds and document.kind in SETTLING:
            entity = wait_settled(client, document.kind, document.name, verb.doing)
    except ApiError as exc:
        raise ApiError(f"{document.label}: {exc.message}", exc.status) from None
    return entity
