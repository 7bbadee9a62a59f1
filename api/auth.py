"""Every API request through the identity gate, before any view runs.

:func:`register` adds a ``before_request`` hook that sets ``g.access``
(:class:`~engine.identity.access.Access`: the principal and the organization the
request acts in) from ``Authorization: Bearer …`` and ``X-Dispatch-Org``, or refuses
the request:

* 401 ``{code, message}`` with ``WWW-Authenticate: Bearer`` — no credentials, or a token
  that does not verify (the message says why);
* 403 — an unknown organization, or no policy allowing the action on the resource.

A request without ``Authorization`` whose browser session is known (``g.session_principal``,
set by :mod:`api.oidc_login`'s own hook, registered before this one) is checked as that
principal. The web UI (``/ui``) asks the same authorizer about each page itself
(:mod:`blueprints.ui.session`), so that a browser without a session gets the login page. Refusals are logged by the gate with subject, resource and action, never the
token. The gateway (``/<org>/…``) is a WSGI app of its own: this hook never sees it.
"""

from __future__ import annotations

import logging

from flask import Flask, g, request

from engine.errors import NotFound
from engine.identity.bootstrap import ADMIN, DEFAULT_ORG, bootstrap_from_key
from engine.identity.errors import Forbidden, Unauthenticated

from .context import ORG_HEADER, system
from .errors import error_response

log = logging.getLogger("dispatch.auth")

#: the web UI: same policies, but a browser without a session gets the login page
UI_PREFIX = "/ui"


def register(app: Flask) -> None:
    # built now, not on the first request: "auth is off" is said at start-up
    app.extensions["dispatch"].identity

    @app.before_request
    def authenticate():
        # the request and g looked up once (each use of Flask's proxies looks them up)
        req, flask_g = request._get_current_object(), g._get_current_object()
        path = req.path
        if path == UI_PREFIX or path.startswith(UI_PREFIX + "/"):
            return None  # the web UI's pages gate themselves (blueprints.ui.session)
        identity = system().identity
        authorization = req.headers.get("Authorization")
        org = req.headers.get(ORG_HEADER) or None
        session_principal = flask_g.get("session_principal")
        try:
            if authorization is None and session_principal is not None:
                flask_g.access = identity.check_principal(session_principal, req.method, path, org)
            else:
                flask_g.access = identity.check(req.method, path, authorization, org)
        except Unauthenticated as exc:
            response = error_response(401, exc.message)
            response.headers["WWW-Authenticate"] = (
                'Bearer error="invalid_token"' if authorization else "Bearer")
            return response
        except Forbidden as exc:
            return error_response(403, exc.message)
        return None


def bootstrap_distributed(system) -> None:
    """The distributed ``api`` process's start-up: with auth on, make (or re-key) the
    admin ``default/admin`` from ``DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE`` — idempotent, so
    every api process does it — or say that no admin exists yet. A file without a usable
    key stops start-up (InvalidInput naming the file)."""
    settings = system.settings
    if settings.auth != "on":
        return
    if settings.bootstrap_public_key_file:
        done = bootstrap_from_key(system.store, settings.bootstrap_public_key_file)
        log.info("auth.bootstrapped admin=%s/%s key_file=%s", done.org, done.account,
                 settings.bootstrap_public_key_file)
        return
    try:
        system.identity.service_accounts.get(DEFAULT_ORG, ADMIN)
    except NotFound:
        log.warning("auth.no_admin: no service account %s/%s exists and "
                    "DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE is not set: nobody can use the API "
                    "until an admin is bootstrapped", DEFAULT_ORG, ADMIN)
