"""From an ``Authorization`` header to a :class:`Principal`.

A bearer token is routed by its (unverified) issuer: an ``http(s)://`` issuer is an
OIDC provider's, anything else is ``<org>/<service account>``. The token is then fully
verified by that side; the issuer only chooses whose key to check it against.
"""

from __future__ import annotations

import logging

from .errors import MissingCredentials, Unauthenticated
from .oidc import OidcVerifier, is_oidc_issuer
from .principal import Principal
from .service_accounts import ServiceAccountService, read_unverified

log = logging.getLogger("dispatch.identity")


class Authenticator:
    """Verifies bearer tokens of service accounts and, if configured, OIDC providers."""

    def __init__(self, service_accounts: ServiceAccountService,
                 oidc: OidcVerifier | None = None):
        self.service_accounts, self.oidc = service_accounts, oidc

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller named by an ``Authorization`` header value; Unauthenticated (401)
        with the reason otherwise. Failures are logged without the token."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if not scheme:
            raise MissingCredentials("authentication required: send Authorization: Bearer <token>")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingCredentials("only Authorization: Bearer <token> is accepted")
        return self.verify(token.strip())

    def verify(self, token: str) -> Principal:
        principal = self.service_accounts.remembered(token)
        if principal is not None:
            return principal
        try:
            _, claims = read_unverified(token)
            if is_oidc_issuer(claims.get("iss")) and self.oidc is not None:
                principal = self.oidc.verify(token)
            else:
                principal = self.service_accounts.verify(token)
        except Unauthenticated as exc:
            log.warning("auth.rejected reason=%s message=%s", type(exc).__name__, exc.message)
            raise
        return principal
