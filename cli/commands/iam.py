"""``dispatch iam create|get|delete organization|serviceaccount|policy``: identity.

Requests go to ``/v1/iam/…`` in the context's organization (``X-Dispatch-Org``), so a
service account or a policy belongs to the organization the command is pointed at;
organizations themselves need a global policy of the caller's own.

A service account's public key is read from a PEM file and sent as the base64 of the
PEM, as Dispatch's CLI did; a file that holds no RSA public key is refused before
anything is sent. ``--generate-key FILE`` makes the key pair here instead: the private
key is written to FILE (0600, never overwriting a file) and only its public half leaves.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Iterable

import click
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import options
from ..client import ApiError
from ..output import Column, field, show, show_outcome, timestamp

#: what each kind is called in messages
TITLES = {"organization": "organization", "serviceaccount": "service account",
          "policy": "policy"}
#: size of a key made by --generate-key (the server takes 2048 bits and more)
GENERATED_KEY_BITS = 3072

ORGANIZATION_COLUMNS = (
    Column("NAME", field("name")),
    Column("CREATED DATE", timestamp("createdTime")),
)

SERVICE_ACCOUNT_COLUMNS = (
    Column("NAME", field("name")),
    Column("DOMAIN", field("domain")),
    Column("CREATED DATE", timestamp("createdTime")),
)

POLICY_COLUMNS = (
    Column("NAME", field("name")),
    Column("GLOBAL", lambda p: "true" if p.get("global") else "false"),
    Column("CREATED DATE", timestamp("createdTime")),
)

#: with -w: one line per rule
POLICY_RULES = Column("RULES", lambda p: "\n".join(
    f"subjects: {','.join(r.get('subjects') or [])}; "
    f"resources: {','.join(r.get('resources') or [])}; "
    f"actions: {','.join(r.get('actions') or [])}"
    for r in p.get("rules") or []))

COLUMNS = {"organization": ORGANIZATION_COLUMNS, "serviceaccount": SERVICE_ACCOUNT_COLUMNS,
           "policy": POLICY_COLUMNS}


class IamKinds(options.ResourceGroup):
    """``organizations``, ``serviceaccounts`` and ``policies`` work as well."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, "policy" if cmd_name == "policies" else cmd_name)


@click.group(cls=options.DispatchGroup)
@options.global_options()
def iam() -> None:
    """Organizations, service accounts and policies."""


@iam.group("create", cls=IamKinds)
@options.global_options()
def iam_create() -> None:
    """Create an organization, a service account or a policy."""


@iam.group("get", cls=IamKinds)
@options.global_options()
def iam_get() -> None:
    """Show organizations, service accounts or policies."""


@iam.group("delete", cls=IamKinds)
@options.global_options()
def iam_delete() -> None:
    """Delete an organization, a service account or a policy."""


# ---- create -------------------------------------------------------------------------

@iam_create.command("organization")
@click.argument("name")
@options.global_options()
@click.pass_context
def create_organization(ctx: click.Context, name: str) -> None:
    """Create organization NAME (needs a global policy allowing iam create)."""
    created = options.client(ctx).create_iam("organization", {"name": name})
    show_outcome(created, options.output_format(ctx), f"Created organization: {name}")


@iam_create.command("serviceaccount")
@click.argument("name")
@click.option("--public-key", "public_key", type=click.Path(dir_okay=False),
              help="The account's RSA public key, a PEM file.")
@click.option("--generate-key", "generate_key", type=click.Path(dir_okay=False),
              help="Make a new key pair: the private key goes to this new file (0600).")
@options.global_options()
@click.pass_context
def create_service_account(ctx: click.Context, name: str, public_key: str | None,
                           generate_key: str | None) -> None:
    """Create service account NAME, whose tokens verify with a public key.

    \b
    Give the public key (--public-key key.pub, e.g. from
      openssl genrsa -out key.pem 3072 && openssl rsa -in key.pem -pubout -out key.pub)
    or let the CLI make the pair (--generate-key key.pem); then
      dispatch login --service-account NAME --jwt-private-key key.pem
    """
    if (public_key is None) == (generate_key is None):
        raise click.UsageError("give one of --public-key FILE and --generate-key FILE")
    body: dict[str, Any] = {"name": name}  # the domain is the server's (as in Dispatch)
    client = options.client(ctx)
    fmt = options.output_format(ctx)
    if public_key is not None:
        body["publicKey"] = read_public_key(public_key)
        created = client.create_iam("serviceaccount", body)
        show_outcome(created, fmt, f"Created service account: {name}")
        return
    body["publicKey"] = new_key_pair(generate_key)
    try:
        created = client.create_iam("serviceaccount", body)
    except ApiError:
        os.unlink(generate_key)  # no account: a key of nobody is no use to keep
        raise
    show_outcome(created, fmt, f"Created service account: {name}")
    click.echo(f"Its private key is in {generate_key}; log in with: dispatch login "
               f"--service-account {name} --jwt-private-key {generate_key}", err=True)


