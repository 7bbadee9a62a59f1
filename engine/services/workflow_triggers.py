"""What starts workflow executions besides the API: the workflow's own ``schedule``
(``cron``, ``every``, ``after``, ``on``) and subscriptions that target a workflow.

Every start is named from what caused it, so a cause seen twice starts one execution:

* ``cron`` / ``every``: the scheduler's leader (:mod:`engine.scheduler.event_scheduler`, the same
  HA pass that fires cron event drivers) starts one execution per due time, named from
  (workflow id, scheduled time); a cursor entity (``Schedule`` ``workflow.<name>``)
  advances by compare-and-swap after the starts, so two schedulers or a leader killed
  between start and advance never start a tick twice. A tick later than the grace is
  missed: only the latest due one starts (as a cron driver with ``catchup=false``).
* ``after``: when an execution completes, the next is created at once, named from the
  one that completed, and begins after the delay (a delayed advance; the reconciler
  re-drives it if that message is lost).
* ``on`` (``one`` or ``any``) and subscriptions: one execution per (event, workflow or
  subscription), named from both; its input is the event's data (``schedule.on``: the
  list of consumed events, as the spec's start listener reads them).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from croniter import croniter

from .. import entities as E
from ..scheduler.cron import due_times, iso
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision
from ..store import Store
from ..workflows import durations
from .executions import COMPLETED, ExecutionService, derived_name
from .listeners import consume

log = logging.getLogger("dispatch.workflow_triggers")

#: the most ticks one workflow starts in one pass
MAX_TICKS = 1000

def duration_seconds(value: Any, field: str) -> float:
    """A DSL duration in seconds; InvalidInput naming ``field``."""
    try:
        return durations.seconds(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}") from None


def check_schedule(schedule: Any) -> None:
    """InvalidInput naming the path if the workflow's schedule cannot be run here."""
    if not schedule:
        return
    if schedule.get("cron"):
        fields = str(schedule["cron"]).split()
        if len(fields) not in (5, 6):
            raise InvalidInput(f"/schedule/cron: {schedule['cron']!r} must have 5 fields "
                               "(or 6 with seconds first)")
        try:
            croniter(schedule["cron"], 0.0, second_at_beginning=True).get_next(float)
        except Exception as exc:  # noqa: BLE001 - croniter raises unrelated types
            raise InvalidInput(f"/schedule/cron: not valid cron syntax: {exc}") from None
    for key in ("every", "after"):
        if key in schedule and duration_seconds(schedule[key], f"/schedule/{key}") <= 0:
            raise InvalidInput(f"/schedule/{key}: must be longer than zero")
    on = schedule.get("on")
    if on is not None and "all" in on:
        raise InvalidInput("/schedule/on/all: starting on a correlation of several events "
                           "is not supported; use one or any")


