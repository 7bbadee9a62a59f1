"""Every error leaves the API as Dispatch's ``{code, message}`` body, mapped here once."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from engine import errors as E

from .body import body_limit_message

log = logging.getLogger("dispatch.api")

#: every engine error class → the HTTP status it answers with; a class not listed takes
#: its nearest listed base's (``DispatchError`` itself: an internal fault)
STATUS: dict[type[E.DispatchError], int] = {
    E.InvalidInput: 400,
    E.Unauthenticated: 401,
    E.Forbidden: 403,
    E.NotFound: 404,
    E.MethodNotAllowed: 405,
    E.Conflict: 409,
    E.TooLarge: 413,
    E.UnsupportedMedia: 415,
    E.BuildError: 400,
    E.BehindFailed: 502,
    E.Unavailable: 503,
    E.DeadlineExceeded: 504,
    E.DispatchError: 500,
}
#: a failed run a caller waited on, by its error type (Dispatch's gateway)
RUN_FAILED_STATUS = {"InputError": 400, "FunctionError": 502, "SystemError": 500}


def status_of(exc: E.DispatchError) -> int:
    """The HTTP status of an engine error (see :data:`STATUS`)."""
    if isinstance(exc, E.RunFailed):
        return RUN_FAILED_STATUS.get(exc.kind, 500)
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def dispatch_error_response(exc: E.DispatchError):
    """Dispatch's ``{code, message}`` for an engine error (with ``Allow`` on a 405)."""
    response = error_response(status_of(exc), exc.message)
    if isinstance(exc, E.MethodNotAllowed):
        response.headers["Allow"] = ", ".join(exc.allowed)
    return response


def error_response(code: int, message: str):
    response = jsonify(code=code, message=message)
    response.status_code = code
    return response


def _validation_message(messages) -> str:
    """webargs' nested ``{location: {field: [msgs]}}`` as ``field: msg; …``."""
    parts: list[str] = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            text = " ".join(value) if isinstance(value, list) else str(value)
            parts.append(f"{prefix}: {text}" if prefix else text)

    for location_messages in (messages or {}).values():
        walk("", location_messages)
    return "; ".join(parts) or "invalid request"


def register(app: Flask) -> None:
    @app.errorhandler(E.DispatchError)
    def dispatch_error(exc: E.DispatchError):
        return dispatch_error_response(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        data = getattr(exc, "data", None) or {}
        if exc.code in (400, 422) and data.get("messages"):
            # webargs/marshmallow: bad input is a 400 naming the field
            return error_response(400, _validation_message(data["messages"]))
        if exc.code == 413 and exc.description == RequestEntityTooLarge.description:
            # werkzeug's own refusal: name the limit it applied
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            return error_response(413, body_limit_message(limit))
        response = error_response(exc.code or 500, exc.description or exc.name)
        if getattr(exc, "valid_methods", None):  # a 405 says what is allowed
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("api.internal_error")
        return error_response(500, "internal error")
