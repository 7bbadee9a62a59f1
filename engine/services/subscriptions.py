"""Subscriptions: an event type of an organization → a function (with secrets).

Lifecycle (Dispatch's): create → ``CREATING``; update → ``UPDATING``; delete →
``DELETING``; the ``sync_subscription`` job then moves it to ``READY`` if its function
exists, to ``ERROR`` ("function X not found") if not, or removes it. The reconciler
re-drives ``ERROR`` subscriptions, so that one heals once its function appears. A
subscription receives events while ``READY`` or ``UPDATING``.

Unlike Dispatch's, a subscription's ``secrets`` reach the runs it starts; a secret that
does not exist fails those runs with an InputError, as a function's would.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from .. import entities as E
from ..errors import InvalidInput, NotFound, StaleRevision
from ..cloudevents import EVENT_TYPE_MAX, EVENT_TYPE_PATTERN
from ..jobs import SYNC_SUBSCRIPTION, Jobs
from ..store import Store
from ..names import validate_name, validate_names
from .functions import FunctionService

log = logging.getLogger("dispatch.subscriptions")

#: statuses in which a second update or delete is refused (Dispatch answered 400)
IN_PROGRESS = (E.UPDATING, E.DELETING)

_ADJECTIVES = ("brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen",
               "lively", "merry", "nice", "proud", "quick", "witty", "zesty", "bold")
_ANIMALS = ("otter", "falcon", "badger", "heron", "lynx", "marmot", "panda", "quail",
            "raven", "seal", "tapir", "walrus", "yak", "zebra", "koala", "gecko")


def random_name() -> str:
    """A petname-like name with 6 digits, as Dispatch's CLI made: ``merry-otter-042137``."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}-{random.randrange(10**6):06d}"


class SubscriptionService:
    """Create, read, update and delete subscriptions; sync them to their functions."""

    def __init__(self, store: Store, jobs: Jobs, functions: FunctionService):
        self.store, self.jobs, self.functions = store, jobs, functions

    # ---- API side -------------------------------------------------------------------

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        """Store a subscription ``CREATING`` (a random name if none is given) and queue
        its sync; Conflict if the name is taken."""
        name = spec.get("name")
        name = random_name() if name in (None, "") else validate_name(name)
        sub = E.new(E.SUBSCRIPTION, org, name, status=E.CREATING, **_validate(spec))
        sub = self.store.add(sub)
        self.jobs.submit(SYNC_SUBSCRIPTION, E.key_of(sub))
        log.info("subscription.created key=%s type=%s function=%s", E.key_of(sub),
                 sub["eventType"], sub["function"])
        return sub

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Re-target a subscription (event type, function, secrets, tags): ``UPDATING``
        until synced. 400 while another update or a delete is in progress."""
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        fields = _validate(spec)

        def change(sub: E.Entity) -> E.Entity:
            _refuse_in_progress(sub)
            return dict(sub, **fields, status=E.UPDATING, reason=[])

        sub = self.store.modify(E.SUBSCRIPTION, org, name, change)
        self.jobs.submit(SYNC_SUBSCRIPTION, E.key_of(sub))
        log.info("subscription.updated key=%s type=%s function=%s", E.key_of(sub),
                 sub["eventType"], sub["function"])
        return sub

    def delete(self, org: str, name: str) -> E.Entity:
        """Mark the subscription ``DELETING`` (it receives no more events) and queue its
        removal; returns it. 400 while an update or a delete is in progress."""
        def change(sub: E.Entity) -> E.Entity:
            _refuse_in_progress(sub)
            return dict(sub, status=E.DELETING, delete=True)

        sub = self.store.modify(E.SUBSCRIPTION, org, name, change)
        self.jobs.submit(SYNC_SUBSCRIPTION, E.key_of(sub))
        log.info("subscription.deleting key=%s", E.key_of(sub))
        return sub

    def get(self, org: str, name: str) -> E.Entity:
        return self.store.get(E.SUBSCRIPTION, org, name)

    def list(self, org: str, tags: dict[str, str] | None = None) -> list[E.Entity]:
        return self.store.list(E.SUBSCRIPTION, org, tags=tags)

    # ---- job side -------------------------------------------------------------------

    def sync(self, key: str) -> None:
        """The ``sync_subscription`` job: ``DELETING`` → removed; ``CREATING``,
        ``UPDATING`` or ``ERROR`` → ``READY`` if the function exists, else ``ERROR``.
        Idempotent; a write that loses a race is left to the next sync."""
        kind, org, name = E.parse_key(key)
        sub = self.store.find(key)
        if sub is None:
            return  # deleted meanwhile: nothing left to do
        try:
            if sub["status"] == E.DELETING:
                self.store.delete(kind, org, name, revision=sub["revision"])
                log.info("subscription.deleted key=%s", key)
                return
            if sub["status"] not in (E.CREATING, E.UPDATING, E.ERROR):
                return
            try:
                fn = self.functions.get(org, sub["function"])
                missing = fn["status"] == E.DELETING
            except NotFound:
                missing = True
            status, reason = ((E.ERROR, [f"function {sub['function']} not found"]) if missing
                              else (E.READY, []))
            if (status, reason) == (sub["status"], sub["reason"]):
                return
            self.store.update(dict(sub, status=status, reason=reason))
            log.info("subscription.%s key=%s", status.lower(), key)
        except (StaleRevision, NotFound):
            return  # changed meanwhile: its own job (or the reconciler) syncs it


def _refuse_in_progress(sub: E.Entity) -> None:
    if sub["status"] in IN_PROGRESS:
        doing = "deleted" if sub["status"] == E.DELETING else "updated"
        raise InvalidInput(f"subscription {sub['name']} is being {doing}: try again once "
                           "it is READY or ERROR")


def _validate(spec: dict[str, Any]) -> dict[str, Any]:
    """The subscription's own fields, checked; messages name the field."""
    event_type = spec.get("eventType")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidInput("eventType is required")
    if len(event_type) > EVENT_TYPE_MAX:
        raise InvalidInput(f"eventType must be at most {EVENT_TYPE_MAX} characters")
    if not EVENT_TYPE_PATTERN.match(event_type):
        raise InvalidInput(f"eventType {event_type!r} may only contain letters, numbers, "
                           "underscores, dots and dashes")
    function = validate_name(spec.get("function"), "function")
    secrets = validate_names(spec.get("secrets"), "secrets")
    tags = spec.get("tags")
    return {"eventType": event_type, "function": function, "secrets": list(secrets),
            "tags": list(tags or [])}
