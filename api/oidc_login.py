"""Browser login with OpenID Connect (flask-oidc), and the CLI's hand-over of the session.

Configured by ``DISPATCH_OIDC_CLIENT`` (JSON)::

    {"issuer": "https://login.example.com", "client_id": "dispatch",
     "client_secret": "…", "organization": "default",
     "redirect_uri": "https://dispatch.example.com/oidc/authorize",   # optional
     "scopes": "openid email",                                        # optional
     "token_endpoint_auth_method": "client_secret_basic"}             # optional

and ``DISPATCH_SESSION_SECRET`` (signs the session cookie; required with a client).
Without a client, ``/oidc/login`` and ``/v1/iam/redirect`` answer 404 saying so.

Routes (answered before the API's identity gate: they are how one gets an identity):

* ``GET /oidc/login?next=PATH`` starts the authorization-code flow (with PKCE, state
  and nonce) at the provider; ``next`` must be a path on this server (400 otherwise,
  so the login cannot be turned into an open redirect).
* ``GET /oidc/authorize`` is the callback (flask-oidc's): it exchanges the code,
  verifies the ID token, reads the profile from userinfo into the session and
  redirects to ``next``. Register ``<api>/oidc/authorize`` at the provider.
* ``GET /oidc/logout?next=PATH`` forgets the session.
* ``GET /v1/iam/redirect?redirect=URL`` (Dispatch's, for ``dispatch login``): ``URL``
  must be a loopback ``http://127.0.0.1:<port>/…`` or ``http://localhost:<port>/…``
  (400 otherwise: the session never leaves this machine's CLI); logged in → 302 to
  ``URL?cookie=<name>=<value>``; not logged in → 302 to the login, back here after.

Every other request whose session holds a profile gets ``g.session_principal`` =
``Principal(<the client's organization>, <email, or sub>, "user")``, which the identity
gate (:mod:`api.auth`) uses when no ``Authorization`` header is sent. The email counts
only when the provider does not say it is unverified; a sub-only user is ``user:<sub>``
to policies. A session lasts as long as the provider's access token (refreshed when the
provider gave a refresh token), at most :data:`SESSION_HOURS`; then it is dropped and
the API answers 401.

The session is Flask's signed cookie ``dispatch_session``: HttpOnly, SameSite=Lax,
Secure on HTTPS requests. It is signed, not encrypted: it holds the user's own tokens
from the provider, so it is a credential (the CLI stores it as one).

Bearer access tokens of a provider are a separate, explicit trust: list the provider
in ``DISPATCH_OIDC_ISSUERS`` with the audience its access tokens carry. The login
client is not trusted for bearer tokens implicitly, because no audience is configured
for it and accepting any audience would accept tokens minted for other applications.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from typing import Any, Callable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from flask import Flask, current_app, g, redirect, request, session
from flask.sessions import SecureCookieSessionInterface

from engine.names import validate_name
from engine.errors import InvalidInput
from engine.identity.oidc import parse_issuers
from engine.identity.principal import USER, Principal

from .errors import error_response

log = logging.getLogger("dispatch.oidc")

PREFIX = "/oidc"
REDIRECT_PATH = "/v1/iam/redirect"
COOKIE_NAME = "dispatch_session"
SESSION_HOURS = 12
#: hosts ``/v1/iam/redirect`` hands a session to: this machine's CLI only
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
#: session keys flask-oidc keeps the login in
TOKEN_KEY, PROFILE_KEY = "oidc_auth_token", "oidc_auth_profile"
NOT_CONFIGURED = ("browser login is not configured on this server "
                  "(set DISPATCH_OIDC_CLIENT and DISPATCH_SESSION_SECRET)")


@dataclasses.dataclass(frozen=True)
class OidcClient:
    """The provider and this server's client registration at it."""

    issuer: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    organization: str
    redirect_uri: str | None = None
    scopes: str = "openid email"
    token_endpoint_auth_method: str = "client_secret_basic"


