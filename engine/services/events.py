"""Events: receive one (API side), deliver it to the subscriptions (job side), keep it for
inspection and de-duplication until it is older than the retention.

An event is stored as an ``Event`` entity named by a hash of its ``(source, id)``, so the
store's create-only ``add`` is the de-duplication: the same event sent twice (a client
retry, two schedulers firing one tick) is stored and delivered once. Delivery starts one
non-blocking run per matching subscription, each named by a UUID derived from (event,
subscription): a delivery job that runs twice (at-least-once queues, the reconciler
re-driving a stuck event) finds its runs started already and starts none again.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any

from .. import entities as E
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision
from ..cloudevents import context_event
from ..jobs import DELIVER_EVENT, Jobs
from ..store import Store
from .runs import RunService

log = logging.getLogger("dispatch.events")

#: the namespace of run names derived from (event, subscription)
RUN_NAMESPACE = uuid.UUID("6f1f3c2e-5b7a-4c1e-9d3b-2a4e8c0f7d15")
#: an event's name: this many hex digits of sha256(source, id)
NAME_LENGTH = 40
#: the statuses of a subscription that receives events
RECEIVING = (E.READY, E.UPDATING)


def event_name(source: str, event_id: str) -> str:
    """The store name of the event with ``source`` and ``id``: equal for duplicates."""
    digest = hashlib.sha256(f"{source}\x00{event_id}".encode()).hexdigest()
    return digest[:NAME_LENGTH]


def run_name(event_key: str, subscription_id: str) -> str:
    """The name of the run that delivers an event to a subscription: equal on redelivery."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{event_key}|{subscription_id}"))


class EventService:
    """Received events of each organization and their delivery to subscriptions.

    :param retention_seconds: how long an event is kept (and a duplicate recognized).
    """

    def __init__(self, store: Store, jobs: Jobs, runs: RunService,
                 retention_seconds: float = 86400.0):
        self.store, self.jobs, self.runs = store, jobs, runs
        self.retention_seconds = retention_seconds

    # ---- API side -------------------------------------------------------------------

    def emit(self, org: str, event: dict[str, Any]) -> E.Entity:
        """Store a normalized event (see :mod:`engine.cloudevents`) and queue its delivery.

        A second event with the same ``(source, id)`` within the retention is not stored
        nor delivered again: the stored record comes back with ``duplicate=True``.
        """
        name = event_name(event["source"], event["id"])
        now = time.time()
        record = E.new(E.EVENT, org, name, event=event, eventType=event["type"], runs=[],
                       emittedAt=now)
        try:
            record = self.store.add(record)
        except Conflict:
            try:
                existing = self.store.get(E.EVENT, org, name)
            except NotFound:  # pruned between the two calls: it is past the retention
                return self.emit(org, event)
            log.info("event.duplicate key=%s type=%s", E.key(E.EVENT, org, name),
                     event["type"])
            return dict(existing, duplicate=True)
        self.jobs.submit(DELIVER_EVENT, E.key_of(record))
        log.info("event.received key=%s type=%s", E.key_of(record), event["type"])
        return dict(record, duplicate=False)

    def get(self, org: str, name: str) -> E.Entity:
        return self.store.get(E.EVENT, org, name)

    def list(self, org: str, event_type: str | None = None,
             limit: int | None = None) -> list[E.Entity]:
        """The organization's events, newest first, of one type if named, at most
        ``limit`` of them."""
        if limit is not None and limit < 1:
            raise InvalidInput("limit must be a positive number")
        fields = {"eventType": event_type} if event_type else None
        events = self.store.list(E.EVENT, org, fields=fields)
        events.sort(key=lambda e: e.get("emittedAt", e["createdTime"]), reverse=True)
        return events[:limit] if limit else events

    # ---- job side -------------------------------------------------------------------

    def deliver(self, key: str) -> None:
        """The ``deliver_event`` job: one non-blocking run per subscription of the event's
        organization to its type, then the event ``READY`` with the runs' names.

        Idempotent: runs have names derived from (event, subscription), so a second
        delivery skips those started already; an event READY is left alone. A
        subscription whose function cannot run is named in the event's ``reason``.
        """
        _, org, name = E.parse_key(key)
        record = self.store.find(key)
        if record is None:
            return  # deleted meanwhile: nothing left to do
        if record["status"] != E.INITIALIZED:
            return
        event = record["event"]
        subscriptions = self.store.list(E.SUBSCRIPTION, org, status=RECEIVING,
                                        fields={"eventType": event["type"]})
        started: list[str] = []
        reasons: list[str] = []
        for sub in subscriptions:
            run = run_name(key, sub["id"])
            body = {"input": event.get("data"), "event": context_event(event),
                    "secrets": list(sub.get("secrets") or []),
                    "tags": list(sub.get("tags") or [])
                    + [{"key": "event", "value": name},
                       {"key": "subscription", "value": sub["name"]}]}
            try:
                self.runs.start(org, sub["function"], body, name=run)
            except Conflict:
                pass  # started by an earlier delivery of this event
            except (NotFound, InvalidInput) as exc:
                reasons.append(f"subscription {sub['name']}: {exc.message}")
                log.warning("event.undelivered key=%s subscription=%s why=%s", key,
                            sub["name"], exc.message)
                continue
            started.append(run)
        record.update(status=E.READY, runs=started, reason=reasons,
                      subscriptions=[s["name"] for s in subscriptions])
        try:
            self.store.update(record)
        except (StaleRevision, NotFound):
            return  # another delivery finished first, or it was pruned
        log.info("event.delivered key=%s runs=%d", key, len(started))
