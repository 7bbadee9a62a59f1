"""Ingest: what arrives at an event driver's URL (``/v1/event/ingest/<driver>``) becomes
events of the driver's organization. The caller proves it is the driver with the
driver's token (compared in constant time, never logged); CloudEvents are emitted as
they are, anything else is wrapped into one (:func:`wrapped_headers`)."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any, Callable, Mapping

from .. import entities as E
from ..cloudevents import is_cloudevent, parse_http
from ..errors import Conflict, TooLarge, Unauthenticated
from ..scheduler.cron import config_map
from ..store import Store
from .event_drivers import ENCRYPTED_TOKEN, EventDriverService

log = logging.getLogger("dispatch.ingest")

Emit = Callable[[str, dict[str, Any]], E.Entity]

TOKEN_NOT_RECOGNIZED = "token not recognized"


class IngestService:
    """Authenticates callers of ingest URLs as drivers and emits what they post.

    :param drivers: whose tokens (sealed on the driver entities) are checked.
    :param emit: ``emit(org, event) -> Event entity`` (the event service's).
    """

    def __init__(self, store: Store, drivers: EventDriverService, emit: Emit,
                 max_body_bytes: int = 1 << 20):
        self.store, self.drivers, self.emit = store, drivers, emit
        self.max_body_bytes = max_body_bytes

    def authenticate(self, token: str | None, name: str | None = None) -> E.Entity:
        """The driver whose token is ``token`` (named ``name`` if given), in any org.

        :raises Unauthenticated: no such driver; the token is compared in constant time.
        """
        if not token:
            raise Unauthenticated(TOKEN_NOT_RECOGNIZED)
        candidates = (self.store.list(E.DRIVER, None, fields={"name": name}) if name
                      else self.store.list(E.DRIVER, None))
        found = None
        for driver in candidates:
            if ENCRYPTED_TOKEN not in driver:
                continue
            try:
                mine = self.drivers.token_of(driver)
            except Conflict:
                continue
            if hmac.compare_digest(mine.encode(), token.encode()) and found is None:
                found = driver
        if found is None:
            raise Unauthenticated(TOKEN_NOT_RECOGNIZED)
        return found

    def ingest(self, driver: E.Entity, headers: Mapping[str, str], body: bytes
               ) -> list[E.Entity]:
        """Turn one request to ``driver``'s ingest URL into events of the driver's org.

        A CloudEvent (structured, batch, binary, or Dispatch's 0.1) is emitted as it is;
        any other body is wrapped: type = config ``eventType`` (default
        ``<driver>.webhook``), source = ``/v1/event/ingest/<driver>``, id = the
        ``Idempotency-Key`` or ``X-Request-Id`` header, else a random one, data = body.
        Every event is checked before any is emitted.
        """
        if driver["status"] not in (E.READY, E.ERROR):
            raise Conflict(f"driver {driver['name']} is {driver['status']}, not READY: "
                           "it cannot take events yet")
        if len(body) > self.max_body_bytes:
            raise TooLarge(f"the body is {len(body)} bytes, over the limit of "
                           f"{self.max_body_bytes}")
        lowered = {k.lower(): v for k, v in headers.items()}
        if is_cloudevent(lowered, body):
            events = parse_http(lowered, body)
        else:
            events = parse_http(wrapped_headers(driver, lowered, body), body)
        org = driver["organizationId"]
        emitted = [self.emit(org, event) for event in events]
        log.info("driver.ingested key=%s events=%d", E.key_of(driver), len(emitted))
        return emitted


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
        except RecursionError:  # JSON, refused as too deep when the event is read
            content_type = "application/json"
        except ValueError:
            content_type = "text/plain"
    wrapped = {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": event_type,
               "ce-source": f"/v1/event/ingest/{name}",
               "ce-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if content_type:
        wrapped["content-type"] = content_type
    return wrapped
