"""Every error leaves the API as Dispatch's ``{code, message}`` body, mapped here once."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from engine.errors import DispatchError

from .body import body_limit_message

log = logging.getLogger("dispatch.api")


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
    @app.errorhandler(DispatchError)
    def dispatch_error(exc: DispatchError):
        return error_response(exc.status, exc.message)

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
