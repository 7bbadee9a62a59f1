"""Listeners: ``listen`` activities of workflow executions waiting for events of their
organization, matched when events arrive through the ``deliver_event`` path.

A listener is a store record (``/dispatch/listener/<org>/<execution>--<hash>``), never a
thread: the execution is ``waiting`` meanwhile. Each delivered event of the organization
is matched against the listeners' filters (the DSL's ``listen.to``: ``one``, ``any``,
``all``, with ``until`` for ``any``); a match is written to the listener by a
compare-and-swap, so an event delivered twice is counted once (events are de-duplicated
by ``(source, id)`` before delivery, and a listener keeps the ids it consumed). When the
strategy is satisfied the activity's result is recorded and the listener removed.

Filters (``with``): each attribute of the event must equal the value, or fully match it
as a regular expression; a ``${ … }`` value is a jq expression evaluated on the event,
true when it yields true. ``data`` compares as JSON (a mapping filter matches when each
of its keys matches).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable

from .. import entities as E
from ..errors import Conflict, NotFound, StaleRevision
from ..store import Store

log = logging.getLogger("dispatch.listeners")


def listener_name(record: E.Entity) -> str:
    execution, _, digest = record["name"].partition("/")
    return f"{execution}--{digest}"


def register(store: Store, record: E.Entity, spec: dict) -> None:
    """Write the listener of the ``listen`` activity ``record`` (once); ``spec`` is what
    the activity asks for (the record keeps it sealed)."""
    listener = E.new(E.LISTENER, record["organizationId"], listener_name(record),
                     status=E.READY, activity=E.key_of(record), execution=record["execution"],
                     to=spec.get("to") or {}, read=spec.get("read") or "data", consumed=[],
                     matched={})
    try:
        store.add(listener)
    except Conflict:
        pass


def remove_of_execution(store: Store, execution: E.Entity) -> None:
    """Remove the listeners of a finished execution."""
    org = execution["organizationId"]
    for listener in store.list(E.LISTENER, org, fields={"execution": execution["name"]}):
        try:
            store.delete(E.LISTENER, org, listener["name"])
        except NotFound:
            pass


class ListenerService:
    """Matches the events of an organization against its listeners.

    :param finish: ``finish(activity_record, value=…)``: records a listen's result
    """

    def __init__(self, store: Store, finish: Callable[..., Any]):
        self.store, self.finish = store, finish

    def deliver(self, org: str, event: dict[str, Any]) -> int:
        """Offer ``event`` to every listener of ``org``; returns how many it completed."""
        completed = 0
        for listener in self.store.list(E.LISTENER, org, status=E.READY):
            try:
                if self._offer(listener, event):
                    completed += 1
            except Exception:
                log.exception("listener.failed key=%s", E.key_of(listener))
        return completed

    def _offer(self, listener: E.Entity, event: dict[str, Any]) -> bool:
        for _ in range(10):
            if event["id"] + "|" + event["source"] in listener.get("consumed", []):
                return False
            progress = consume(listener["to"], listener.get("matched") or {}, event)
            if progress is None:
                return False
            matched, done = progress
            listener = dict(listener, matched=matched,
                            consumed=listener.get("consumed", []) + [
                                event["id"] + "|" + event["source"]])
            listener.setdefault("events", [])
            listener["events"] = listener["events"] + [event]
            try:
                listener = self.store.update(listener) if not done else listener
            except StaleRevision:
                try:
                    listener = self.store.get(E.LISTENER, listener["organizationId"],
                                              listener["name"])
                except NotFound:
                    return False
                continue
            except NotFound:
                return False
            if done:
                return self._complete(listener)
            return False
        return False

    def _complete(self, listener: E.Entity) -> bool:
        org = listener["organizationId"]
        _, _, name = E.parse_key(listener["activity"])
        try:
            record = self.store.get(E.ACTIVITY, org, name)
        except NotFound:
            record = None
        if record is not None and record["status"] == "started":
            events = [_read(e, listener.get("read") or "data") for e in listener["events"]]
            to = listener["to"]
            value = events[0] if "one" in to and len(events) == 1 else events
            self.finish(record, value=value)
        try:
            self.store.delete(E.LISTENER, org, listener["name"])
        except NotFound:
            pass
        return True


def consume(to: dict[str, Any], matched: dict[str, Any],
            event: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """How ``event`` advances a consumption strategy: ``(matched, done)``, or None if the
    event is not one it waits for. ``matched`` maps filter indexes to a count."""
    if "one" in to:
        return ({"0": 1}, True) if matches(to["one"], event) else None
    if "all" in to:
        filters = to["all"] or []
        hit = [str(i) for i, f in enumerate(filters) if str(i) not in matched
               and matches(f, event)]
        if not hit:
            return None
        matched = dict(matched, **{hit[0]: 1})
        return matched, len(matched) == len(filters)
    if "any" in to:
        filters = to["any"] or []
        if filters and not any(matches(f, event) for f in filters):
            return None
        count = matched.get("count", 0) + 1
        until = to.get("until")
        if until is None:
            return {"count": count}, True
        if until is False:
            return {"count": count}, False
        if isinstance(until, dict):
            done = consume(until, {}, event)
            return {"count": count}, bool(done and done[1])
        return {"count": count}, True
    return None


def matches(event_filter: dict[str, Any] | None, event: dict[str, Any]) -> bool:
    """Whether ``event`` passes one event filter (``{with: {attribute: value}}``)."""
    attributes = (event_filter or {}).get("with") or {}
    return all(_matches_value(expected, event.get(name), event)
               for name, expected in attributes.items())


def _matches_value(expected: Any, actual: Any, event: dict[str, Any]) -> bool:
    if isinstance(expected, str) and expected.strip().startswith("${"):
        import jq

        expression = expected.strip()[2:-1]
        try:
            return jq.compile(expression).input_value(event).first() is True
        except Exception:
            return False
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            _matches_value(v, actual.get(k), event) for k, v in expected.items())
    if isinstance(expected, str) and isinstance(actual, str):
        if expected == actual:
            return True
        try:
            return re.fullmatch(expected, actual) is not None
        except re.error:
            return False
    return expected == actual


def _read(event: dict[str, Any], read: str) -> Any:
    if read == "data":
        return event.get("data")
    return event  # envelope / raw: the CloudEvent with its attributes
