"""``dispatch create|update|delete -f FILE [-w WORKDIR]``: apply a seed file's documents.

One :class:`Verb` per command says in which order kinds go and whether functions are
waited for; :data:`REQUESTS` says which request each (verb, kind) sends. The documents
are all read and checked first (:func:`cli.seed.load`), then applied one by one:

- a refused request (a 409 on create, a 404 on delete…) stops there, naming the
  document; what was applied before it is reported as usual;
- a function whose build ends in ERROR is reported with its reason and the rest is still
  applied; the command then exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import click

from . import options, seed
from .client import ApiError, DispatchClient
from .function_spec import build_failure, wait_built
from .output import TABLE, dump, without_values


@dataclass(frozen=True)
class Verb:
    """How one command applies documents."""

    name: str
    #: the past tense printed per document: ``Created Function: hello-py``
    done: str
    #: the progressive shown while waiting: ``Creating function hello-py``
    doing: str
    #: the kinds in the order they are applied: functions name secrets, so secrets
    #: exist before functions and outlive them
    order: tuple[str, ...]
    #: whether to wait for functions to be built (READY or ERROR)
    builds: bool
    #: whether documents are sent (so sources and schema files must be read)
    sends_bodies: bool


VERBS = {
    verb.name: verb
    for verb in (
        Verb("create", "Created", "Creating", ("Secret", "Function"),
             builds=True, sends_bodies=True),
        Verb("update", "Updated", "Updating", ("Secret", "Function"),
             builds=True, sends_bodies=True),
        Verb("delete", "Deleted", "Deleting", ("Function", "Secret"),
             builds=False, sends_bodies=False),
    )
}

Request = Callable[[DispatchClient, seed.Document], Any]

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


def run_group(ctx: click.Context, verb: str, file: str | None, workdir: str | None) -> None:
    """The body of a verb group: apply ``file`` if given, else leave it to a subcommand."""
    if ctx.invoked_subcommand is not None:
        if file or workdir:
            raise click.UsageError(f"-f/-w apply a file: use `dispatch {verb} -f FILE` "
                                   f"without `{ctx.invoked_subcommand}`")
        return
    if file is None:
        if workdir:
            raise click.UsageError("-w/--work-dir needs -f/--file")
        click.echo(ctx.get_help())
        ctx.exit(0)
    apply_file(ctx, VERBS[verb], file, workdir)


def apply_file(ctx: click.Context, verb: Verb, file: str, workdir: str | None) -> None:
    """Check every document of ``file``, then apply them in ``verb``'s order."""
    documents = seed.load(file, workdir, resolve=verb.sends_bodies)
    documents.sort(key=lambda doc: verb.order.index(doc.kind))  # stable: file order kept
    client = options.client(ctx)
    fmt = options.output_format(ctx)
    applied: list[Any] = []
    failed: list[str] = []
    try:
        for document in documents:
            entity = _apply(client, verb, document)
            failure = build_failure(entity) if document.kind == "Function" else None
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


def _apply(client: DispatchClient, verb: Verb, document: seed.Document) -> Any:
    """Send ``document``'s request and, for a function being built, wait for the build."""
    try:
        entity = REQUESTS[(verb.name, document.kind)](client, document)
        if verb.builds and document.kind == "Function":
            entity = wait_built(client, document.name, f"{verb.doing} function {document.name}")
    except ApiError as exc:
        raise ApiError(f"{document.label}: {exc.message}", exc.status) from None
    return entity
