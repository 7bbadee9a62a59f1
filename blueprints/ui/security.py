"""CSRF protection and the security headers of every UI response.

Every form carries ``csrf_token`` (and the script sends it as ``X-CSRF-Token``): a random
value kept in the session. A POST without it, or with another session's, is refused with
400 before any view runs. Responses forbid inline script and style, framing and
plugins (the Content-Security-Policy), sniffing and caching of pages.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Blueprint, abort, request, session

CSRF_KEY = "ui_csrf"
CSRF_FIELD, CSRF_HEADER = "csrf_token", "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
))


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get(CSRF_KEY)
    if not token:
        token = session[CSRF_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """400 unless the request carries this session's CSRF token."""
    expected = session.get(CSRF_KEY)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    if not sent:
        abort(400, "the form's security token is missing: reload the page and try again")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        abort(400, "the form's security token is stale (the session changed): reload the "
                   "page and try again")


def install(ui: Blueprint) -> None:
    @ui.before_request
    def csrf():
        if request.method not in SAFE_METHODS:
            check_csrf()

    @ui.after_request
    def headers(response):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "ui.static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # a global, not a context variable: imported macros see globals only
    ui.add_app_template_global(csrf_token, "csrf_token")