def parse_client(config: str | dict | None) -> OidcClient | None:
    """The login client from ``DISPATCH_OIDC_CLIENT`` (JSON text or an object), None if
    unset; InvalidInput naming the field at fault."""
    if not config:
        return None
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise InvalidInput(f"DISPATCH_OIDC_CLIENT is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InvalidInput("DISPATCH_OIDC_CLIENT must be an object {issuer, client_id, "
                           "client_secret, organization}")
    known = {f.name for f in dataclasses.fields(OidcClient)}
    unknown = set(config) - known
    if unknown:
        raise InvalidInput(f"DISPATCH_OIDC_CLIENT has unknown fields: {', '.join(sorted(unknown))}")
    for field in ("issuer", "client_id", "client_secret", "organization"):
        if not isinstance(config.get(field), str) or not config[field]:
            raise InvalidInput(f"DISPATCH_OIDC_CLIENT.{field} is required (a string)")
    for field in ("redirect_uri", "scopes", "token_endpoint_auth_method"):
        if field in config and not isinstance(config[field], str):
            raise InvalidInput(f"DISPATCH_OIDC_CLIENT.{field} must be a string")
    if not config["issuer"].startswith(("https://", "http://")):
        raise InvalidInput("DISPATCH_OIDC_CLIENT.issuer must be an http(s) URL")
    validate_name(config["organization"], "DISPATCH_OIDC_CLIENT.organization")
    if "openid" not in config.get("scopes", "openid").split():
        raise InvalidInput("DISPATCH_OIDC_CLIENT.scopes must include openid")
    return OidcClient(**config)


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this server; InvalidInput otherwise. Refuses what
    browsers would take to another origin: a scheme or host, ``//host``, backslashes,
    control characters."""
    if value is None or value == "":
        return default
    parts = urlsplit(value)
    if (parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//")
            or "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7f for c in value)
            or len(value) > 2048):
        raise InvalidInput("next must be a path on this server (starting with a single /)")
    return value


def loopback_url(value: str | None) -> str:
    """``value`` if it is a loopback ``http://127.0.0.1[:port]/…`` or
    ``http://localhost[:port]/…`` URL; InvalidInput otherwise."""
    if not value:
        raise InvalidInput("redirect is required: the CLI's local URL to hand the "
                           "session to")
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise InvalidInput("redirect has a malformed port") from None
    if (parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS
            or "@" in parts.netloc or "\\" in value):
        raise InvalidInput("redirect must be a loopback URL (http://127.0.0.1:<port>/… or "
                           "http://localhost:<port>/…): the session is only handed to the "
                           "CLI on this machine")
    return value


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query), fragment=""))


def principal_of(profile: Any, token: Any, organization: str) -> Principal | None:
    """The user a session's profile names, or None when it names nobody (no subject, or
    a userinfo ``sub`` that differs from the ID token's)."""
    if not isinstance(profile, dict):
        return None
    sub = profile.get("sub")
    id_claims = token.get("userinfo") if isinstance(token, dict) else None
    if isinstance(id_claims, dict) and id_claims.get("sub") not in (None, sub):
        return None  # OpenID Connect Core §5.3.2: userinfo must be the ID token's user
    email = profile.get("email") if profile.get("email_verified") is not False else None
    subject = email or sub
    if not isinstance(subject, str) or not subject:
        return None
    return Principal(organization, subject, USER)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def register(app: Flask) -> None:
    """Add browser login to ``app`` (call before the identity gate registers)."""
    system = app.extensions["dispatch"]
    settings = system.settings
    client = parse_client(settings.oidc_client)
    if client is None:
        _register_not_configured(app)
        return
    if not settings.session_secret:
        raise InvalidInput("DISPATCH_SESSION_SECRET is required with DISPATCH_OIDC_CLIENT "
                           "(it signs the login sessions; give every api process the same)")
    for issuer in parse_issuers(settings.oidc_issuers):
        if issuer.issuer == client.issuer and issuer.organization != client.organization:
            log.warning("oidc.organization_mismatch issuer=%s login_org=%s bearer_org=%s",
                        client.issuer, client.organization, issuer.organization)
    from flask_oidc import OpenIDConnect

    app.config.update(
        SECRET_KEY=settings.session_secret,
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=datetime.timedelta(hours=SESSION_HOURS),
        OIDC_CLIENT_SECRETS={"web": {"issuer": client.issuer, "client_id": client.client_id,
                                     "client_secret": client.client_secret}},
        OIDC_SCOPES=client.scopes,
        OIDC_OVERWRITE_REDIRECT_URI=client.redirect_uri,
        OIDC_INTROSPECTION_AUTH_METHOD=client.token_endpoint_auth_method,
    )
    app.session_interface = SessionInterface()
    extension = OpenIDConnect(app, prefix=PREFIX)
    extension.oauth.oidc.client_kwargs["code_challenge_method"] = "S256"  # PKCE too
    # first of all hooks: flask-oidc's own would answer an expired session with a
    # redirect to the logout page, where an API client needs a 401
    app.before_request_funcs.setdefault(None, []).insert(
        0, lambda: _drop_expired_session(extension))
    login = app.view_functions["oidc_auth.login"]
    app.view_functions["oidc_auth.login"] = lambda: _login(login)
    app.view_functions["oidc_auth.logout"] = _logout
    app.add_url_rule(REDIRECT_PATH, "oidc_redirect", _redirect)
    own = {"oidc_auth.login", "oidc_auth.authorize", "oidc_auth.logout", "oidc_redirect"}

    @app.before_request
    def session_principal():
        principal = principal_of(session.get(PROFILE_KEY), session.get(TOKEN_KEY),
                                 client.organization)
        if principal is not None:
            g.session_principal = principal
        if request.endpoint in own:
            # the way to an identity needs none: answer before the identity gate
            return app.view_functions[request.endpoint](**(request.view_args or {}))
        return None

    log.info("oidc.login_enabled issuer=%s client_id=%s organization=%s", client.issuer,
             client.client_id, client.organization)


