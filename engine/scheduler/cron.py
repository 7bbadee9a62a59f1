"""The ``cron`` event driver: its config, and the scheduler pass that emits its ticks.

What is guaranteed (with one leader at a time through :func:`engine.scheduler.leader.lead`, and
also when two schedulers overlap, as during a lease hand-over):

* Each tick is emitted once. Its event id is ``<driver id>/<scheduled time, ISO UTC>``
  and its source ``/dispatch/cron/<org>/<driver>``, so a tick emitted twice (two leaders,
  a leader that died between emitting and advancing its cursor, a restart) is one event:
  :meth:`engine.services.events.EventService.emit` delivers a (source, id) once.
* No tick is skipped silently. A cursor entity (:data:`engine.entities.SCHEDULE`, same
  org and name as the driver) holds the last scheduled time emitted; each pass emits
  every due time after it, then advances it with a compare-and-swap. A tick later than
  :attr:`CronScheduler.grace` seconds (no scheduler ran) is *missed*: with
  ``catchup=true`` it is emitted anyway (at most ``max_catchup`` per pass, the oldest
  beyond that reported); with ``catchup=false`` only the latest due tick is emitted and
  the others are reported on the driver (``missedTicks``, ``lastMissed``, ``reason``) and
  in a warning log.
* A new driver's cursor starts when it becomes READY: nothing before it is backfilled;
  a changed schedule or timezone restarts the cursor from then.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .. import entities as E
from ..observability import metrics
from ..errors import InvalidInput, NotFound, StaleRevision
from ..store import Store

log = logging.getLogger("dispatch.cron")

CRON = "cron"
DEFAULT_EVENT_TYPE = "dispatch.cron.tick"
#: a tick older than this many ticks of work is never computed: reported as "at least"
MAX_SCAN = 100_000

Emit = Callable[[str, dict[str, Any]], Any]


# ---- config ---------------------------------------------------------------------------

def parse_config(config: dict[str, str]) -> dict[str, Any]:
    """A cron driver's config, checked: ``schedule`` (5 fields, or 6 with seconds first),
    ``timezone`` (IANA name, default UTC), ``eventType``, ``catchup`` (true/false).

    :raises InvalidInput: naming the key at fault.
    """
    schedule = (config.get("schedule") or "").strip()
    if not schedule:
        raise InvalidInput("config schedule is required for a cron driver "
                           "(cron syntax, e.g. '*/5 * * * *', or 6 fields with seconds first)")
    fields = schedule.split()
    if len(fields) not in (5, 6):
        raise InvalidInput(f"config schedule {schedule!r} must have 5 fields "
                           f"(minute hour day month weekday) or 6 (seconds first)")
    try:
        croniter(schedule, 0.0, second_at_beginning=True).get_next(float)
    except Exception as exc:  # noqa: BLE001 - croniter raises several unrelated types
        raise InvalidInput(f"config schedule {schedule!r} is not valid cron syntax: {exc}") from None
    tz_name = (config.get("timezone") or "UTC").strip()
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"config timezone {tz_name!r} is not a known time zone "
                           f"(an IANA name such as 'Europe/Paris' or 'UTC')") from None
    catchup = (config.get("catchup") or "false").strip().lower()
    if catchup not in ("true", "false"):
        raise InvalidInput(f"config catchup {config.get('catchup')!r} must be true or false")
    event_type = (config.get("eventType") or DEFAULT_EVENT_TYPE).strip()
    return {"schedule": schedule, "timezone": tz_name, "eventType": event_type,
            "catchup": catchup == "true"}


def config_map(driver: E.Entity) -> dict[str, str]:
    """A driver's ``config`` list as a dict (a later key wins)."""
    return {c["key"]: c.get("value") for c in driver.get("config") or ()}


def due_times(schedule: str, tz_name: str, after: float, until: float,
              limit: int = MAX_SCAN) -> tuple[list[float], bool]:
    """Scheduled times in ``(after, until]`` (epoch seconds), at most ``limit`` of them,
    oldest first; and whether more were left out."""
    start = dt.datetime.fromtimestamp(after, tz=ZoneInfo(tz_name))
    it = croniter(schedule, start, second_at_beginning=True)
    times: list[float] = []
    while True:
        t = it.get_next(dt.datetime).timestamp()
        if t > until:
            return times, False
        if len(times) == limit:
            return times, True
        times.append(t)


def iso(t: float) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tick_event(driver: E.Entity, t: float, event_type: str) -> dict[str, Any]:
    """The CloudEvent of the tick of ``driver`` scheduled at ``t``."""
    org, name = driver["organizationId"], driver["name"]
    when = iso(t)
    return {"specversion": "1.0", "id": f"{driver['id']}/{when}",
            "source": f"/dispatch/cron/{org}/{name}", "type": event_type, "time": when,
            "datacontenttype": "application/json",
            "data": {"scheduledTime": when, "driver": name}}


