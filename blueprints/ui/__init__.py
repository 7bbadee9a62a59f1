"""The web UI at ``/ui/``: pages over the same engine services as the REST API.

A family of Flask blueprints under one parent, ``ui``: each module holds one resource's
pages (:mod:`.functions`, :mod:`.runs`, …). What every page shares lives beside them:

* :mod:`.session` — who the browser is (a one-time login link's session, or the OIDC
  browser login of :mod:`api.oidc_login`), the organization it acts in, and the gate
  that asks the identity authorizer about every page as the REST API would about the
  matching ``/v1`` path (a refusal is a "not allowed" page, never another
  organization's data);
* :mod:`.security` — the CSRF token on every form and state-changing request (400
  without it) and the response headers (a strict Content-Security-Policy: no inline
  script or style, static files only);
* :mod:`.live` — server-sent events fed by store watches, which the small script in
  ``static/ui.js`` turns into live updates. Pages are complete HTML without it.

The API's identity gate (:mod:`api.auth`) leaves ``/ui`` to this package: a browser
without a session is sent to the login page (and back after), where the REST API
would answer 401.
"""

from __future__ import annotations

import logging
import secrets as random_secrets

from flask import Blueprint, Flask

from api.oidc_login import COOKIE_NAME

from . import (apis, events, functions, images, live, overview, runs, secrets, security,
               session, workflows)
from .render import register_errors, register_filters

log = logging.getLogger("dispatch.ui")

PREFIX = "/ui"


def register(app: Flask) -> None:
    """Serve the UI from ``app`` (after :func:`api.oidc_login.register`)."""
    settings = app.extensions["dispatch"].settings
    if not app.secret_key:
        secret = settings.session_secret
        if not secret:
            # the UI's sessions then last as long as this process, and each api process
            # has its own: say so, since a login made through one is unknown to another
            secret = random_secrets.token_urlsafe(48)
            log.warning("ui.session_secret_missing: DISPATCH_SESSION_SECRET is not set; "
                        "web UI sessions are valid in this process only")
        app.config.update(SECRET_KEY=secret)
    # the browser login's cookie (api.oidc_login sets the same when it is configured)
    app.config.update(SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax")
    ui = Blueprint("ui", __name__, url_prefix=PREFIX, template_folder="templates",
                   static_folder="static", static_url_path="/static")
    session.install(ui)
    security.install(ui)
    for module in (overview, functions, runs, images, secrets, events, apis, workflows,
                   live):
        ui.register_blueprint(module.bp)
    register_errors(ui)
    register_filters(ui)
    app.register_blueprint(ui)
