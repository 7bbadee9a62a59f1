"""Seed files: multi-document YAML that ``dispatch create|update|delete -f`` reads.

Each document is ``kind`` plus the model's fields in camelCase (reference §2,
"Multi-document YAML")::

    kind: Function
    name: hello-py
    sourcePath: python3/hello.py     # packed into `source`; never sent itself
    image: python3
    handler: hello.handle
    schema: {in: "@python3/hello.schema.in.json", out: {type: object}}
    ---
    kind: Image
    name: py-requests
    baseImageName: python3-base
    runtimeDependencies: {manifest: "@python3/requirements.txt"}   # the file's text

The whole file is read and checked before anything is sent, so a mistake in document 5
cannot leave documents 1–4 applied: an unknown or not-yet-served kind, an unknown field,
a missing required field, a duplicate, or a file that cannot be read refuses the file,
naming the document. What each kind accepts is the one table :data:`KINDS`.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any

import click
import yaml

from engine.sources import pack

from .function_spec import read_json_schema


@dataclass(frozen=True)
class Kind:
    """What a document of one kind may hold."""

    name: str
    #: fields sent to the server as they are
    fields: frozenset[str]
    #: required fields; a tuple of alternatives means "one of these"
    required: tuple[tuple[str, ...], ...]
    #: fields the server sets: accepted (a document may come from ``get -o yaml``),
    #: never sent
    server_fields: frozenset[str] = field(default_factory=frozenset)
    #: fields the CLI resolves into others before sending (``sourcePath`` → ``source``)
    local_fields: frozenset[str] = field(default_factory=frozenset)

    def known(self) -> frozenset[str]:
        """Every field a document of this kind may have, ``kind`` included."""
        return self.fields | self.server_fields | self.local_fields | {"kind"}


#: the envelope fields every entity carries and only the server sets
_ENVELOPE = frozenset({"id", "organizationId", "createdTime", "modifiedTime", "revision",
                       "status", "reason", "delete"})

#: the kinds this server serves, by the name a document gives
KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "Function",
            fields=frozenset({"name", "image", "handler", "source", "schema", "secrets",
                              "services", "timeout", "tags", "network", "concurrency",
                              "retry", "retention"}),
            required=(("name",), ("image",), ("handler",), ("sourcePath", "source")),
            server_fields=_ENVELOPE | {"faasId", "functionImageURL", "sourceURL"},
            local_fields=frozenset({"sourcePath"}),
        ),
        Kind(
            "Secret",
            fields=frozenset({"name", "secrets", "tags"}),
            required=(("name",),),
            server_fields=_ENVELOPE,
        ),
        Kind(
            "BaseImage",
            fields=frozenset({"name", "dockerUrl", "language", "tags"}),
            required=(("name",), ("dockerUrl",), ("language",)),
            server_fields=_ENVELOPE,
        ),
        Kind(
            "Image",
            fields=frozenset({"name", "baseImageName", "runtimeDependencies",
                              "systemDependencies", "tags"}),
            required=(("name",), ("baseImageName",)),
            server_fields=_ENVELOPE | {"dockerUrl", "language"},
        ),
        Kind(
            "Subscription",
            fields=frozenset({"name", "eventType", "function", "secrets", "tags"}),
            required=(("name",), ("eventType",), ("function",)),
            server_fields=_ENVELOPE,
        ),
        Kind(
            "DriverType",
            fields=frozenset({"name", "image", "command", "expose", "config", "tags"}),
            required=(("name",), ("image", "command")),
            server_fields=_ENVELOPE | {"builtin", "description"},
        ),
        Kind(
            "Driver",
            fields=frozenset({"name", "type", "config", "secrets", "tags"}),
            required=(("name",), ("type",)),
            server_fields=_ENVELOPE | {"expose", "url", "token", "missedTicks",
                                       "lastMissed"},
        ),
        Kind(
            "API",
            fields=frozenset({"name", "function", "hosts", "uris", "methods", "protocols",
                              "authentication", "enabled", "cors", "tls", "tags"}),
            required=(("name",), ("function",)),
            server_fields=_ENVELOPE,
        ),
        Kind(
            "Organization",
            fields=frozenset({"name", "tags"}),
            required=(("name",),),
            server_fields=_ENVELOPE,
        ),
        Kind(
            "ServiceAccount",
            # publicKey: the base64 of the PEM, as Dispatch's files had it
            fields=frozenset({"name", "publicKey", "tags"}),
            required=(("name",), ("publicKey",)),
            server_fields=_ENVELOPE | {"domain", "jwtAlgorithm"},
        ),
        Kind(
            "Policy",
            fields=frozenset({"name", "rules", "global", "tags"}),
            required=(("name",), ("rules",)),
            server_fields=_ENVELOPE,
        ),
    )
}

#: Dispatch kinds that this server does not serve yet: a file naming one is refused whole
#: rather than half applied
NOT_SERVED = ("Application",)

#: ``schema`` is an object of exactly these, each a JSON Schema or ``"@FILE"``
SCHEMA_DIRECTIONS = ("in", "out")


@dataclass(frozen=True)
class Document:
    """One document of a seed file, checked; ``body`` is what a create or update sends."""

    number: int
    kind: str
    name: str
    body: dict[str, Any]

    @property
    def label(self) -> str:
        """``document 2 (Function hello-py)``: how messages name it."""
        return f"document {self.number} ({self.kind} {self.name})"


def load(path: str, workdir: str | None = None, *, resolve: bool = True) -> list[Document]:
    """The documents of seed file ``path``, checked, in file order.

    ``sourcePath`` and ``"@FILE"`` schemas are read relative to ``workdir`` (default: the
    file's directory) unless ``resolve`` is false (a delete needs names only).

    :raises click.ClickException: naming the first document that is wrong, and why.
    """
    workdir = workdir if workdir is not None else os.path.dirname(os.path.abspath(path))
    documents = [_check(number, raw) for number, raw in _documents(path)]
    seen: dict[tuple[str, str], int] = {}
    for document in documents:
        earlier = seen.setdefault((document.kind, document.name), document.number)
        if earlier != document.number:
            raise click.ClickException(
                f"{document.label}: document {earlier} already describes it")
    # files are read only once every document's kind and fields are known to be good
    return [_resolve(doc, workdir) for doc in documents] if resolve else documents


def _documents(path: str) -> list[tuple[int, Any]]:
    """``(number, document)`` for each non-empty document, numbered from 1 as in the file."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = list(yaml.safe_load_all(f))
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path} is not valid YAML: {exc}") from None
    found = [(number, doc) for number, doc in enumerate(raw, 1) if doc is not None]
    if not found:
        raise click.ClickException(f"{path} holds no documents")
    return found


