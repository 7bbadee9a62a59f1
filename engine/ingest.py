"""What arrives at an event driver's ingest URL: CloudEvents as they are, anything else
wrapped into one (see :meth:`engine.services.event_drivers.EventDriverService.ingest`)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Mapping

from . import entities as E
from .scheduler.cron import config_map
from .cloudevents import BATCH, STRUCTURED


def is_cloudevent(headers: Mapping[str, str], body: bytes) -> bool:
    """Whether a request (lower-cased headers) carries CloudEvents rather than a payload."""
    media = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if "ce-specversion" in headers or media in (STRUCTURED, BATCH):
        return True
    if media and "json" not in media:
        return False
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and ("specversion" in value or "cloudEventsVersion" in value)


def wrapped_headers(driver: E.Entity, headers: Mapping[str, str], body: bytes
                    ) -> dict[str, str]:
    """Binary-mode CloudEvent headers that make a plain request body an event of
    ``driver``: type = config ``eventType`` (default ``<driver>.webhook``), source =
    ``/v1/event/ingest/<driver>``, id = ``Idempotency-Key`` or ``X-Request-Id``, else random."""
    name = driver["name"]
    event_type = config_map(driver).get("eventType") or f"{name}.webhook"
    event_id = headers.get("idempotency-key") or headers.get("x-request-id") \
        or str(uuid.uuid4())
    content_type = headers.get("content-type") or ""
    if not content_type and body:
        try:
            json.loads(body)
            content_type = "application/json"
        except ValueError:
            content_type = "text/plain"
    wrapped = {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": event_type,
               "ce-source": f"/v1/event/ingest/{name}",
               "ce-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if content_type:
        wrapped["content-type"] = content_type
    return wrapped