class WorkflowTriggers:
    """Starts executions for schedules, events and subscriptions."""

    def __init__(self, store: Store, executions: ExecutionService, grace: float = 5.0):
        self.store, self.executions, self.grace = store, executions, grace

    # ---- events -----------------------------------------------------------------------

    def start_for_subscription(self, sub: E.Entity, event_key: str, event_name: str,
                               event: dict[str, Any], name: str) -> E.Entity:
        return self.executions.start(
            sub["organizationId"], sub["workflow"],
            {"input": event.get("data"), "tags": list(sub.get("tags") or [])}, name=name,
            trigger={"kind": "subscription", "subscription": sub["name"],
                     "event": event_name})

    def start_for_event(self, org: str, event_key: str,
                        event: dict[str, Any]) -> tuple[list[str], list[str]]:
        """Start the workflows of ``org`` whose ``schedule.on`` the event satisfies;
        returns the executions' names and the reasons of those that could not start."""
        started: list[str] = []
        reasons: list[str] = []
        for workflow in self.store.list(E.WORKFLOW, org, status=E.READY):
            on = (workflow.get("schedule") or {}).get("on")
            if not on or consume(on, {}, event) is None:
                continue
            name = derived_name(event_key, workflow["id"])
            try:
                self.executions.start(org, workflow["name"], {"input": [event]}, name=name,
                                      trigger={"kind": "event", "event": event["id"],
                                               "source": event["source"]})
            except (NotFound, InvalidInput, Conflict) as exc:
                reasons.append(f"workflow {workflow['name']}: {exc.message}")
                continue
            started.append(name)
        return started, reasons

    # ---- after ------------------------------------------------------------------------

    def finished(self, execution: E.Entity) -> None:
        """An execution finished: a ``schedule.after`` workflow starts again later."""
        if execution["status"] != COMPLETED:
            return
        org = execution["organizationId"]
        try:
            workflow = self.store.get(E.WORKFLOW, org, execution["workflowName"])
        except NotFound:
            return
        after = (workflow.get("schedule") or {}).get("after")
        if after is None or workflow["id"] != execution.get("workflowId"):
            return
        delay = duration_seconds(after, "/schedule/after")
        try:
            self.executions.start(org, workflow["name"], {},
                                  name=derived_name(E.key_of(execution), "after"),
                                  trigger={"kind": "schedule", "after": execution["name"]},
                                  not_before=time.time() + delay)
        except (NotFound, InvalidInput, Conflict) as exc:
            log.warning("workflow.after_failed key=%s why=%s", E.key_of(execution),
                        exc.message)

    # ---- cron and every ---------------------------------------------------------------

    def tick(self, now: float | None = None) -> int:
        """Start what is due for every READY workflow with ``schedule.cron`` or
        ``schedule.every``; returns how many executions started."""
        now = time.time() if now is None else now
        started = 0
        for workflow in self.store.list(E.WORKFLOW, None, status=E.READY):
            schedule = workflow.get("schedule") or {}
            if not (schedule.get("cron") or schedule.get("every")):
                continue
            try:
                started += self._tick_workflow(workflow, schedule, now)
            except (StaleRevision, NotFound):
                continue
            except Exception:
                log.exception("workflow.schedule_failed key=%s", E.key_of(workflow))
        return started

    def _tick_workflow(self, workflow: E.Entity, schedule: dict[str, Any],
                       now: float) -> int:
        org = workflow["organizationId"]
        cursor_name = f"workflow.{workflow['name']}"
        spec = (f"cron:{schedule['cron']}" if schedule.get("cron")
                else f"every:{duration_seconds(schedule['every'], '/schedule/every')}")
        try:
            cursor = self.store.get(E.SCHEDULE, org, cursor_name)
        except NotFound:
            cursor = None
        if cursor is None or cursor.get("workflowId") != workflow["id"] \
                or cursor.get("schedule") != spec:
            fields = {"workflowId": workflow["id"], "schedule": spec, "last": now,
                      "lastTime": iso(now)}
            if cursor is None:
                self.store.add(E.new(E.SCHEDULE, org, cursor_name, status=E.READY, **fields))
            else:
                self.store.update(dict(cursor, **fields))
            return 0
        if schedule.get("cron"):
            due, _ = due_times(schedule["cron"], "UTC", cursor["last"], now, MAX_TICKS)
        else:
            every = duration_seconds(schedule["every"], "/schedule/every")
            count = min(int((now - cursor["last"]) // every), MAX_TICKS)
            due = [cursor["last"] + every * (i + 1) for i in range(count)]
        if not due:
            return 0
        late = [t for t in due if t < now - self.grace]
        start = due[-1:] if late else due
        for t in start:
            when = dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).isoformat()
            self.executions.start(org, workflow["name"], {},
                                  name=derived_name(workflow["id"], when),
                                  trigger={"kind": "schedule", "scheduledTime": when})
        self.store.update(dict(cursor, last=due[-1], lastTime=iso(due[-1])))  # CAS
        if len(late) > 1:
            log.warning("workflow.missed_ticks key=%s count=%d", E.key_of(workflow),
                        len(late) - 1)
        return len(start)
