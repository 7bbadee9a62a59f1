"""Reading a request body within the size limit, and its JSON within the depth limit.

Every view that reads a body itself (the gateway, event emission, event-driver ingest)
and the marshmallow argument parser of every blueprint go through here, so each refuses
the same way: 413 naming ``$DISPATCH_MAX_BODY_BYTES`` (or the app's own
``MAX_CONTENT_LENGTH``), 400 for JSON that is not JSON or nests too deep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, request
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from engine import fastjson
from engine.errors import InvalidInput, TooLarge
from engine.limits import check_depth, depth_message

from .arguments import load_mapping


#: a request whose JSON body the parser has not read yet
_UNREAD = object()


def body_limit_message(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"


def body_limit() -> int:
    """The largest body this app reads: the engine's ``max_body_bytes``."""
    return current_app.extensions["dispatch"].settings.max_body_bytes


def check_declared_length(limit: int | None = None) -> None:
    """:class:`TooLarge` at once if the declared ``Content-Length`` is over ``limit``
    (nothing is read)."""
    limit = body_limit() if limit is None else limit
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(body_limit_message(limit))


def read_body(limit: int | None = None) -> bytes:
    """The raw request body, at most ``limit`` bytes (default :func:`body_limit`) read
    even when no length was declared; :class:`TooLarge` past it."""
    limit = body_limit() if limit is None else limit
    check_declared_length(limit)
    # a chunked body may come a chunk a read (the server's stream returns what one chunk
    # holds): read until its end, or past the limit
    chunks, size = [], 0
    while size <= limit:
        chunk = request.stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise TooLarge(body_limit_message(limit))
    return b"".join(chunks)


class DispatchParser(FlaskParser):
    """webargs' parser with JSON nesting bounded (:data:`engine.limits.JSON_DEPTH_MAX`:
    a 400 naming the limit; the stock parser lets ``RecursionError`` become a 500), a
    ``PUT`` with no body refused (a replacement needs the entity: the document says the
    body is required), and plain query strings and JSON bodies loaded the short way
    (:mod:`api.arguments`; anything else as webargs does)."""

    def parse(self, argmap, req=None, *, location=None, unknown=core._UNKNOWN_DEFAULT_PARAM,
              validate=None, **kwargs) -> Any:
        if validate is None and isinstance(argmap, Schema):
            location = location or self.location
            req = req if req is not None else request
            if location in ("query", "querystring"):
                data = req.args
            elif location == "json":
                data = self.load_json(req, argmap)
                data = {} if data is core.missing else data
            else:
                data = None
            if isinstance(data, Mapping):
                effective = unknown  # webargs' precedence: the call's, the parser's, the location's
                if effective is core._UNKNOWN_DEFAULT_PARAM:
                    effective = self.unknown
                if effective is core._UNKNOWN_DEFAULT_PARAM:
                    effective = self.DEFAULT_UNKNOWN_BY_LOCATION.get(location)
                loaded = load_mapping(argmap, data, effective)
                if loaded is not None:
                    return loaded
        return super().parse(argmap, req, location=location, unknown=unknown,
                             validate=validate, **kwargs)

    def load_json(self, req, schema) -> Any:
        """The request's JSON body (``missing`` if none), read once a request: a body
        the short way cannot load is asked for again by webargs."""
        value = getattr(req, "_dispatch_json", _UNREAD)
        if value is _UNREAD:
            value = self._read_json(req)
            req._dispatch_json = value
        return value

    def _read_json(self, req) -> Any:
        data = req.get_data(cache=True)
        if not data:
            if req.method == "PUT":
                raise InvalidInput("request body is required")
            return core.missing
        if not is_json_request(req):
            return core.missing
        try:
            value = fastjson.loads(data)
        except RecursionError:
            raise InvalidInput(depth_message("request body")) from None
        except (ValueError, UnicodeDecodeError) as exc:
            return self._handle_invalid_json_error(exc, req)  # webargs' own 400
        return check_depth(value, "request body")


__all__ = ["DispatchParser", "body_limit", "body_limit_message", "check_declared_length",
           "read_body"]
