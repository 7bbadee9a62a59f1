"""Service accounts: machine identities that sign their own short-lived JWTs.

A service account is a name and an RSA public key (the base64 of its PEM, as Dispatch
stored it). Its client signs an RS256 JWT with the private key, with
``iss = "<org>/<name>"``, ``iat`` and a short ``exp``; :meth:`ServiceAccountService.verify`
checks it locally — no call to anything but a watch-fed cache of the accounts.

What ``verify`` accepts, and nothing else:

* ``alg`` RS256 only (``none``, HMAC — including HMAC keyed with the public key —, and
  every other algorithm are refused before any key is looked at);
* ``iss`` naming an existing account, and a signature by that account's key;
* ``exp`` and ``iat`` present; ``exp`` not past, ``iat``/``nbf`` not in the future,
  both give or take :data:`LEEWAY_SECONDS` of clock skew;
* a lifetime ``exp - iat`` of at most :data:`MAX_LIFETIME_SECONDS` (+ the leeway:
  Dispatch's CLI back-dates ``iat`` by a minute).
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .. import entities as E
from ..store.cache import EntityCache
from ..errors import Conflict, InvalidInput, NotFound
from ..names import is_name, validate_name
from ..store import Store
from .errors import (
    BadSignature, MalformedToken, MissingClaim, LifetimeTooLong, TokenExpired,
    TokenNotYetValid, UnknownIssuer, UnsupportedAlgorithm, WrongAudience, shown,
)
from .organizations import SERVICE_ACCOUNT
from .principal import SERVICE_ACCOUNT as KIND_SERVICE_ACCOUNT, Principal

log = logging.getLogger("dispatch.identity")

ALGORITHM = "RS256"
#: the domain Dispatch gave every service account
DOMAIN = "svc.dispatch.local"
MIN_KEY_BITS = 2048
MAX_LIFETIME_SECONDS = 3600
LEEWAY_SECONDS = 60
#: at most this many verified tokens are remembered (then the memory starts afresh)
MAX_REMEMBERED = 4096
REQUIRED_CLAIMS = ("exp", "iat", "iss")


class ServiceAccountService:
    """Create, read, update and delete service accounts, and verify their tokens.

    :param leeway: seconds of clock skew tolerated on ``exp``, ``iat`` and ``nbf``.
    :param max_lifetime: the longest ``exp - iat`` accepted (plus the leeway).
    """

    def __init__(self, store: Store, leeway: int = LEEWAY_SECONDS,
                 max_lifetime: int = MAX_LIFETIME_SECONDS):
        self.store, self.leeway, self.max_lifetime = store, leeway, max_lifetime
        self._cache: EntityCache | None = None
        #: tokens verified already: token → (exp, org, name, the key that verified it).
        #: Checking a signature (and decoding the token three times) costs ~0.3 ms; a
        #: client sends one token many times. A hit holds only while the account still
        #: has that key and the token has not expired.
        self._verified: dict[str, tuple[float, str, str, str]] = {}

    # ---- entities -------------------------------------------------------------------

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        """Store a new account; InvalidInput naming the field, Conflict if it exists."""
        name = validate_name(spec.get("name"))
        public_key = validate_public_key(spec.get("publicKey"))
        account = E.new(SERVICE_ACCOUNT, org, name, status=E.READY,
                        tags=list(spec.get("tags") or []),
                        publicKey=public_key, domain=spec.get("domain") or DOMAIN,
                        jwtAlgorithm=ALGORITHM)
        account["kind"] = "ServiceAccount"
        try:
            account = self.store.add(account)
        except Conflict:
            raise Conflict(f"service account {name} already exists") from None
        log.info("serviceaccount.created key=%s", E.key_of(account))
        return account

    def get(self, org: str, name: str) -> E.Entity:
        try:
            return self.store.get(SERVICE_ACCOUNT, org, name)
        except NotFound:
            raise NotFound(f"service account {name} not found") from None

    def list(self, org: str) -> list[E.Entity]:
        return self.store.list(SERVICE_ACCOUNT, org)

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace the public key (key rotation) and tags; fields left out are kept.
        Tokens signed by the old key stop verifying once the caches see the change."""
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        fields = {}
        if spec.get("publicKey") is not None:
            fields["publicKey"] = validate_public_key(spec["publicKey"])
        if spec.get("tags") is not None:
            fields["tags"] = list(spec["tags"])
        try:
            account = self.store.modify(SERVICE_ACCOUNT, org, name, lambda a: dict(a, **fields))
        except NotFound:
            raise NotFound(f"service account {name} not found") from None
        log.info("serviceaccount.updated key=%s", E.key_of(account))
        return account

    def delete(self, org: str, name: str) -> None:
        try:
            self.store.delete(SERVICE_ACCOUNT, org, name)
        except NotFound:
            raise NotFound(f"service account {name} not found") from None
        log.info("serviceaccount.deleted key=%s", E.key(SERVICE_ACCOUNT, org, name))

    # ---- tokens ---------------------------------------------------------------------

    def remembered(self, token: str) -> Principal | None:
        """The account of a token :meth:`verify` accepted before, if the account still
        has the key it was verified with and the token has not expired; else None."""
        hit = self._verified.get(token)
        if hit is None:
            return None
        exp, org, name, key = hit
        account = self._cache.get(org, name) if self._cache is not None else None
        if account is None or account.get("publicKey") != key or time.time() > exp + self.leeway:
            self._verified.pop(token, None)
            return None
        return Principal(org, name, KIND_SERVICE_ACCOUNT)

    def verify(self, token: str) -> Principal:
        """The account that signed ``token``; an :class:`Unauthenticated` subclass
        saying why not otherwise (never quoting the token)."""
        principal = self.remembered(token)
        if principal is not None:
            return principal
        header, claims = read_unverified(token)
        if header.get("alg") != ALGORITHM:
            raise UnsupportedAlgorithm(
                f"token algorithm {shown(header.get('alg'))} is not accepted: sign with {ALGORITHM}")
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise MissingClaim("token has no iss claim: set it to <organization>/<service account>")
        org, _, name = issuer.partition("/")
        account = self._account(org, name) if org and name else None
        if account is None:
            raise UnknownIssuer(f"token issuer {shown(issuer)} is no service account")
        try:
            verified = self._decode(token, account)
        except jwt.InvalidSignatureError as exc:
            # the cache may lag a key rotation by the watch's delay: ask the store
            stored = self._stored(org, name)
            if stored is None or stored["publicKey"] == account["publicKey"]:
                raise token_error(exc, issuer) from None
            account = stored
            try:
                verified = self._decode(token, stored)
            except jwt.PyJWTError as retry:
                raise token_error(retry, issuer) from None
        except jwt.PyJWTError as exc:
            raise token_error(exc, issuer) from None
        lifetime = verified["exp"] - verified["iat"]
        if lifetime > self.max_lifetime + self.leeway:
            raise LifetimeTooLong(
                f"token of {issuer} lives {int(lifetime)} s; at most {self.max_lifetime} s "
                "are accepted")
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = (verified["exp"], org, name, account["publicKey"])
        return Principal(org, name, KIND_SERVICE_ACCOUNT)

    def _decode(self, token: str, account: E.Entity) -> dict[str, Any]:
        return jwt.decode(token, _public_key(account["publicKey"]), algorithms=[ALGORITHM],
                          leeway=self.leeway, options={"require": list(REQUIRED_CLAIMS),
                                                       "verify_aud": False})

    def _account(self, org: str, name: str) -> E.Entity | None:
        if self._cache is None:
            self._cache = EntityCache(self.store, SERVICE_ACCOUNT)
        account = self._cache.get(org, name)
        # unknown to the cache: not loaded yet, or created a moment ago
        return account if account is not None else self._stored(org, name)

    def _stored(self, org: str, name: str) -> E.Entity | None:
        if not is_name(org) or not is_name(name):
            return None
        try:
            return self.store.get(SERVICE_ACCOUNT, org, name)
        except NotFound:
            return None

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()


