"""CloudEvents in: parse and validate what arrives over HTTP, in every shape Dispatch takes.

Accepted (:func:`parse_http`):

* Dispatch's CloudEvents 0.1 JSON (``eventType``, ``cloudEventsVersion: "0.1"``,
  ``source``, ``eventID``…), as its CLI and event drivers sent it;
* CloudEvents 1.0 structured mode (``application/cloudevents+json``, or any JSON object
  with ``specversion``);
* CloudEvents 1.0 batch mode (``application/cloudevents-batch+json``);
* CloudEvents 1.0 binary mode (``ce-*`` headers, the body is the data).

Each event comes out *normalized*: a dict of CloudEvents 1.0 attributes (``specversion,
id, source, type`` and those of ``time, datacontenttype, dataschema, subject`` that were
given, plus extension attributes) and ``data``: a JSON value for JSON content types,
text for ``text/*``, otherwise a base64 string (``datacontenttype`` says what it holds).
Attributes are checked by the ``cloudevents`` SDK's CloudEvent 1.0 model; every refusal
is an :class:`~engine.errors.InvalidInput` whose message names the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import unquote

from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.v1.event import CloudEvent

from .errors import InvalidInput
from .limits import check_depth, depth_message

#: Dispatch's event type (and subscription eventType) pattern and length limit
EVENT_TYPE_PATTERN = re.compile(r"^[\w\d\.\-]+$")
EVENT_TYPE_MAX = 128

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
JSON_TYPE = re.compile(r"^(application|text)/([\w\-\.]+\+)?json\s*(;.*)?$", re.IGNORECASE)

#: the attributes CloudEvents 1.0 defines; any other attribute is an extension
CORE_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "datacontenttype",
                   "dataschema", "subject")

# RFC 3339 date-time: full date, "T" (or "t" / space), time with optional fraction and a
# mandatory offset. fromisoformat alone also takes dates without a time or an offset.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+\-]\d{2}:\d{2})$")

_TYPE_WORDS = {"str": "string", "datetime": "timestamp"}

#: Dispatch 0.1 field → CloudEvents 1.0 attribute
V01_FIELDS = {"eventType": "type", "eventID": "id", "source": "source",
              "eventTime": "time", "contentType": "datacontenttype",
              "schemaURL": "dataschema"}
#: 0.1's eventTypeVersion has no 1.0 attribute: it travels as this extension
TYPE_VERSION_EXTENSION = "eventtypeversion"


def parse_http(headers: Mapping[str, str], body: bytes) -> list[dict[str, Any]]:
    """The normalized events of one HTTP request (one, or several for a batch).

    :raises InvalidInput: naming the field at fault; nothing is half accepted.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    content_type = lowered.get("content-type") or ""
    media = content_type.split(";", 1)[0].strip().lower()
    if "ce-specversion" in lowered and media not in (STRUCTURED, BATCH):
        return [_binary(lowered, body)]
    value = _json_body(body)
    if media == BATCH:
        if not isinstance(value, list):
            raise InvalidInput("a CloudEvents batch must be a JSON array of events")
        if not value:
            raise InvalidInput("a CloudEvents batch must hold at least one event")
        return [_indexed(i, item) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        raise InvalidInput("the event must be a JSON object")
    return [normalize(value)]


def normalize(obj: Mapping[str, Any]) -> dict[str, Any]:
    """One event given as a JSON object, 0.1 (Dispatch's) or 1.0 (structured), normalized.

    :raises InvalidInput: naming the field at fault.
    """
    if not isinstance(obj, Mapping):
        raise InvalidInput("the event must be a JSON object")
    if "specversion" in obj:
        return _structured(obj)
    if "cloudEventsVersion" in obj or "eventType" in obj:
        return _v01(obj)
    raise InvalidInput("specversion is required (or cloudEventsVersion, for Dispatch's "
                       "CloudEvents 0.1)")


def context_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """What a run sees as ``ctx.event``: the event without its data, under CloudEvents 1.0
    names and Dispatch's 0.1 names both (``ctx.event.eventType`` keeps working)."""
    attributes = {k: v for k, v in event.items() if k not in ("data", "data_base64")}
    extensions = {k: v for k, v in attributes.items()
                  if k not in CORE_ATTRIBUTES and k != TYPE_VERSION_EXTENSION}
    shown = dict(attributes)
    shown.update(
        eventType=event.get("type"), eventID=event.get("id"),
        cloudEventsVersion="0.1", eventTime=event.get("time"),
        contentType=event.get("datacontenttype"), schemaURL=event.get("dataschema"),
        eventTypeVersion=event.get(TYPE_VERSION_EXTENSION), extensions=extensions,
    )
    return shown


# ---- the shapes -----------------------------------------------------------------------

def _indexed(index: int, item: Any) -> dict[str, Any]:
    try:
        return normalize(item)
    except InvalidInput as exc:
        raise InvalidInput(f"event {index} of the batch: {exc.message}") from None


def _v01(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Dispatch's 0.1 shape, checked as its validator did, then as CloudEvents 1.0."""
    version = obj.get("cloudEventsVersion")
    if version is None:
        raise InvalidInput("cloudEventsVersion is required")
    if version != "0.1":
        raise InvalidInput(f"cloudEventsVersion must be 0.1, not {version!r}")
    for name in ("eventType", "source", "eventID"):
        if obj.get(name) in (None, ""):
            raise InvalidInput(f"{name} is required")
    _check_type(obj["eventType"], "eventType")
    attributes: dict[str, Any] = {"specversion": "1.0"}
    for old, new in V01_FIELDS.items():
        if obj.get(old) is not None:
            attributes[new] = obj[old]
    if obj.get("eventTypeVersion") is not None:
        if not isinstance(obj["eventTypeVersion"], str):
            raise InvalidInput("eventTypeVersion must be a string")
        attributes[TYPE_VERSION_EXTENSION] = obj["eventTypeVersion"]
    extensions = obj.get("extensions")
    if extensions is not None:
        if not isinstance(extensions, Mapping):
            raise InvalidInput("extensions must be an object")
        for name, value in extensions.items():
            if name in CORE_ATTRIBUTES or name in ("data", "data_base64"):
                raise InvalidInput(f"extensions.{name} is reserved")
            attributes[name] = value
    known = set(V01_FIELDS) | {"cloudEventsVersion", "eventTypeVersion", "extensions", "data"}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise InvalidInput(f"{unknown[0]} is not a CloudEvents 0.1 field")
    names = {v: k for k, v in V01_FIELDS.items()}
    names.update({name: f"extensions.{name}" for name in extensions or ()})
    return _validated(attributes, _data(obj.get("data"), attributes), names)


def _structured(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudEvents 1.0 JSON object (structured mode, or one event of a batch)."""
    version = obj.get("specversion")
    if version != "1.0":
        raise InvalidInput(f"specversion must be 1.0, not {version!r}")
    attributes = {k: v for k, v in obj.items() if k not in ("data", "data_base64")}
    if "data" in obj and "data_base64" in obj:
        raise InvalidInput("data and data_base64 cannot both be given")
    if "data_base64" in obj:
        encoded = obj["data_base64"]
        try:
            if not isinstance(encoded, str):
                raise ValueError
            base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise InvalidInput("data_base64 is not base64") from None
        attributes.setdefault("datacontenttype", "application/octet-stream")
        return _validated(attributes, encoded)
    return _validated(attributes, _data(obj.get("data"), attributes))


def _binary(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Binary mode: attributes in ``ce-*`` headers (percent-encoded), the body is the data."""
    attributes: dict[str, Any] = {}
    for name, value in headers.items():
        if name.startswith("ce-") and len(name) > 3:
            attributes[name[3:]] = unquote(value)
    if headers.get("content-type"):
        attributes["datacontenttype"] = headers["content-type"]
    if attributes.get("specversion") != "1.0":
        raise InvalidInput(f"ce-specversion must be 1.0, not {attributes.get('specversion')!r}")
    names = {name: f"ce-{name}" for name in (*attributes, *CORE_ATTRIBUTES)}
    names["datacontenttype"] = "Content-Type"
    return _validated(attributes, _body_data(body, attributes.get("datacontenttype")), names)


# ---- checks ---------------------------------------------------------------------------

def _validated(attributes: dict[str, Any], data: Any,
               names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``attributes`` checked by the SDK's CloudEvent 1.0 (and ours), plus ``data``.

    :param names: how the request named each attribute (``eventID`` for ``id``…), so that
        a message names the field the sender wrote.
    """
    names = names or {}
    for required in ("id", "source", "type"):
        if attributes.get(required) in (None, ""):
            raise InvalidInput(f"{names.get(required, required)} is required")
    _check_type(attributes["type"], names.get("type", "type"))
    checked = dict(attributes)
    if "time" in attributes:
        checked["time"] = _rfc3339(attributes["time"], names.get("time", "time"))
    try:
        CloudEvent(checked, None)
    except CloudEventValidationError as exc:
        field, errors = next(iter(exc.errors.items()))
        # the SDK says "must be a <class 'str'>": say "a string"
        why = re.sub(r"<class '(\w+)'>", lambda m: _TYPE_WORDS.get(m[1], m[1]), str(errors[0]))
        raise InvalidInput(f"{names.get(field, field)}: {why}") from None
    normalized = dict(attributes)
    normalized["data"] = data
    return normalized


def _check_type(value: Any, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string")
    if len(value) > EVENT_TYPE_MAX:
        raise InvalidInput(f"{field} must be at most {EVENT_TYPE_MAX} characters")
    if not EVENT_TYPE_PATTERN.match(value):
        raise InvalidInput(f"{field} {value!r} may only contain letters, numbers, "
                           "underscores, dots and dashes")


def _rfc3339(value: Any, field: str) -> datetime:
    if isinstance(value, str) and _RFC3339.match(value):
        try:
            return datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            pass
    raise InvalidInput(f"{field} is not an RFC 3339 timestamp: {value!r}")


def _json_body(body: bytes) -> Any:
    if not body:
        raise InvalidInput("invalid JSON body: the body is empty")
    return _parse_json(body, "JSON body")


def _parse_json(body: bytes, what: str) -> Any:
    """``body`` as JSON, nested no deeper than the limit; InvalidInput saying why not
    (``what`` names it in the depth message)."""
    try:
        return check_depth(json.loads(body), what)
    except RecursionError:
        raise InvalidInput(depth_message(what)) from None
    except UnicodeDecodeError:
        raise InvalidInput("invalid JSON body: not UTF-8") from None
    except ValueError as exc:
        raise InvalidInput(f"invalid JSON body: {exc}") from None


def _data(value: Any, attributes: Mapping[str, Any]) -> Any:
    """Data given inside a JSON event: JSON for JSON types, else it must be text (a
    string), kept as it is."""
    content_type = attributes.get("datacontenttype")
    if value is None or not content_type or JSON_TYPE.match(str(content_type)):
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"data must be a string for content type {content_type} "
                           "(JSON data needs a JSON content type)")
    return value


def _body_data(body: bytes, content_type: str | None) -> Any:
    """A binary-mode body as data: JSON, text, or base64 of the bytes."""
    if not body:
        return None
    if not content_type or JSON_TYPE.match(content_type):
        return _parse_json(body, "data")
    if content_type.lower().startswith("text/"):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"the body is not UTF-8 text ({content_type})") from None
    return base64.b64encode(body).decode("ascii")


def is_cloudevent(headers: Mapping[str, str], body: bytes) -> bool:
    """Whether a request (lower-cased headers) carries CloudEvents rather than a payload."""
    media = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if "ce-specversion" in headers or media in (STRUCTURED, BATCH):
        return True
    if media and "json" not in media:
        return False
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and ("specversion" in value or "cloudEventsVersion" in value)
