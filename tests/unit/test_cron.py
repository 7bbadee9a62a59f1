"""The cron driver's due-time computation, catch-up and missed-tick reporting, on a memory
store with a fake clock and a recording emit (de-duplicating on (source, id) as the
event service does)."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.scheduler import cron
from engine import entities as E
from engine.errors import InvalidInput
from engine.store import open_store

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc).timestamp()
GRACE = 5.0


class Recorder:
    """emit(org, event): keeps each (source, id) once, as EventService.emit does."""

    def __init__(self):
        self.events: dict[tuple[str, str], dict] = {}
        self.calls = 0

    def __call__(self, org, event):
        self.calls += 1
        self.events.setdefault((event["source"], event["id"]), dict(event, org=org))

    def times(self):
        return sorted(e["time"] for e in self.events.values())


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def store():
    s = open_store("memory://")
    yield s
    s.close()


def make_driver(store, name="tick", schedule="* * * * * *", created=T0, **config):
    conf = [{"key": "schedule", "value": schedule}]
    conf += [{"key": k, "value": v} for k, v in config.items()]
    driver = store.add(E.new(E.DRIVER, "org1", name, status=E.READY, type="cron", config=conf))
    cron.start_cursor(store, driver, created)
    return driver


def scheduler(store, clock, emit=None, **kw):
    return cron.CronScheduler(store, emit or Recorder(), grace=GRACE, clock=clock, **kw)


def test_config_requires_a_valid_schedule_and_timezone():
    with pytest.raises(InvalidInput, match="schedule is required"):
        cron.parse_config({})
    with pytest.raises(InvalidInput, match="schedule '61 \\* \\* \\* \\*' is not valid"):
        cron.parse_config({"schedule": "61 * * * *"})
    with pytest.raises(InvalidInput, match="must have 5 fields"):
        cron.parse_config({"schedule": "* * *"})
    with pytest.raises(InvalidInput, match="timezone 'Mars/Olympus'"):
        cron.parse_config({"schedule": "* * * * *", "timezone": "Mars/Olympus"})
    with pytest.raises(InvalidInput, match="catchup 'maybe'"):
        cron.parse_config({"schedule": "* * * * *", "catchup": "maybe"})
    assert cron.parse_config({"schedule": "*/5 * * * * *"}) == {
        "schedule": "*/5 * * * * *", "timezone": "UTC", "eventType": cron.DEFAULT_EVENT_TYPE,
        "catchup": False}


def test_six_fields_put_seconds_first():
    times, more = cron.due_times("*/20 * * * * *", "UTC", T0, T0 + 60)
    assert [t - T0 for t in times] == [20, 40, 60] and not more


def test_due_times_follow_the_drivers_timezone():
    # 09:00 in Paris on 1 March (UTC+1) is 08:00 UTC
    start = dt.datetime(2026, 3, 1, 0, 0, tzinfo=dt.timezone.utc).timestamp()
    times, _ = cron.due_times("0 9 * * *", "Europe/Paris", start, start + 86400)
    assert [cron.iso(t) for t in times] == ["2026-03-01T08:00:00Z"]


def test_each_tick_is_emitted_once_with_an_id_from_driver_and_time(store):
    driver = make_driver(store)
    clock = Clock(T0 + 3)
    emit = Recorder()
    s = scheduler(store, clock, emit)
    assert s.tick() == 3
    assert s.tick() == 0  # nothing new is due
    clock.now += 2
    assert s.tick() == 2
    assert emit.times() == [cron.iso(T0 + i) for i in range(1, 6)]
    event = emit.events[(f"/dispatch/cron/org1/tick", f"{driver['id']}/{cron.iso(T0 + 1)}")]
    assert event["type"] == cron.DEFAULT_EVENT_TYPE and event["org"] == "org1"
    assert event["data"] == {"scheduledTime": cron.iso(T0 + 1), "driver": "tick"}


def test_two_schedulers_on_one_store_never_double_fire(store):
    make_driver(store)
    clock = Clock(T0)
    emit = Recorder()
    a, b = scheduler(store, clock, emit), scheduler(store, clock, emit)
    for _ in range(10):
        clock.now += 1
        a.tick()
        b.tick()
    assert emit.times() == [cron.iso(T0 + i) for i in range(1, 11)]
    assert len(emit.events) == 10


def test_a_leader_dying_between_emit_and_cursor_re_emits_the_same_ids(store):
    make_driver(store)
    clock = Clock(T0 + 2)
    emit = Recorder()
    s = scheduler(store, clock, emit)
    before = store.get(E.SCHEDULE, "org1", "tick")
    s.tick()
    store.update(dict(store.get(E.SCHEDULE, "org1", "tick"), last=before["last"]))  # "crash"
    s.tick()
    assert emit.calls == 4 and len(emit.events) == 2


def test_a_short_failover_is_not_a_miss(store):
    make_driver(store)
    clock = Clock(T0 + GRACE - 1)
    emit = Recorder()
    scheduler(store, clock, emit).tick()
    assert len(emit.events) == GRACE - 1
    assert store.get(E.DRIVER, "org1", "tick").get("missedTicks", 0) == 0


def test_with_catchup_every_missed_tick_is_emitted(store):
    make_driver(store, catchup="true")
    clock = Clock(T0 + 60)  # no scheduler for a minute
    emit = Recorder()
    scheduler(store, clock, emit).tick()
    assert emit.times() == [cron.iso(T0 + i) for i in range(1, 61)]
    assert store.get(E.DRIVER, "org1", "tick").get("missedTicks", 0) == 0


def test_catchup_beyond_its_limit_reports_the_rest(store):
    make_driver(store, catchup="true")
    clock = Clock(T0 + 60)
    emit = Recorder()
    scheduler(store, clock, emit, max_catchup=10).tick()
    # the on-time ticks (within the grace) and the latest 10 late ones
    on_time = int(GRACE) + 1  # scheduled at now - GRACE or later
    assert emit.times() == [cron.iso(T0 + i) for i in range(60 - on_time - 10 + 1, 61)]
    driver = store.get(E.DRIVER, "org1", "tick")
    assert driver["missedTicks"] == 60 - on_time - 10
    assert driver["lastMissed"]["from"] == cron.iso(T0 + 1)


def test_without_catchup_only_the_latest_tick_fires_and_the_gap_is_reported(store, caplog):
    make_driver(store)
    clock = Clock(T0 + 60)
    emit = Recorder()
    scheduler(store, clock, emit).tick()
    assert emit.times() == [cron.iso(T0 + 60)]
    driver = store.get(E.DRIVER, "org1", "tick")
    assert driver["missedTicks"] == 59
    assert driver["lastMissed"] == {"from": cron.iso(T0 + 1), "to": cron.iso(T0 + 59),
                                    "count": 59, "more": False}
    assert "missed 59 tick(s)" in driver["reason"][0]
    assert "cron.missed_ticks" in caplog.text
    # and it goes on normally after
    clock.now += 1
    scheduler(store, clock, emit).tick()
    assert emit.times()[-1] == cron.iso(T0 + 61)
    assert store.get(E.DRIVER, "org1", "tick")["missedTicks"] == 59


def test_a_new_driver_is_not_backfilled(store):
    make_driver(store, schedule="0 * * * * *", created=T0 + 30)
    clock = Clock(T0 + 61)
    emit = Recorder()
    scheduler(store, clock, emit).tick()
    assert emit.times() == [cron.iso(T0 + 60)]


def test_a_changed_schedule_restarts_the_cursor(store):
    driver = make_driver(store, schedule="0 0 1 1 *")  # yearly
    driver = store.update(dict(store.get(E.DRIVER, "org1", "tick"),
                               config=[{"key": "schedule", "value": "* * * * * *"}]))
    clock = Clock(T0 + 100)
    emit = Recorder()
    s = scheduler(store, clock, emit)
    s.tick()
    assert not emit.events  # restarted at now: no backfill of the new schedule
    clock.now += 2
    s.tick()
    assert emit.times() == [cron.iso(T0 + 101), cron.iso(T0 + 102)]


def test_a_driver_not_ready_does_not_tick(store):
    driver = make_driver(store)
    store.update(dict(store.get(E.DRIVER, "org1", "tick"), status=E.UPDATING))
    emit = Recorder()
    scheduler(store, Clock(T0 + 3), emit).tick()
    assert not emit.events and driver
