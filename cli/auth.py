"""How the CLI proves who it is: a service account's self-signed JWT, a raw bearer token,
or a browser-login cookie (see :mod:`cli.config` for which wins).

A service account's token is made as Dispatch's CLI made it — RS256, ``iss`` =
``<org>/<account>``, ``iat`` a minute back for clock skew — but lives minutes, not an
hour: it is signed again shortly before it expires, so a long command (a blocking run, a
build being waited for) never sends a stale one.
"""

from __future__ import annotations

import os
import time

import click
import jwt
import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from .config import qualified

ALGORITHM = "RS256"
#: seconds a token is valid for (the server accepts at most an hour)
LIFETIME_SECONDS = 600
#: a token with less than this left is signed again before a request
RENEW_SECONDS = 120
#: Dispatch's CLI back-dated ``iat`` by a minute, for clocks a little ahead of the server's
BACKDATE_SECONDS = 60

#: what to do about a 401, appended to the server's message
LOGIN_HINT = ("Log in with `dispatch login` (browser) or `dispatch login --service-account "
              "NAME --jwt-private-key FILE`.")


def load_private_key(path: str) -> bytes:
    """The PEM in ``path`` if it is an unencrypted RSA private key; a ClickException
    naming the file and the problem otherwise."""
    path = os.path.expanduser(path)
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as exc:
        raise click.ClickException(
            f"cannot read JWT private key file {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # the key is encrypted: there is no way to ask for its passphrase
        raise click.ClickException(
            f"JWT private key file {path} is encrypted; give an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        what = ("a public key, not the private one" if b"PUBLIC KEY" in pem
                else "not a PEM private key")
        raise click.ClickException(f"JWT private key file {path} is {what}") from None
    if not isinstance(key, RSAPrivateKey):
        raise click.ClickException(
            f"JWT private key file {path} holds a {type(key).__name__.removeprefix('_')} "
            "key; service accounts use RSA keys")
    return pem


def issuer(service_account: str, organization: str) -> str:
    """``iss`` of a token: ``ORG/NAME`` as given, or ``NAME`` of ``organization``."""
    return qualified(service_account, organization)


class ServiceAccountAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <JWT>``, signed by the service account's private key."""

    def __init__(self, iss: str, private_key_pem: bytes,
                 lifetime: int = LIFETIME_SECONDS):
        self.iss = iss
        self._key = private_key_pem
        self._lifetime = lifetime
        self._token, self._expires = "", 0.0

    def token(self) -> str:
        """A token with at least :data:`RENEW_SECONDS` left, signed anew if needed."""
        now = time.time()
        if self._expires - now < RENEW_SECONDS:
            issued = int(now)
            self._expires = issued + self._lifetime
            self._token = jwt.encode(
                {"iss": self.iss, "iat": issued - BACKDATE_SECONDS, "exp": self._expires},
                self._key, algorithm=ALGORITHM)
        return self._token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request