def _check(number: int, raw: Any) -> Document:
    """The document's kind, fields and required fields, checked against :data:`KINDS`."""
    where = f"document {number}"
    if not isinstance(raw, dict):
        raise click.ClickException(f"{where} is not a mapping of fields")
    kind_name = raw.get("kind")
    if kind_name in NOT_SERVED:
        raise click.ClickException(f"{where}: kind {kind_name} is not supported by this "
                                   "server yet")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        what = f"unknown kind {kind_name!r}" if "kind" in raw else "no kind"
        raise click.ClickException(f"{where}: {what} (kinds: {', '.join(KINDS)})")
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({kind.name} {name})"
    else:
        where = f"{where} ({kind.name})"
    unknown = sorted(set(map(str, raw)) - kind.known())
    if unknown:
        raise click.ClickException(
            f"{where}: unknown field {unknown[0]!r} (a {kind.name} has: "
            f"{', '.join(sorted(kind.fields | kind.local_fields))})")
    for alternatives in kind.required:
        if not any(raw.get(f) not in (None, "") for f in alternatives):
            raise click.ClickException(
                f"{where}: missing required field {' or '.join(map(repr, alternatives))}")
    if not isinstance(name, str):
        raise click.ClickException(f"{where}: name must be a string")
    body = {k: v for k, v in raw.items() if k in kind.fields or k in kind.local_fields}
    return Document(number, kind.name, name, body)


