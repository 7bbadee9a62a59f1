"""The request gate: one call per API request, from its method, path, ``Authorization``
header and ``X-Dispatch-Org`` to the principal and the organization it acts in.

The order, as Dispatch's identity manager did it (§7):

1. public paths (health, the OpenAPI document and its UI, event ingestion — drivers
   carry their own token) need nothing;
2. every other path needs a verified bearer token (401 otherwise);
3. the organization is ``X-Dispatch-Org`` when given, else the principal's own, and
   it must exist (403);
4. ``/v1`` paths that name no resource (``/v1/version``) need nothing more;
5. otherwise a policy must allow the principal the method's action on the path's
   resource in that organization (403, logged with subject, resource and action).

Gateway paths (``/<org>/…``) are not gated here: an API's own ``authentication``
decides those.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterable

from ..store import Store
from .authenticator import Authenticator
from .authorizer import Authorizer, action_for, resource_for
from .errors import Forbidden, PermissionDenied, Unauthenticated, shown
from .oidc import OidcIssuer, OidcVerifier
from .organizations import OrganizationService
from .policies import PolicyService
from .principal import Principal
from .service_accounts import ServiceAccountService

log = logging.getLogger("dispatch.identity")

#: paths (and prefixes, ending in "/") that anyone may call
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/",
                "/v1/event/ingest", "/v1/event/ingest/")
#: the principal of every request when authentication is turned off
ANONYMOUS = "anonymous"


@dataclasses.dataclass(frozen=True)
class Access:
    """Who a request comes from (None on a public path) and the organization it acts
    in (None on a public path without ``X-Dispatch-Org``)."""

    principal: Principal | None
    org: str | None


_PUBLIC_EXACT = frozenset(PUBLIC_PATHS)
_PUBLIC_PREFIXES = tuple(p for p in PUBLIC_PATHS if p.endswith("/"))


def is_public(path: str) -> bool:
    return path in _PUBLIC_EXACT or path.startswith(_PUBLIC_PREFIXES)


class AccessControl:
    """The identity services of one process and the gate built on them.

    :param oidc_issuers: trusted OIDC providers (none: service accounts only).
    :param enabled: False turns every check off (every request is ``anonymous`` in the
        organization it names); it is logged loudly, once, and never the default.
    """

    def __init__(self, store: Store, oidc_issuers: Iterable[OidcIssuer] = (),
                 enabled: bool = True):
        self.enabled = enabled
        self.organizations = OrganizationService(store)
        self.service_accounts = ServiceAccountService(store)
        self.policies = PolicyService(store)
        self.authorizer = Authorizer(store)
        issuers = list(oidc_issuers)
        self.authenticator = Authenticator(self.service_accounts,
                                           OidcVerifier(issuers) if issuers else None)
        if not enabled:
            log.warning("auth.DISABLED: every request is allowed, in any organization, "
                        "without credentials; do not run this way outside a sandbox")

    def check(self, method: str, path: str, authorization: str | None,
              org: str | None = None) -> Access:
        """Gate one request (see the module's docstring for the order).

        :raises Unauthenticated: no valid token (401).
        :raises UnknownOrganization: the organization does not exist (403).
        :raises PermissionDenied: no policy allows it (403).
        """
        return self._gate(method, path, org,
                          lambda: self.authenticator.authenticate(authorization))

    def check_principal(self, principal: Principal, method: str, path: str,
                        org: str | None = None) -> Access:
        """Gate one request of a caller authenticated otherwise (a browser session):
        as :meth:`check`, steps 3 to 5."""
        return self._gate(method, path, org, lambda: principal)

    def acts_globally(self, principal: Principal | None, resource: str, action: str) -> bool:
        """Whether a global policy of the principal's organization allows ``action`` on
        ``resource`` in every organization (always, with authentication off)."""
        return not self.enabled or bool(
            self.authorizer.check_global(principal, resource, action))

    def require_global(self, principal: Principal | None, resource: str, action: str) -> None:
        """PermissionDenied (403) unless :meth:`acts_globally`: what reaches beyond one
        organization (creating organizations, granting global policies) needs it."""
        if self.enabled:
            self.authorizer.check_global(principal, resource, action).enforce()

    def _gate(self, method: str, path: str, org: str | None,
              authenticate: Callable[[], Principal]) -> Access:
        if is_public(path):
            return Access(None, org)
        if not self.enabled:
            target = org or "default"
            return Access(Principal(target, ANONYMOUS, ANONYMOUS), target)
        principal = None
        resource, action = resource_for(path), action_for(method)
        try:
            principal = authenticate()
            target = self.organizations.require(org or principal.org)
            if resource is None:
                return Access(principal, target)
            if action is None:
                raise PermissionDenied(f"method {method} is not allowed on {path}")
            self.authorizer.check(principal, resource, action, target).enforce()
            return Access(principal, target)
        except (Unauthenticated, Forbidden) as exc:
            # one line per refused request; messages never quote tokens
            log.warning("access.denied error=%s subject=%s subject_org=%s org=%s "
                        "resource=%s action=%s path=%s reason=%s", type(exc).__name__,
                        principal.policy_subject if principal else "-",
                        principal.org if principal else "-", shown(org) if org else "-",
                        resource or "-", action or method, shown(path), exc.message)
            raise

    def close(self) -> None:
        for part in (self.organizations, self.service_accounts, self.authorizer):
            part.close()
