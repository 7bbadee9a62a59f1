"""First start: an organization, an admin service account and its policy.

Two ways, both idempotent (safe on every start, and in several processes at once):

* :func:`bootstrap` (``dispatch up``): creates what is missing; when it creates the
  admin account it generates its RSA key pair and returns the private key — the only
  time it exists outside the caller's file (:func:`write_private_key`).
* :func:`bootstrap_from_key` (the distributed deployment): the admin's public key comes
  from a file named in configuration; if the file holds a new key, the account's key is
  replaced (that is how the admin key is rotated).

The admin is allowed ``*`` on ``*`` by one *global* policy of its organization, which
covers its own organization and every other one (and lets it create organizations and
other global policies).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import entities as E
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision
from ..store import Store
from .organizations import POLICY, SERVICE_ACCOUNT, OrganizationService
from .policies import WILDCARD, PolicyService
from .service_accounts import ServiceAccountService, validate_public_key

log = logging.getLogger("dispatch.identity")

DEFAULT_ORG = "default"
ADMIN = "admin"
ADMIN_POLICY = "admin"
KEY_BITS = 3072


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """What a bootstrap left in place. ``private_key`` (PEM, PKCS#8) is set only when
    this call generated the admin's key pair: it is never stored."""

    org: str
    account: str
    policy: str
    private_key: bytes | None = None


def bootstrap(store: Store, org: str = DEFAULT_ORG, account: str = ADMIN,
              new_key: bool = False) -> Bootstrap:
    """Create ``org``, admin service account ``account`` with a new key pair, and its
    global admin policy — each only if absent.

    :param new_key: give an existing admin account a new key pair too (``dispatch up``
        when its copy of the private key is lost); the old key stops working.
    """
    _ensure_org(store, org)
    private_key = None
    try:
        ServiceAccountService(store).get(org, account)
        exists = True
    except NotFound:
        exists = False
    if not exists or new_key:
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        if exists:
            _replace_key(store, org, account, public_key_of(key))
        elif not _ensure_account(store, org, account, public_key_of(key)):
            key = None  # another process created it first: its key stands, ours is void
        if key is not None:
            private_key = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
    _ensure_policy(store, org, account)
    return Bootstrap(org, account, ADMIN_POLICY, private_key)


def bootstrap_from_key(store: Store, public_key_file: str | os.PathLike,
                       org: str = DEFAULT_ORG, account: str = ADMIN) -> Bootstrap:
    """Like :func:`bootstrap`, with the admin's public key read from a file (PEM, or the
    base64 of a PEM); InvalidInput naming the file if it holds no usable key."""
    path = Path(public_key_file)
    try:
        content = path.read_bytes().strip()
    except OSError as exc:
        raise InvalidInput(f"bootstrap public key file {path}: {exc.strerror}") from None
    encoded = (base64.b64encode(content).decode("ascii") if content.startswith(b"-----BEGIN")
               else content.decode("ascii", "replace"))
    encoded = validate_public_key(encoded, field=f"bootstrap public key file {path}")
    _ensure_org(store, org)
    if not _ensure_account(store, org, account, encoded):
        _replace_key(store, org, account, encoded)
    _ensure_policy(store, org, account)
    return Bootstrap(org, account, ADMIN_POLICY)


def write_private_key(path: str | os.PathLike, private_key: bytes) -> None:
    """Write a private key to a new file only its owner can read (0600 from creation,
    never world-readable for an instant); replaces an existing file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.write(fd, private_key)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def public_key_of(private_key: rsa.RSAPrivateKey) -> str:
    """The base64 of the PEM of ``private_key``'s public half (a service account's
    ``publicKey``)."""
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(pem).decode("ascii")


def _ensure_org(store: Store, org: str) -> None:
    try:
        OrganizationService(store).create({"name": org})
    except Conflict:
        pass  # there already, or another process created it just now


def _ensure_account(store: Store, org: str, account: str, public_key: str) -> bool:
    """Whether this call created the account (False: it existed)."""
    try:
        ServiceAccountService(store).create(org, {"name": account, "publicKey": public_key})
        log.info("bootstrap.account_created key=%s", E.key(SERVICE_ACCOUNT, org, account))
        return True
    except Conflict:
        return False


def _replace_key(store: Store, org: str, account: str, public_key: str) -> None:
    accounts = ServiceAccountService(store)
    for _ in range(5):
        current = accounts.get(org, account)
        if current["publicKey"] == public_key:
            return
        current["publicKey"] = public_key
        try:
            store.update(current)
            log.info("bootstrap.key_replaced key=%s", E.key_of(current))
            return
        except StaleRevision:
            continue  # another process wrote it: read again
    raise Conflict(f"service account {account} keeps changing; bootstrap again")


def _ensure_policy(store: Store, org: str, account: str) -> None:
    rule = {"subjects": [account], "resources": [WILDCARD], "actions": [WILDCARD]}
    try:
        PolicyService(store).create(org, {"name": ADMIN_POLICY, "rules": [rule], "global": True})
        log.info("bootstrap.policy_created key=%s", E.key(POLICY, org, ADMIN_POLICY))
    except Conflict:
        pass  # kept as it is: an operator may have narrowed it on purpose