def _register_not_configured(app: Flask) -> None:
    def not_configured(**_):
        return error_response(404, NOT_CONFIGURED)

    app.add_url_rule(f"{PREFIX}/<path:rest>", "oidc_not_configured", not_configured)
    app.add_url_rule(REDIRECT_PATH, "oidc_redirect", not_configured)

    @app.before_request
    def answer_before_the_gate():
        if request.endpoint in ("oidc_not_configured", "oidc_redirect"):
            return not_configured()
        return None


def _drop_expired_session(extension) -> None:
    """Refresh an expired provider token if the provider gave a refresh token; drop the
    session otherwise (or if the provider cannot be reached)."""
    token = session.get(TOKEN_KEY)
    if not token:
        return
    from authlib.oauth2.rfc6749 import OAuth2Token

    token = OAuth2Token.from_dict(token)
    if not token.is_expired(leeway=60):
        return
    try:
        extension.ensure_active_token(token)  # stores a refreshed token in the session
        return
    except Exception as exc:  # noqa: BLE001 - any failure ends the session, never a 500
        log.info("oidc.session_expired reason=%s", type(exc).__name__)
    session.pop(TOKEN_KEY, None)
    session.pop(PROFILE_KEY, None)


def _login(flask_oidc_login: Callable):
    try:
        target = safe_next(request.args.get("next"))
    except InvalidInput as exc:
        return error_response(400, exc.message)
    response = flask_oidc_login()
    # flask-oidc's own check lets "//host/…" through; ours is the one that counts
    session["next"] = target
    return response


def _logout():
    try:
        target = safe_next(request.args.get("next"))
    except InvalidInput as exc:
        return error_response(400, exc.message)
    principal = g.get("session_principal")
    session.clear()
    log.info("oidc.logout subject=%s", principal.policy_subject if principal else "-")
    return redirect(target)


def _redirect():
    """Dispatch's ``/v1/iam/redirect``: hand the session to the CLI's local listener."""
    try:
        target = loopback_url(request.args.get("redirect"))
    except InvalidInput as exc:
        return error_response(400, exc.message)
    if g.get("session_principal") is None:
        here = request.full_path.rstrip("?")
        return redirect(f"{PREFIX}/login?next={quote(here, safe='')}")
    # the session as it is now (a refresh may have renewed it during this request)
    value = current_app.session_interface.get_signing_serializer(current_app).dumps(
        dict(session))
    log.info("oidc.session_handed subject=%s to=%s", g.session_principal.policy_subject,
             urlsplit(target).netloc)
    response = redirect(with_query(target, cookie=f"{COOKIE_NAME}={value}"))
    response.headers["Cache-Control"] = "no-store"  # a credential in the Location
    return response