@iam_create.command("policy")
@click.argument("name")
@click.option("-s", "--subject", "subjects", multiple=True, required=True,
              help="Who: a service account, a user's email (repeat, or a,b).")
@click.option("-r", "--resource", "resources", multiple=True, required=True,
              help="On what: function, runs, image, secret, iam… or * (repeat, or a,b).")
@click.option("-a", "--action", "actions", multiple=True, required=True,
              help="To do what: get, create, update, delete or * (repeat, or a,b).")
@click.option("--global", "global_", is_flag=True,
              help="Apply in every organization (needs a global policy allowing it).")
@options.global_options()
@click.pass_context
def create_policy(ctx: click.Context, name: str, subjects: tuple[str, ...],
                  resources: tuple[str, ...], actions: tuple[str, ...],
                  global_: bool) -> None:
    """Create policy NAME: SUBJECTS may do ACTIONS on RESOURCES."""
    rule = {"subjects": split_list(subjects, "--subject"),
            "resources": split_list(resources, "--resource"),
            "actions": split_list(actions, "--action")}
    body = {"name": name, "rules": [rule], "global": global_}
    created = options.client(ctx).create_iam("policy", body)
    show_outcome(created, options.output_format(ctx), f"Created policy: {name}")


# ---- get ----------------------------------------------------------------------------

def _getter(kind: str, wide_help: str | None = None):
    @click.argument("name", required=False)
    @options.global_options()
    @click.pass_context
    def command(ctx: click.Context, name: str | None, wide: bool = False) -> None:
        client = options.client(ctx)
        data = client.get_iam(kind, name) if name else client.list_iam(kind)
        columns = COLUMNS[kind] + ((POLICY_RULES,) if wide else ())
        show(data, options.output_format(ctx), columns)

    command.__doc__ = f"Show {TITLES[kind]} NAME, or every one."
    if wide_help:
        command = click.option("-w", "--wide", "wide", is_flag=True, help=wide_help)(command)
    return iam_get.command(kind)(command)


_getter("organization")
_getter("serviceaccount")
_getter("policy", wide_help="Show each policy's rules too.")


# ---- delete -------------------------------------------------------------------------

def _deleter(kind: str):
    @click.argument("name")
    @options.global_options()
    @click.pass_context
    def command(ctx: click.Context, name: str) -> None:
        deleted = options.client(ctx).delete_iam(kind, name)
        show_outcome(deleted or {"name": name}, options.output_format(ctx),
                     f"Deleted {TITLES[kind]}: {name}")

    command.__doc__ = f"Delete {TITLES[kind]} NAME."
    return iam_delete.command(kind)(command)


for _kind in TITLES:
    _deleter(_kind)


# ---- keys and lists -----------------------------------------------------------------

def read_public_key(path: str) -> str:
    """The base64 of the PEM in ``path`` if it holds an RSA public key; a
    ClickException naming the file and the problem otherwise."""
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as exc:
        raise click.ClickException(
            f"cannot read public key file {path}: {exc.strerror or exc}") from None
    if b"PRIVATE KEY" in pem:
        # never send a private key anywhere, not even by mistake
        raise click.ClickException(
            f"{path} holds a private key: give its public half "
            f"(openssl rsa -in {path} -pubout -out {path}.pub)")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise click.ClickException(f"{path} is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise click.ClickException(f"{path} is not an RSA public key; service accounts "
                                   "use RSA keys")
    return base64.b64encode(pem.strip() + b"\n").decode("ascii")


def new_key_pair(path: str) -> str:
    """Write a new RSA private key to ``path`` (created 0600, never replacing a file);
    the base64 of its public key's PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=GENERATED_KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{path} exists already: give a new file for the "
                                   "private key") from None
    except OSError as exc:
        raise click.ClickException(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(public).decode("ascii")


def split_list(values: Iterable[str], option: str) -> list[str]:
    """Repeated and comma-separated values, in order, without blanks or repeats."""
    found: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if item and item not in found:
                found.append(item)
    if not found:
        raise click.UsageError(f"{option} needs a value")
    return found
