"""The gateway's authentication: an API's ``authentication`` enforced before its run.

* ``public`` (the default): anyone may call the API.
* ``bearer``: the request must carry ``Authorization: Bearer <token>`` — a service
  account's RS256 JWT or an access token of a trusted OIDC provider
  (``DISPATCH_OIDC_ISSUERS``), verified locally by the identity's authenticator.
  Missing or invalid: 401 with ``WWW-Authenticate: Bearer`` and the reason (never the
  token). The caller must belong to the API's organization, or a global policy of its
  own organization must allow it ``get`` on ``api`` (Dispatch's resource and action for
  calling an API): 403 otherwise. Denials are logged with subject, resource and action.

A browser session (cookie) does not authenticate a ``bearer`` API: the scheme is the
header. ``bearer`` is enforced even when ``DISPATCH_AUTH=off``: that switch opens the
management API of a sandbox, and must not silently open APIs whose authors asked for a
token. The token never reaches the function (the gateway drops ``Authorization`` from
``httpContext``).
"""

from __future__ import annotations

import logging

from flask import Response, request

from engine import entities as E
from engine.identity.errors import PermissionDenied, Unauthenticated
from engine.identity.principal import Principal
from engine.services.apis import BEARER, PUBLIC
from engine.system import Dispatch

from .. import errors

log = logging.getLogger("dispatch.gateway")

#: what calling an API is, to policies
RESOURCE, ACTION = "api", "get"
#: the challenge of every 401 (RFC 6750)
CHALLENGE = 'Bearer realm="dispatch"'


class GatewayUnauthenticated(Exception):
    """A bearer API called without valid credentials; ``response`` is the 401."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def authenticate(system: Dispatch, api: E.Entity) -> Principal | None:
    """The caller of ``api`` if its authentication asks for one (None for public APIs).

    :raises GatewayUnauthenticated: no valid bearer token (its ``response`` is the 401).
    :raises PermissionDenied: the caller may not call this API (403).
    """
    if (api.get("authentication") or PUBLIC) != BEARER:
        return None
    identity = system.identity
    try:
        principal = identity.authenticator.authenticate(request.headers.get("Authorization"))
    except Unauthenticated as exc:
        log.warning("gateway.unauthenticated api=%s resource=%s action=%s reason=%s",
                    E.key_of(api), RESOURCE, ACTION, type(exc).__name__)
        response = errors.error_response(401, exc.message)
        response.headers["WWW-Authenticate"] = CHALLENGE
        raise GatewayUnauthenticated(response) from None
    org = api["organizationId"]
    # the authorizer logs its own denials (subject, resource, action)
    if principal.org != org and not identity.authorizer.check(principal, RESOURCE, ACTION,
                                                              org).allowed:
        log.warning("gateway.denied api=%s kind=%s subject=%s subject_org=%s resource=%s "
                    "action=%s", E.key_of(api), principal.kind, principal.policy_subject,
                    principal.org, RESOURCE, ACTION)
        raise PermissionDenied(f"{principal} may not call this api: it belongs to another "
                               f"organization, and no global policy of {principal.org} "
                               f"allows {ACTION} on {RESOURCE}")
    log.info("gateway.authenticated api=%s kind=%s subject=%s subject_org=%s",
             E.key_of(api), principal.kind, principal.policy_subject, principal.org)
    return principal
