"""Per-request accessors: the engine of this app and the caller's organization."""

from __future__ import annotations

from flask import current_app, g, request

from engine.names import validate_name
from engine.errors import InvalidInput
from engine.system import Dispatch

ORG_HEADER = "X-Dispatch-Org"
DEFAULT_ORG = "default"


def system() -> Dispatch:
    return current_app.extensions["dispatch"]


def org() -> str:
    """The organization this request acts in, as the identity gate (:mod:`api.auth`)
    settled it: ``X-Dispatch-Org`` if sent (an existing one, with auth on), else the
    caller's own."""
    access = g._get_current_object().get("access")
    value = (access.org if access is not None else None) or \
        request._get_current_object().headers.get(ORG_HEADER) or DEFAULT_ORG
    return validate_name(value, ORG_HEADER)


def parse_tags(values: list[str] | None) -> dict[str, str] | None:
    """Dispatch's ``?tags=app=NAME`` filter: only ``app``/``application`` keys exist; an
    empty ``tags=`` filters nothing out."""
    values = [value for value in values or () if value]
    if not values:
        return None
    tags: dict[str, str] = {}
    for value in values:
        k, sep, v = value.partition("=")
        if not sep:
            raise InvalidInput(f"error parsing tag {value!r}: expected key=value")
        if k not in ("app", "application"):
            raise InvalidInput(f"error parsing tag {value!r}: key '{k}' not exist")
        tags["Application"] = v
    return tags
