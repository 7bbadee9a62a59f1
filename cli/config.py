"""Which Dispatch server the CLI talks to: the context, resolved from file, env and flags.

The config file keeps the original Dispatch CLI's format, so either CLI can read it::

    {"current": "local",
     "contexts": {"local": {"host": "127.0.0.1", "port": 8080, "scheme": "http",
                            "organization": "default", "cookie": "", "insecure": false,
                            "serviceAccount": "admin",
                            "jwtPrivateKey": "/home/me/.dispatch/admin.key"}}}

Precedence, lowest first: built-in defaults, the file's current context, ``DISPATCH_*``
environment variables, command-line flags.

Credentials, strongest first: a raw bearer ``token`` (never stored), a service account
(``serviceAccount`` + ``jwtPrivateKey``, the *path* of its private key: the key itself is
never copied into the file), a browser-login ``cookie``.

A stored service account belongs to the organization it was logged in under: ``dispatch
login`` and ``dispatch up`` store it qualified (``default/admin``), and an unqualified one
in the file (the original CLI's login writes ``NAME``) is read as ``<the context's
organization>/NAME``. So ``--organization OTHER`` changes the organization a command acts
in, never who signs it. An account given by flag or ``DISPATCH_SERVICE_ACCOUNT`` without
an organization is one of the organization the command acts in, as with Dispatch's CLI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any, Mapping

import click

#: the context name ``dispatch up`` writes
LOCAL_CONTEXT = "local"

#: environment variable of each context field (the original CLI's names)
ENV_VARS = {
    "host": "DISPATCH_HOST",
    "port": "DISPATCH_PORT",
    "scheme": "DISPATCH_SCHEME",
    "organization": "DISPATCH_ORGANIZATION",
    "insecure": "DISPATCH_INSECURE",
    "token": "DISPATCH_TOKEN",
    "service_account": "DISPATCH_SERVICE_ACCOUNT",
    "jwt_private_key": "DISPATCH_JWT_PRIVATE_KEY",
}

#: the fields read from a context in the config file, besides its credentials
FILE_FIELDS = ("host", "port", "scheme", "organization", "insecure")

#: the credentials a context in the file may hold (a token is never stored there): name
#: in :class:`Context` → its key in the file, then the spellings the original CLI wrote
#: (its Go decoder matched keys case-insensitively)
CREDENTIAL_KEYS = {
    "cookie": ("cookie",),
    "service_account": ("serviceAccount", "serviceaccount"),
    "jwt_private_key": ("jwtPrivateKey", "jwtprivatekey"),
}


@dataclasses.dataclass(frozen=True)
class Context:
    """Where and as whom to send requests; defaults fit a local ``dispatch up``."""

    host: str = "127.0.0.1"
    port: int = 8080
    scheme: str = "http"
    organization: str = "default"
    cookie: str = dataclasses.field(default="", repr=False)  # credentials: never printed
    insecure: bool = False
    token: str = dataclasses.field(default="", repr=False)
    #: ``NAME`` (an account of ``organization``) or ``ORG/NAME``
    service_account: str = ""
    #: the path of the service account's RSA private key (PEM)
    jwt_private_key: str = ""

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:8080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # a bare IPv6 address
        return f"{self.scheme}://{host}:{self.port}"


def config_path(flag: str | None = None, env: Mapping[str, str] = os.environ) -> str:
    """The config file: ``--config``, else ``$DISPATCH_CONFIG``, else ``~/.dispatch/config.json``."""
    return flag or env.get("DISPATCH_CONFIG") or os.path.expanduser("~/.dispatch/config.json")


def read_file(path: str) -> dict[str, Any]:
    """The whole config file as a dict; ``{}`` if it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read config file {path}: {exc}") from None
    if not isinstance(document, dict):
        raise click.ClickException(f"config file {path} is not a JSON object")
    return document


