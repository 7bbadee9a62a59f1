"""Identity and multi-tenancy: organizations, service accounts, policies, OIDC.

* :mod:`.organizations` — the tenants, and ``require(org)`` (403 for an unknown one);
* :mod:`.service_accounts` — RSA keys, and RS256 JWTs verified locally;
* :mod:`.oidc` — bearer access tokens of OIDC providers, verified against their JWKS;
* :mod:`.authenticator` — an ``Authorization`` header to a :class:`Principal`;
* :mod:`.policies` / :mod:`.authorizer` — casbin rules, reloaded through a store watch;
* :mod:`.bootstrap` — the first admin;
* :mod:`.access` — :class:`~.access.AccessControl`: all of the above, and the one
  check an API request goes through.

Nothing here imports Flask: ``api/`` calls it once per request.
"""

from .errors import (
    Forbidden, PermissionDenied, Unauthenticated, UnknownOrganization,
)
from .principal import Principal

__all__ = ["Forbidden", "PermissionDenied", "Principal", "Unauthenticated",
           "UnknownOrganization"]
