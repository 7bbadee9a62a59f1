"""``dispatch emit EVENT_TYPE``: send a CloudEvent 1.0 to ``POST /v1/event``.

Structured mode (``application/cloudevents+json``) by default, binary mode (``ce-*``
headers, the data as the body) with ``--binary``; both encoded by the ``cloudevents``
SDK. The data is ``--data`` (text) or ``--data-from-file``; with a JSON content type it
must be JSON, and a file that is not text travels base64-encoded (``data_base64``) in
structured mode, as its bytes in binary mode.
"""

from __future__ import annotations

import json
import mimetypes
import re
import uuid
from typing import Any

import click
from cloudevents.core.bindings.http import to_binary, to_structured
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from .. import options
from ..output import show_document

JSON_TYPE = re.compile(r"^(application|text)/([\w\-\.]+\+)?json\s*(;.*)?$", re.IGNORECASE)
DEFAULT_CONTENT_TYPE = "application/json"


@click.command("emit", cls=options.DispatchCommand)
@click.argument("event_type")
@click.option("--data", help="The event's data: JSON for a JSON content type, else text.")
@click.option("--data-from-file", type=click.Path(exists=True, dir_okay=False),
              help="Read the data from a file (not text: sent base64-encoded).")
@click.option("--content-type",
              help="The data's content type [default: application/json, or guessed from "
                   "the file's name].")
@click.option("--binary", is_flag=True,
              help="Send in CloudEvents binary mode (ce-* headers) instead of structured.")
@click.option("--source-id", default="dispatch", show_default=True, help="The event's source.")
@click.option("--event-id", help="The event's id [default: a random UUID]. An id sent "
                                 "again from the same source is delivered once.")
@click.option("--event-type-version", help="The event type's version (an extension).")
@click.option("--event-schema-url", help="The data's schema (dataschema).")
@options.global_options()
@click.pass_context
def emit(ctx: click.Context, event_type: str, data: str | None, data_from_file: str | None,
         content_type: str | None, binary: bool, source_id: str, event_id: str | None,
         event_type_version: str | None, event_schema_url: str | None) -> None:
    """Emit an event of type EVENT_TYPE: each subscription of the organization to it runs
    its function with the data as input. Prints the emission as JSON."""
    if data is not None and data_from_file is not None:
        raise click.UsageError("--data and --data-from-file: give one or the other")
    if content_type is None:
        guessed = mimetypes.guess_type(data_from_file)[0] if data_from_file else None
        content_type = guessed or DEFAULT_CONTENT_TYPE
    payload = _payload(data, data_from_file, content_type)
    attributes: dict[str, Any] = {"type": event_type, "source": source_id,
                                  "id": event_id or str(uuid.uuid4())}
    if payload is not None:
        attributes["datacontenttype"] = content_type
    if event_schema_url:
        attributes["dataschema"] = event_schema_url
    if event_type_version:
        attributes["eventtypeversion"] = event_type_version
    try:
        event = CloudEvent(attributes, None if binary else payload)
    except CloudEventValidationError as exc:
        raise click.UsageError(str(exc)) from None
    if binary:
        message = to_binary(event, JSONFormat())
        body = _binary_body(payload, content_type)
    else:
        message = to_structured(event, JSONFormat())
        body = message.body
    emission = options.client(ctx).emit_event(dict(message.headers), body)
    show_document(emission, options.output_format(ctx))


def _payload(data: str | None, path: str | None, content_type: str) -> Any:
    """The data as the SDK takes it: a JSON value, text, or bytes (a file not text)."""
    is_json = bool(JSON_TYPE.match(content_type))
    if path is not None:
        with open(path, "rb") as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if is_json:
                raise click.BadParameter(f"{path} is not UTF-8 text, so not JSON; give its "
                                         "--content-type", param_hint="--data-from-file")
            return raw
        if not is_json and not content_type.lower().startswith("text/"):
            return raw  # e.g. image/png: its bytes, base64 in structured mode
        data, hint = text, "--data-from-file"
    elif data is not None:
        hint = "--data"
    else:
        return None
    if not is_json:
        return data
    try:
        return json.loads(data)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc}); for text, give --content-type "
                                 "text/plain", param_hint=hint) from None


def _binary_body(payload: Any, content_type: str) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes):
        return payload
    if JSON_TYPE.match(content_type):
        return json.dumps(payload).encode()
    return str(payload).encode()