def current_context(document: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of the file's current context (``{}`` if none is selected)."""
    contexts = document.get("contexts") or {}
    found = contexts.get(document.get("current") or "")
    return found if isinstance(found, dict) else {}


def resolve(
    flags: Mapping[str, Any],
    env: Mapping[str, str] = os.environ,
    path: str | None = None,
) -> Context:
    """The context to use: defaults < config file < environment < flags.

    ``flags`` maps field names to values, ``None`` meaning "not given". Empty strings in
    the file or the environment count as absent: the original CLI writes them for unset
    fields.
    """
    values: dict[str, Any] = {}
    stored = current_context(read_file(path or config_path(env=env)))
    values.update({k: stored[k] for k in FILE_FIELDS if stored.get(k) not in (None, "")})
    for name, keys in CREDENTIAL_KEYS.items():
        found = next((stored[k] for k in keys if stored.get(k) not in (None, "")), None)
        if found is not None:
            values[name] = str(found)
    if values.get("service_account"):
        values["service_account"] = qualified(values["service_account"],
                                              values.get("organization") or Context.organization)
    values.update({k: env[var] for k, var in ENV_VARS.items() if env.get(var)})
    values.update({k: v for k, v in flags.items() if k in _FIELD_NAMES and v is not None})
    if "port" in values:
        values["port"] = _port(values["port"])
    if "insecure" in values:
        values["insecure"] = _truthy(values["insecure"])
    return Context(**values)


def qualified(service_account: str, organization: str) -> str:
    """``ORG/NAME`` as given, or ``NAME`` as an account of ``organization``."""
    return service_account if "/" in service_account else f"{organization}/{service_account}"


def write_context(path: str, context: Context, name: str = LOCAL_CONTEXT,
                  credentials: bool = False) -> None:
    """Store ``context`` as ``name`` in the config file and make it the current one.

    Other contexts, and fields this CLI does not know (the original's ``namespace``…),
    are kept. A login cookie already there is kept too, unless ``credentials``: then the
    context's own credentials (cookie, service account, key path) replace the stored
    ones, and those it has not are removed.
    """
    document = read_file(path)
    contexts = document.setdefault("contexts", {})
    entry = contexts.setdefault(name, {})
    entry.update(
        host=context.host,
        port=context.port,
        scheme=context.scheme,
        organization=context.organization,
        cookie=entry.get("cookie") or context.cookie,
        insecure=context.insecure,
    )
    if credentials:
        _set_credentials(entry, cookie=context.cookie,
                         service_account=context.service_account,
                         jwt_private_key=context.jwt_private_key)
    document["current"] = name
    _write(path, document)


def write_credentials(path: str, fallback: Context, organization: str | None = None,
                      **credentials: str) -> str:
    """Set credential fields (``cookie``, ``service_account``, ``jwt_private_key``; an
    empty value removes one) of the file's current context; the context's name.

    :param organization: also made the context's organization (a login stores the one
        it logged in under, as the original CLI's did)

    With no current context, ``fallback`` (where the command was pointed) is stored as
    :data:`LOCAL_CONTEXT` first, so that the credentials go with a server.
    """
    document = read_file(path)
    name = document.get("current") or ""
    if not isinstance((document.get("contexts") or {}).get(name), dict):
        write_context(path, fallback)
        document, name = read_file(path), LOCAL_CONTEXT
    if organization:
        document["contexts"][name]["organization"] = organization
    _set_credentials(document["contexts"][name], **credentials)
    _write(path, document)
    return name


def _set_credentials(entry: dict[str, Any], **credentials: str) -> None:
    for field_name, value in credentials.items():
        keys = CREDENTIAL_KEYS[field_name]
        for key in keys[1:]:
            entry.pop(key, None)  # else a logout would leave the old spelling to be read
        if value or field_name == "cookie":  # the original always writes a cookie field
            entry[keys[0]] = value or ""
        else:
            entry.pop(keys[0], None)


def _write(path: str, document: dict[str, Any]) -> None:
    """Replace the file atomically; readable by its owner only (it holds credentials)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=4)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


_FIELD_NAMES = {f.name for f in dataclasses.fields(Context)}


def _port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise click.ClickException(f"port must be a number, not {value!r}") from None
    if not 0 < port < 65536:
        raise click.ClickException(f"port must be between 1 and 65535, not {port}")
    return port


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
