"""Bearer access tokens of OpenID Connect providers, verified locally.

Several providers may be trusted at once, each mapped to one organization: a token of
issuer ``I`` authenticates a user of the organization configured for ``I``, never of
another. Configuration (``DISPATCH_OIDC_ISSUERS``, JSON)::

    [{"issuer": "https://login.example.com", "audience": "urn:dispatch:api",
      "organization": "default", "jwks_uri": "https://…/jwks"}]   # jwks_uri optional

Without ``jwks_uri`` the provider's discovery document
(``<issuer>/.well-known/openid-configuration``) names it; it is fetched on the first
token of that issuer, not at start-up, so the API starts while a provider is down.
Keys are cached (PyJWT's :class:`~jwt.PyJWKClient`: the key set for 5 minutes, an
unknown ``kid`` refetches it at most every 30 s), so verification is local.

A token is accepted only if: ``alg`` is asymmetric (never ``none`` or HMAC), ``iss`` is
configured, the signature verifies with the issuer's key named by ``kid``, ``aud``
contains the configured audience, ``exp`` is not past and ``iat``/``nbf`` not in the
future (give or take the leeway), and ``sub`` is present. The principal's subject is
the ``email`` claim when there is one (and ``email_verified`` is not false), else
``sub`` — which policies name ``user:<sub>``, so that it never passes for a service
account's name.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from typing import Any, Iterable

import jwt
import requests

from ..errors import InvalidInput, Unavailable
from .errors import BadSignature, MissingClaim, UnknownIssuer, UnsupportedAlgorithm, shown
from .principal import USER, Principal
from .service_accounts import read_unverified, token_error

log = logging.getLogger("dispatch.identity")

#: what providers sign access tokens with; symmetric algorithms are never accepted
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")
LEEWAY_SECONDS = 30
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclasses.dataclass(frozen=True)
class OidcIssuer:
    """One trusted provider: tokens from ``issuer`` for ``audience`` authenticate users
    of ``organization``."""

    issuer: str
    audience: str
    organization: str
    jwks_uri: str | None = None


def parse_issuers(config: str | Iterable[dict[str, Any]] | None) -> list[OidcIssuer]:
    """The trusted providers from their configuration (JSON text or a list of objects);
    InvalidInput naming the entry and field at fault."""
    if config is None or config == "":
        return []
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise InvalidInput(f"OIDC issuers are not valid JSON: {exc}") from None
    if not isinstance(config, list):
        raise InvalidInput("OIDC issuers must be a list of {issuer, audience, organization}")
    issuers, seen = [], set()
    for i, entry in enumerate(config):
        if not isinstance(entry, dict):
            raise InvalidInput(f"OIDC issuers[{i}] must be an object")
        for field in ("issuer", "audience", "organization"):
            if not isinstance(entry.get(field), str) or not entry[field]:
                raise InvalidInput(f"OIDC issuers[{i}].{field} is required")
        if not entry["issuer"].startswith(("https://", "http://")):
            raise InvalidInput(f"OIDC issuers[{i}].issuer must be an http(s) URL")
        if entry["issuer"] in seen:
            raise InvalidInput(f"OIDC issuers[{i}].issuer {entry['issuer']} is listed twice")
        seen.add(entry["issuer"])
        unknown = set(entry) - {f.name for f in dataclasses.fields(OidcIssuer)}
        if unknown:
            raise InvalidInput(f"OIDC issuers[{i}] has unknown fields: {', '.join(sorted(unknown))}")
        issuers.append(OidcIssuer(**entry))
    return issuers


def is_oidc_issuer(issuer: Any) -> bool:
    """Whether an ``iss`` claim is a provider's (a URL), not a service account's."""
    return isinstance(issuer, str) and issuer.startswith(("https://", "http://"))


class OidcVerifier:
    """Verifies providers' access tokens against their published keys.

    :param timeout: seconds for fetching a discovery document or a key set.
    """

    def __init__(self, issuers: Iterable[OidcIssuer], leeway: int = LEEWAY_SECONDS,
                 timeout: float = 5):
        self.issuers = {i.issuer: i for i in issuers}
        self.leeway, self.timeout = leeway, timeout
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._lock = threading.Lock()

    def handles(self, issuer: Any) -> bool:
        return issuer in self.issuers

    def verify(self, token: str) -> Principal:
        """The user the provider vouches for; an Unauthenticated subclass saying why not
        (never quoting the token); Unavailable if the provider's keys cannot be read."""
        header, claims = read_unverified(token)
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise MissingClaim("token has no iss claim")
        config = self.issuers.get(issuer)
        if config is None:
            raise UnknownIssuer(f"token issuer {shown(issuer)} is not a trusted OIDC provider")
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise UnsupportedAlgorithm(
                f"token algorithm {shown(algorithm)} is not accepted for {issuer}")
        key = self._signing_key(config, token)
        try:
            verified = jwt.decode(
                token, key, algorithms=[algorithm], audience=config.audience,
                issuer=config.issuer, leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise token_error(exc, issuer) from None
        # an address the provider says it has not verified names nobody
        email = verified.get("email") if verified.get("email_verified") is not False else None
        subject = email or verified["sub"]
        if not isinstance(subject, str) or not subject:
            raise MissingClaim(f"token of {issuer} names no subject (sub or email)")
        return Principal(config.organization, subject, USER)

    def _signing_key(self, config: OidcIssuer, token: str) -> jwt.PyJWK:
        client = self._client(config)
        try:
            return client.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("oidc.keys_unavailable issuer=%s error=%s", config.issuer, exc)
            raise Unavailable(f"the keys of OIDC provider {config.issuer} cannot be read") from None
        except jwt.PyJWKClientError:
            raise BadSignature(f"no key of {config.issuer} matches the token (kid)") from None
        except jwt.PyJWTError:
            raise BadSignature(f"the token's key id is malformed for {config.issuer}") from None

    def _client(self, config: OidcIssuer) -> jwt.PyJWKClient:
        with self._lock:
            client = self._clients.get(config.issuer)
        if client is None:
            # outside the lock: discovery is a network call; two threads may both do it
            jwks_uri = config.jwks_uri or self._discover(config.issuer)
            client = jwt.PyJWKClient(jwks_uri, cache_jwk_set=True, lifespan=300,
                                     timeout=self.timeout)
            with self._lock:
                client = self._clients.setdefault(config.issuer, client)
        return client

    def _discover(self, issuer: str) -> str:
        url = issuer.rstrip("/") + DISCOVERY_PATH
        try:
            response = requests.get(url, timeout=self.timeout)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            log.warning("oidc.discovery_failed issuer=%s error=%s", issuer, exc)
            raise Unavailable(f"OIDC provider {issuer} does not answer its discovery "
                              f"document ({url})") from None
        # OpenID Connect Discovery §4.3: the document must name the issuer it was
        # fetched for, or a look-alike could hand out its own keys
        if document.get("issuer") != issuer or not document.get("jwks_uri"):
            raise Unavailable(f"OIDC provider {issuer}: its discovery document names "
                              f"issuer {document.get('issuer')!r} or no jwks_uri")
        log.info("oidc.discovered issuer=%s jwks_uri=%s", issuer, document["jwks_uri"])
        return document["jwks_uri"]
