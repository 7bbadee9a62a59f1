"""The key that encrypts secrets at rest, loaded once at start-up.

Where the key comes from:

* ``DISPATCH_SECRET_KEY``, when set: one Fernet key (32 url-safe base64-encoded bytes),
  or a comma-separated list of them for rotation. The first key encrypts; every key in
  the list decrypts, so a new key can be put first while secrets written under the old
  one still read (:meth:`engine.services.secrets.SecretService.rotate` then re-encrypts
  them, after which the old key can be dropped).
* Unset, on a store that only this host can reach (SQLite, memory): the embedded system
  keeps its own key in ``$DISPATCH_HOME/secret.key`` (mode 0600), generated on first
  start and reused ever after. The memory store, which forgets everything at exit, gets
  a key that is never written down.
* Unset, on etcd: a start-up error. Each api, worker and scheduler process would
  otherwise invent its own key, and none could read what another had written.

Keys never appear in messages, logs or ``repr``.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
import stat
import tempfile

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .settings import Settings

log = logging.getLogger("dispatch.crypto")

ENV_VAR = "DISPATCH_SECRET_KEY"
KEY_FILE = "secret.key"
HOW_TO_MAKE_ONE = (
    "make one with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'"
)


class SecretKeyError(ValueError):
    """The secret key is missing or malformed; the process must not start."""


def load_cipher(settings: Settings) -> MultiFernet:
    """The cipher for ``settings``: from ``DISPATCH_SECRET_KEY``, else as the store allows.

    :raises SecretKeyError: the key is malformed, or missing where it must be given.
    """
    if settings.secret_key:
        return parse_keys(settings.secret_key, ENV_VAR)
    scheme = settings.store_url.partition("://")[0]
    if scheme == "memory":
        return MultiFernet([Fernet(Fernet.generate_key())])
    if scheme != "sqlite":
        raise SecretKeyError(
            f"{ENV_VAR} is required with DISPATCH_STORE={scheme}://…: every api, worker and "
            f"scheduler process must encrypt and decrypt secrets with the same key; "
            f"{HOW_TO_MAKE_ONE}"
        )
    return parse_keys(read_or_create_key_file(os.path.join(settings.home, KEY_FILE)),
                      os.path.join(settings.home, KEY_FILE))


def parse_keys(value: str, source: str) -> MultiFernet:
    """A cipher from a comma-separated list of Fernet keys; the first one encrypts.

    :param source: where the keys came from, for messages (never the keys themselves).
    """
    keys = [k.strip() for k in value.split(",") if k.strip()]
    if not keys:
        raise SecretKeyError(f"{source} holds no key; {HOW_TO_MAKE_ONE}")
    fernets = []
    for position, k in enumerate(keys, 1):
        try:
            fernets.append(Fernet(k))
        except (ValueError, TypeError, binascii.Error):
            which = f"key {position} of {len(keys)}" if len(keys) > 1 else "the key"
            raise SecretKeyError(
                f"{source}: {which} is not a Fernet key (32 url-safe base64-encoded bytes); "
                f"{HOW_TO_MAKE_ONE}"
            ) from None  # the cause's message could quote the key
    return MultiFernet(fernets)


def read_or_create_key_file(path: str) -> str:
    """The key kept at ``path``, generated first if the file does not exist.

    The new key is written to a private temporary file which is then hard-linked into
    place: the link either appears whole or fails because another process won the race,
    in which case that process's key is the one read. The file is never readable by
    anyone but its owner, not even for an instant.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    if not os.path.exists(path):
        fd, temporary = tempfile.mkstemp(prefix=".secret-key-", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(Fernet.generate_key().decode("ascii") + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.link(temporary, path)
            log.info("crypto.key_created path=%s", path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            os.unlink(temporary)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        log.warning("crypto.key_file_exposed path=%s mode=%o (chmod 600 it)", path, mode)
    with open(path, "rb") as f:
        # a damaged file must fail as a bad key (SecretKeyError), not as a decoding error
        return f.read().decode("ascii", "replace")


class Unsealable(ValueError):
    """A sealed value does not open: the key changed (``foreign=False``), or it was sealed
    for another entity and copied here (``foreign=True``)."""

    def __init__(self, foreign: bool):
        super().__init__("sealed for another entity" if foreign else "undecryptable")
        self.foreign = foreign


def seal(cipher: MultiFernet, org: str, name: str, values: dict) -> str:
    """Encrypt ``values`` bound to the entity ``org``/``name`` (secrets' values, event
    drivers' ingest tokens): a token copied onto another entity does not open there."""
    plain = json.dumps({"org": org, "name": name, **values})
    return cipher.encrypt(plain.encode()).decode("ascii")


def unseal(cipher: MultiFernet, token: str, org: str, name: str) -> dict:
    """What :func:`seal` sealed for ``org``/``name`` (without those two).

    :raises Unsealable: the key does not decrypt it, or it belongs to another entity.
    """
    try:
        sealed = json.loads(cipher.decrypt(token.encode()))
    except (InvalidToken, AttributeError, TypeError, ValueError):
        raise Unsealable(foreign=False) from None
    if not isinstance(sealed, dict) or sealed.pop("org", None) != org \
            or sealed.pop("name", None) != name:
        raise Unsealable(foreign=True)
    return sealed