# ---- the cursor -----------------------------------------------------------------------

def start_cursor(store: Store, driver: E.Entity, now: float | None = None) -> E.Entity:
    """(Re)start ``driver``'s cursor at ``now``, unless it already follows this driver
    with the same schedule and timezone."""
    now = time.time() if now is None else now
    conf = parse_config(config_map(driver))
    org, name = driver["organizationId"], driver["name"]
    fields = {"driverId": driver["id"], "schedule": conf["schedule"],
              "timezone": conf["timezone"]}
    try:
        cursor = store.get(E.SCHEDULE, org, name)
    except NotFound:
        return store.add(E.new(E.SCHEDULE, org, name, status=E.READY, last=now,
                               lastTime=iso(now), **fields))
    if all(cursor.get(k) == v for k, v in fields.items()):
        return cursor
    cursor.update(fields, last=now, lastTime=iso(now))
    return store.update(cursor)


# ---- the scheduler pass ---------------------------------------------------------------

class CronScheduler:
    """One pass (:meth:`tick`) emits the due ticks of every READY cron driver.

    :param emit: ``emit(org, cloudevent_dict)``, de-duplicating on (source, id).
    :param grace: how late a tick may be before it counts as missed; the scheduler's
        period twice plus the leader lock's lease, so that a leader failover is no miss.
    :param max_catchup: the most missed ticks one driver emits in one pass.
    """

    def __init__(self, store: Store, emit: Emit, grace: float, max_catchup: int = 1000,
                 clock: Callable[[], float] = time.time):
        self.store, self.emit, self.grace = store, emit, grace
        self.max_catchup, self.clock = max_catchup, clock

    def tick(self) -> int:
        """Emit what is due for every READY cron driver; returns how many ticks."""
        now = self.clock()
        emitted = 0
        for driver in self.store.list(E.DRIVER, None, status=E.READY, fields={"type": CRON}):
            try:
                emitted += self.run_driver(driver, now)
            except (StaleRevision, NotFound):
                continue  # another scheduler advanced it, or the driver went away
            except Exception:
                log.exception("cron.driver_failed key=%s", E.key_of(driver))
        return emitted

    def run_driver(self, driver: E.Entity, now: float) -> int:
        conf = parse_config(config_map(driver))
        org, name = driver["organizationId"], driver["name"]
        try:
            cursor = self.store.get(E.SCHEDULE, org, name)
        except NotFound:
            cursor = None
        if (cursor is None or cursor.get("driverId") != driver["id"]
                or cursor.get("schedule") != conf["schedule"]
                or cursor.get("timezone") != conf["timezone"]):
            start_cursor(self.store, driver, now)
            return 0
        due, more = due_times(conf["schedule"], conf["timezone"], cursor["last"], now)
        if not due:
            return 0
        late = [t for t in due if t < now - self.grace]
        if conf["catchup"]:
            keep = self.max_catchup + (len(due) - len(late))
            emit, skipped = due[-keep:], due[:-keep] if len(due) > keep else []
        elif late:
            # beyond the scan limit the latest due tick is not known yet: a later pass
            # emits it
            emit, skipped = ([], due) if more else (due[-1:], due[:-1])
        else:
            emit, skipped = due, []
        for t in emit:
            self.emit(org, tick_event(driver, t, conf["eventType"]))
        cursor.update(last=due[-1], lastTime=iso(due[-1]))
        self.store.update(cursor)  # CAS: a second scheduler's pass loses here
        if emit:
            metrics.CRON_TICKS.labels("fired").inc(len(emit))
        if late:
            metrics.CRON_TICKS.labels("missed").inc(len(late))
        if skipped or more:
            self._report(driver, skipped, more, conf["catchup"])
        return len(emit)

    def _report(self, driver: E.Entity, skipped: list[float], more: bool,
                catchup: bool) -> None:
        """Record missed ticks on the driver (and in a warning log)."""
        count = len(skipped)
        window = {"from": iso(skipped[0]) if skipped else None,
                  "to": iso(skipped[-1]) if skipped else None,
                  "count": count, "more": more}
        why = ("more than the catch-up limit" if catchup
               else "catchup is false, so only the latest due tick was emitted")
        message = (f"missed {'at least ' if more else ''}{count} tick(s) scheduled from "
                   f"{window['from']} to {window['to']} while no scheduler ran ({why})")
        log.warning("cron.missed_ticks key=%s count=%d from=%s to=%s", E.key_of(driver),
                    count, window["from"], window["to"])
        for _ in range(5):
            try:
                current = self.store.get(E.DRIVER, driver["organizationId"], driver["name"])
                if current["id"] != driver["id"]:
                    return
                current["missedTicks"] = current.get("missedTicks", 0) + count
                current["lastMissed"] = window
                current["reason"] = [message]
                self.store.update(current)
                return
            except StaleRevision:
                continue
            except NotFound:
                return