def _resolve(document: Document, workdir: str) -> Document:
    """Replace ``sourcePath`` with the packed ``source``, ``"@FILE"`` schemas with the
    files' objects and an ``"@FILE"`` manifest with the file's text, reading relative to
    ``workdir``."""
    body = dict(document.body)
    source_path = body.pop("sourcePath", None)
    if source_path is not None:
        body["source"] = _packed(document, source_path, workdir)
    if "schema" in body:
        body["schema"] = _schemas(document, body["schema"], workdir)
    if body.get("runtimeDependencies") is not None:
        body["runtimeDependencies"] = _runtime_dependencies(
            document, body["runtimeDependencies"], workdir)
    return Document(document.number, document.kind, document.name, body)


def _runtime_dependencies(document: Document, value: Any, workdir: str) -> dict[str, Any]:
    """``{manifest}``, where ``"@FILE"`` is replaced by the file's text (as in Dispatch)."""
    if not isinstance(value, dict) or set(map(str, value)) - {"manifest"}:
        raise click.ClickException(f"{document.label}: runtimeDependencies must be a mapping "
                                   "with a manifest")
    manifest = value.get("manifest")
    if isinstance(manifest, str) and manifest.startswith("@"):
        path = os.path.join(workdir, manifest[1:])
        try:
            with open(path, encoding="utf-8") as f:
                manifest = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise click.ClickException(
                f"{document.label}: runtimeDependencies.manifest {value['manifest']}: cannot "
                f"read {path}: {why} (it is relative to the work directory, -w)") from None
    elif manifest is not None and not isinstance(manifest, str):
        raise click.ClickException(f"{document.label}: runtimeDependencies.manifest must be "
                                   "the manifest's text or \"@FILE\"")
    return {"manifest": manifest}


def _packed(document: Document, source_path: Any, workdir: str) -> str:
    if not isinstance(source_path, str):
        raise click.ClickException(f"{document.label}: sourcePath must be a path")
    path = os.path.join(workdir, source_path)
    if not os.path.exists(path):
        raise click.ClickException(
            f"{document.label}: sourcePath {source_path}: {path} does not exist "
            "(sourcePath is relative to the work directory, -w)")
    try:
        return base64.b64encode(pack(path)).decode("ascii")
    except OSError as exc:
        raise click.ClickException(
            f"{document.label}: sourcePath {source_path}: {exc.strerror or exc}") from None


def _schemas(document: Document, schema: Any, workdir: str) -> dict[str, Any] | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise click.ClickException(f"{document.label}: schema must be a mapping with "
                                   f"{' and '.join(SCHEMA_DIRECTIONS)}")
    unknown = sorted(set(map(str, schema)) - set(SCHEMA_DIRECTIONS))
    if unknown:
        raise click.ClickException(f"{document.label}: unknown field 'schema.{unknown[0]}' "
                                   f"(a schema has: {', '.join(SCHEMA_DIRECTIONS)})")
    resolved = {}
    for direction in SCHEMA_DIRECTIONS:
        value = schema.get(direction)
        if isinstance(value, str):
            if not value.startswith("@"):
                raise click.ClickException(
                    f"{document.label}: schema.{direction} must be a JSON Schema or "
                    f"\"@FILE\", not {value!r}")
            try:
                value = read_json_schema(os.path.join(workdir, value[1:]))
            except ValueError as exc:
                raise click.ClickException(
                    f"{document.label}: schema.{direction}: {exc}") from None
        resolved[direction] = value
    return resolved
