"""Secrets: named maps of strings, encrypted at rest, merged into a run's context.

What is stored, and what is shown:

* The store holds a secret's envelope (name, tags, times…) and ``encrypted``: a Fernet
  token of its values, never the values themselves. The token also seals the secret's
  organization and name, so a token copied onto another secret (or another
  organization's) does not decrypt there.
* The API answers with the values (``secrets``) on create, get, list and update, as
  Dispatch's secret store did: its CLI relied on that for ``get secret --all``, and any
  caller allowed to run functions in an organization can read its secrets through a
  function anyway. Hiding them by default is the clients' job: the ``dispatch`` CLI shows
  values only with ``--all``.
* Values never reach logs, run records or error messages: messages name the secret or
  the key at fault, never a value.

A secret has no asynchronous life: it is ``READY`` as soon as it is written.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from cryptography.fernet import MultiFernet

from .. import entities as E
from ..crypto import Unsealable, seal, unseal
from ..errors import DispatchError, InvalidInput, NotFound, StaleRevision
from ..store import Store
from ..names import is_name, validate_name

log = logging.getLogger("dispatch.secrets")

SECRET = "secret"
#: the stored field that holds the Fernet token of the values
ENCRYPTED = "encrypted"


class MissingSecret(InvalidInput):
    """A run names a secret that does not exist; the run pipeline makes it an InputError."""

    def __init__(self, name: Any):
        super().__init__(f"secret {name} not found")
        self.name = name


class UndecryptableSecret(DispatchError):
    """A stored secret does not decrypt with the configured key (the key was changed):
    an internal fault, not the caller's."""


class SecretService:
    """Create, read, update and delete secrets of an organization, and resolve them for runs.

    :param cipher: encrypts with its first key, decrypts with any (see :mod:`engine.crypto`).
    """

    def __init__(self, store: Store, cipher: MultiFernet):
        self.store, self.cipher = store, cipher

    # ---- API side -------------------------------------------------------------------

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        """Store a new secret; Conflict if the name is taken. Returns it with its values."""
        name = validate_name(spec.get("name"))
        values = validate_values(spec.get("secrets"))
        secret = E.new(SECRET, org, name, status=E.READY, tags=list(spec.get("tags") or []))
        secret[ENCRYPTED] = self._seal(org, name, values)
        secret = self.store.add(secret)
        log.info("secret.created key=%s keys=%d", E.key_of(secret), len(values))
        return self._reveal(secret, values)

    def get(self, org: str, name: str) -> E.Entity:
        """The secret with its values; NotFound if absent."""
        return self._reveal(self.store.get(SECRET, org, name))

    def list(self, org: str, tags: dict[str, str] | None = None) -> list[E.Entity]:
        """The organization's secrets with their values, ordered by name."""
        return [self._reveal(s) for s in self.store.list(SECRET, org, tags=tags)]

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace a secret's values and tags.

        ``secrets`` left out (or null) keeps the stored values: a client that shows
        secrets without their values can send back what it shows without wiping them.
        ``tags`` left out keeps the stored tags. StaleRevision if written meanwhile.
        """
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        new_values = None if spec.get("secrets") is None else validate_values(spec["secrets"])

        def change(secret: E.Entity) -> E.Entity:
            if new_values is not None:
                secret[ENCRYPTED] = self._seal(org, name, new_values)
            if spec.get("tags") is not None:
                secret["tags"] = list(spec["tags"])
            return secret

        secret = self.store.modify(SECRET, org, name, change)
        values = self._open(secret) if new_values is None else new_values
        log.info("secret.updated key=%s keys=%d", E.key_of(secret), len(values))
        return self._reveal(secret, values)

    def delete(self, org: str, name: str) -> None:
        """Remove the secret at once (NotFound if absent); functions naming it then fail
        their runs with an InputError, as in Dispatch."""
        self.store.delete(SECRET, org, name)
        log.info("secret.deleted key=%s", E.key(SECRET, org, name))

    # ---- run side -------------------------------------------------------------------

    def resolve(self, org: str, names: Iterable[str]) -> dict[str, str]:
        """The named secrets' values merged in order: a later secret's key wins.

        :raises MissingSecret: the first name with no secret in ``org``.
        """
        merged: dict[str, str] = {}
        seen: dict[str, dict[str, str]] = {}
        for name in names:
            if name not in seen:
                if not is_name(name):
                    raise MissingSecret(name)  # a malformed name cannot exist
                try:
                    seen[name] = self._open(self.store.get(SECRET, org, name))
                except NotFound:
                    raise MissingSecret(name) from None
            merged.update(seen[name])
        return merged

    # ---- operations -----------------------------------------------------------------

    def rotate(self, org: str | None = None) -> int:
        """Re-encrypt every secret (of ``org``, or of every org) with the cipher's first
        key, so that older keys can be retired. Returns how many were rewritten."""
        rewritten = 0
        for secret in self.store.list(SECRET, org):
            self._open(secret)  # proves the token belongs to this secret before rewriting
            secret[ENCRYPTED] = self.cipher.rotate(secret[ENCRYPTED].encode()).decode()
            try:
                self.store.update(secret)
            except (StaleRevision, NotFound):
                continue  # rewritten or deleted meanwhile: under the first key already
            rewritten += 1
        log.info("secret.rotated count=%d", rewritten)
        return rewritten

    # ---- encryption -----------------------------------------------------------------

    def _seal(self, org: str, name: str, values: dict[str, str]) -> str:
        return seal(self.cipher, org, name, {"secrets": values})

    def _open(self, secret: E.Entity) -> dict[str, str]:
        name = secret["name"]
        try:
            return unseal(self.cipher, secret.get(ENCRYPTED), secret["organizationId"],
                          name)["secrets"]
        except Unsealable as exc:
            if exc.foreign:
                raise UndecryptableSecret(f"secret {name} holds another secret's values") from None
            raise UndecryptableSecret(
                f"secret {name} cannot be decrypted with the configured key "
                "(was DISPATCH_SECRET_KEY changed? keep the old key after the new one "
                "until the secrets are rotated)"
            ) from None
        except KeyError:
            raise UndecryptableSecret(f"secret {name} holds another secret's values") from None

    def _reveal(self, secret: E.Entity, values: dict[str, str] | None = None) -> E.Entity:
        """The secret as the API shows it: its values in place of the token."""
        shown = {k: v for k, v in secret.items() if k != ENCRYPTED}
        shown["secrets"] = self._open(secret) if values is None else dict(values)
        return shown


def validate_values(values: Any) -> dict[str, str]:
    """A secret's ``secrets``: an object of string values (absent or null: none).

    Messages name the key at fault, never a value.
    """
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InvalidInput("secrets must be an object mapping names to string values")
    for k, v in values.items():
        if not isinstance(k, str) or not k:
            raise InvalidInput("secrets: every name must be a non-empty string")
        if not isinstance(v, str):
            raise InvalidInput(f"secrets.{k} must be a string")
    return dict(values)