def validate_public_key(value: Any, field: str = "publicKey") -> str:
    """``value`` if it is the base64 of a PEM RSA public key of at least 2048 bits."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} is required: the base64 of an RSA public key in PEM")
    try:
        pem = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        hint = " (it looks like a PEM: base64-encode it)" if "-----BEGIN" in value else ""
        raise InvalidInput(f"{field} is not base64 encoded{hint}") from None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise InvalidInput(f"{field} is not a public key in PEM format") from None
    except Exception:  # cryptography raises UnsupportedAlgorithm for unknown key types
        raise InvalidInput(f"{field} is not a supported public key in PEM format") from None
    if not isinstance(key, RSAPublicKey):
        raise InvalidInput(f"{field} is not an RSA key ({type(key).__name__.lstrip('_')}): "
                           "service accounts sign with RS256")
    if key.key_size < MIN_KEY_BITS:
        raise InvalidInput(f"{field} is a {key.key_size}-bit RSA key; at least "
                           f"{MIN_KEY_BITS} bits are required")
    return "".join(value.split())


@functools.lru_cache(maxsize=1024)
def _public_key(encoded: str) -> RSAPublicKey:
    # parsing a PEM costs more than verifying: keep the parsed keys of recent accounts
    return serialization.load_pem_public_key(base64.b64decode(encoded))


def read_unverified(token: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and claims, NOT verified (to choose the key); MalformedToken."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise MalformedToken("token is not a JWT (expected three dot-separated parts)")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise MalformedToken("token is not a JWT (its header or claims do not decode)") from None
    return header, claims


def token_error(exc: jwt.PyJWTError, issuer: str) -> Exception:
    """The Unauthenticated error for a PyJWT verification failure of ``issuer``'s token."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return TokenExpired(f"token of {issuer} has expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return TokenNotYetValid(f"token of {issuer} is not valid yet (iat or nbf is in the "
                                "future: check the clocks)")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return MissingClaim(f"token of {issuer} has no {exc.claim} claim")
    if isinstance(exc, jwt.InvalidSignatureError):
        return BadSignature(f"token signature does not verify with the key of {issuer}")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return UnsupportedAlgorithm(f"token algorithm is not accepted for {issuer}")
    if isinstance(exc, jwt.InvalidAudienceError):
        return WrongAudience(f"token of {issuer} is not meant for this API (aud)")
    if isinstance(exc, jwt.InvalidIssuerError):
        return UnknownIssuer(f"token issuer is not {issuer}")
    return MalformedToken(f"token of {issuer} is malformed ({type(exc).__name__})")


def issue_token(private_key_pem: bytes | str, org: str, name: str,
                lifetime: int = MAX_LIFETIME_SECONDS, now: float | None = None) -> str:
    """A token for service account ``org/name`` as Dispatch's CLI made it: RS256,
    ``iat`` a minute back (clock skew), ``exp`` ``lifetime`` seconds ahead."""
    now = int(time.time() if now is None else now)
    claims = {"iss": f"{org}/{name}", "iat": now - 60, "exp": now + lifetime}
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM)
