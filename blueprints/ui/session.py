"""Who the browser is, the organization it acts in, and the gate on every page.

A browser is signed in by either

* a one-time login link (``/ui/login?token=…``, issued by ``dispatch up`` for its
  admin: :class:`engine.identity.login_links.LoginLinks`), which puts the principal in
  the session for :data:`SESSION_HOURS`; or
* the OIDC browser login (``/oidc/login``, :mod:`api.oidc_login`), whose session
  principal the API's own hook puts in ``g.session_principal``.

With authentication off every browser is ``anonymous`` and needs no login. A page
names the REST resource and action it stands for (:func:`allow`); the identity
authorizer decides as it would for ``<METHOD> /v1/<resource>`` in the session's
organization, so the UI enforces exactly the API's policies.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from flask import (Blueprint, abort, current_app, g, redirect, render_template, request,
                   session, url_for)

from api.oidc_login import safe_next
from engine.errors import Forbidden, InvalidInput, Unauthenticated
from engine.identity.access import ANONYMOUS
from engine.identity.authorizer import METHOD_ACTIONS
from engine.identity.login_links import LoginLinks
from engine.names import is_name
from engine.identity.principal import Principal

#: how long a session opened by a login link lasts
SESSION_HOURS = 12
PRINCIPAL_KEY, ORG_KEY, NEXT_KEY = "ui_principal", "ui_org", "ui_next"
#: endpoints open to a browser without a session
OPEN_ENDPOINTS = {"ui.login", "ui.static"}
ACTION_METHODS = {action: method for method, action in reversed(METHOD_ACTIONS.items())}


def system():
    return current_app.extensions["dispatch"]


def login_links() -> LoginLinks:
    links = current_app.extensions.get("dispatch.login_links")
    if links is None:
        links = current_app.extensions["dispatch.login_links"] = LoginLinks(system().store)
    return links


def principal() -> Principal | None:
    """The signed-in principal of this request (set by the gate)."""
    return g.get("ui_principal")


def org() -> str:
    """The organization the pages act in."""
    return g.ui_org


def allow(resource: str, action: str = "get") -> None:
    """Forbidden (a "not allowed" page) unless the identity authorizer lets this
    browser's principal do ``action`` on ``resource`` in the session's organization —
    the check the REST API makes for ``/v1/<resource>``."""
    system().identity.check_principal(principal(), ACTION_METHODS[action],
                                      f"/v1/{resource}", org())


def may(resource: str, action: str = "get") -> bool:
    try:
        allow(resource, action)
        return True
    except Forbidden:
        return False


def visible_orgs() -> list[str]:
    """The organizations this principal may switch to: every one with a global ``iam``
    read, else its own."""
    identity = system().identity
    who = principal()
    if not identity.enabled:
        names = {o["name"] for o in identity.organizations.list()}
        return sorted(names | {org()})
    if identity.acts_globally(who, "iam", "get"):
        return [o["name"] for o in identity.organizations.list()]
    return [who.org]


def _session_principal() -> Principal | None:
    """The principal of the browser's session, None when it has none or it expired."""
    oidc = g.get("session_principal")
    if oidc is not None:
        return oidc
    stored = session.get(PRINCIPAL_KEY)
    if not isinstance(stored, dict):
        return None
    if stored.get("expires", 0) < time.time():
        session.pop(PRINCIPAL_KEY, None)
        session.pop(ORG_KEY, None)
        return None
    return Principal(stored["org"], stored["subject"], stored["kind"])


def install(ui: Blueprint) -> None:
    """Add the login, logout and organization routes and the gate to ``ui``."""

    @ui.before_request
    def gate():
        if request.endpoint in OPEN_ENDPOINTS:
            return None
        if request.method == "GET":
            # read before the page reads anything: its live updates start from here, so
            # no change between this read and the browser's connection is missed
            g.live_after = system().store.revision()
        identity = system().identity
        if not identity.enabled:
            g.ui_principal = Principal(session.get(ORG_KEY) or "default", ANONYMOUS,
                                       ANONYMOUS)
            g.ui_org = session.get(ORG_KEY) or "default"
            return None
        who = _session_principal()
        if who is None:
            if request.headers.get("Accept") == "text/event-stream":
                abort(401)
            target = request.full_path.rstrip("?") if request.method == "GET" else "/ui/"
            return redirect(url_for("ui.login", next=target))
        g.ui_principal = who
        wanted = session.get(ORG_KEY) or who.org
        try:
            g.ui_org = identity.check_principal(who, "GET", "/v1/version", wanted).org
        except Forbidden:
            session.pop(ORG_KEY, None)  # e.g. the organization was deleted meanwhile
            g.ui_org = who.org
        return None

    @ui.route("/login")
    def login():
        try:
            target = safe_next(request.args.get("next"), "/ui/")
        except InvalidInput as exc:
            abort(400, exc.message)
        if not target.startswith("/ui"):
            target = "/ui/"
        token = request.args.get("token")
        if token is not None and request.args.get("next") is None:
            # back to where the browser was sent to log in from (its session expired)
            target = session.get(NEXT_KEY) or target
        if token is not None:
            try:
                who = login_links().redeem(token)
            except Unauthenticated as exc:
                return render_template("ui/login.html", error=exc.message, next=target,
                                       oidc=_oidc_login_url(target)), 401
            session.clear()
            session[PRINCIPAL_KEY] = {"org": who.org, "subject": who.subject,
                                      "kind": who.kind,
                                      "expires": time.time() + SESSION_HOURS * 3600}
            session.permanent = False
            response = redirect(target)
            response.headers["Cache-Control"] = "no-store"
            return response
        if not system().identity.enabled or _session_principal() is not None:
            return redirect(target)
        session[NEXT_KEY] = target
        return render_template("ui/login.html", error=None, next=target,
                               oidc=_oidc_login_url(target))

    @ui.route("/logout", methods=["POST"])
    def logout():
        session.clear()
        if g.get("session_principal") is not None and "oidc_auth.logout" in \
                current_app.view_functions:
            return redirect(f"/oidc/logout?next={quote('/ui/login', safe='')}")
        return redirect(url_for("ui.login"))

    @ui.route("/org", methods=["POST"])
    def switch_org():
        wanted = request.form.get("org", "")
        if not is_name(wanted) or wanted not in visible_orgs():
            abort(403, f"you may not act in organization {wanted!r}")
        session[ORG_KEY] = wanted
        try:
            back = safe_next(request.form.get("next"), "/ui/")
        except InvalidInput:
            back = "/ui/"
        return redirect(back if back.startswith("/ui") else "/ui/")


def _oidc_login_url(target: str) -> str | None:
    """The OIDC browser login, back to ``target`` after; None if not configured."""
    if "oidc_auth.login" not in current_app.view_functions:
        return None
    return f"/oidc/login?next={quote(target, safe='')}"
