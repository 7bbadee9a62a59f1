"""The identity errors: why a caller is not who it claims (each an
:class:`~engine.errors.Unauthenticated`) or may not do something (each an
:class:`~engine.errors.Forbidden`).

Messages name the claim, the issuer or the rule at fault, never the token itself: they
are logged and returned to callers, and a token in a log is a credential in a log.
"""

from __future__ import annotations

from ..errors import Forbidden, Unauthenticated


def shown(value: object, limit: int = 80) -> str:
    """An unverified claim as messages and logs may quote it: repr'd (no line breaks
    can be smuggled into a log line) and cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


class MissingCredentials(Unauthenticated):
    """No ``Authorization: Bearer`` token (nor session) at all."""


class MalformedToken(Unauthenticated):
    """The token is not a JWT (three base64url segments of JSON), or a claim has the
    wrong type."""


class UnsupportedAlgorithm(Unauthenticated):
    """The token's ``alg`` is not an accepted asymmetric one (``none``, ``HS256``…)."""


class BadSignature(Unauthenticated):
    """The signature does not verify with the issuer's key."""


class TokenExpired(Unauthenticated):
    """``exp`` is past (beyond the leeway)."""


class TokenNotYetValid(Unauthenticated):
    """``nbf`` or ``iat`` is in the future (beyond the leeway)."""


class MissingClaim(Unauthenticated):
    """A required claim (``exp``, ``iat``, ``iss``, ``sub``…) is absent."""


class LifetimeTooLong(Unauthenticated):
    """``exp - iat`` exceeds what this issuer may grant."""


class UnknownIssuer(Unauthenticated):
    """``iss`` names no service account and no configured OIDC provider."""


class WrongAudience(Unauthenticated):
    """``aud`` does not name this API."""


class UnknownOrganization(Forbidden):
    """The request addresses an organization that does not exist (Dispatch: 403)."""

    def __init__(self, org: str):
        super().__init__(f"organization {org!r} does not exist")
        self.org = org


class PermissionDenied(Forbidden):
    """No policy allows this subject this action on this resource in this organization."""
