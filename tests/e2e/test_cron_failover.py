"""The highly available cron scheduler, on a real etcd and Redis: two Procfile
``scheduler`` processes, the leader killed with SIGKILL, then no scheduler at all for a
while. Every tick is one event (unique ids); a driver with ``catchup=true`` has no gap in
its scheduled times; one with ``catchup=false`` has exactly the outage's gap, and that
gap is reported on the driver."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
import uuid

import pytest
import redis
import requests
from cryptography.fernet import Fernet

from .conftest import Processes, free_port, wait_until

REDIS_DB = 14


@pytest.fixture
def env(etcd_endpoint, tmp_path):
    port = free_port()
    redis.Redis(db=REDIS_DB).flushdb()
    env = dict(os.environ,
               DISPATCH_STORE=f"etcd://{etcd_endpoint}",
               DISPATCH_BROKER=f"redis://127.0.0.1:6379/{REDIS_DB}",
               DISPATCH_HOME=str(tmp_path / "home"),
               DISPATCH_API_BIND=f"127.0.0.1:{port}",
               DISPATCH_RECONCILE_SECONDS="0.5", DISPATCH_STUCK_SECONDS="2",
               DISPATCH_CRON_SECONDS="1",
               DISPATCH_SECRET_KEY=Fernet.generate_key().decode(), DISPATCH_AUTH="off")
    env["url"] = f"http://127.0.0.1:{port}"
    return env


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def scheduled(api, event_type) -> list[float]:
    events = api.get(f"{api.base}/v1/event", params={"type": event_type}).json()
    return sorted(dt.datetime.strptime(e["event"]["data"]["scheduledTime"], "%Y-%m-%dT%H:%M:%SZ")
                  .replace(tzinfo=dt.timezone.utc).timestamp() for e in events), events


def leader_of(procs: Processes, names) -> str:
    def elected():
        for name in names:
            if "leader.elected name=cron" in (procs.logdir / f"{name}.log").read_text():
                return name
        return None

    return wait_until(elected, 30, what="a cron leader")


def test_two_schedulers_a_killed_leader_and_an_outage_never_double_fire_nor_skip_silently(
        env, tmp_path):
    procs = Processes(env, tmp_path)
    procs.commands["scheduler2"] = procs.commands["scheduler"]
    api = requests.Session()
    api.base = env["url"]
    api.headers["X-Dispatch-Org"] = "ha" + uuid.uuid4().hex[:6]
    try:
        for name in ("api", "worker", "scheduler", "scheduler2"):
            procs.start(name)
        wait_until(lambda: healthy(env["url"]), 60, what="the api process")
        for name, catchup in (("ha-on", "true"), ("ha-off", "false")):
            r = api.post(f"{api.base}/v1/event/drivers", json={
                "name": name, "type": "cron", "config": [
                    {"key": "schedule", "value": "* * * * * *"},
                    {"key": "eventType", "value": f"tick.{name}"},
                    {"key": "catchup", "value": catchup}]})
            assert r.status_code == 201, r.text
        wait_until(lambda: len(scheduled(api, "tick.ha-off")[0]) >= 3, 30, what="first ticks")

        # 1. the leader dies: the standby takes over within the lease, no tick is missed
        first = leader_of(procs, ("scheduler", "scheduler2"))
        standby = "scheduler2" if first == "scheduler" else "scheduler"
        procs.kill(first)
        leader_of(procs, (standby,))
        count = len(scheduled(api, "tick.ha-off")[0])
        wait_until(lambda: len(scheduled(api, "tick.ha-off")[0]) >= count + 3, 30,
                   what="ticks from the new leader")

        # 2. no scheduler at all for longer than the grace: then one starts again
        procs.kill(standby)
        killed_at = time.time()
        time.sleep(8)
        procs.start(first)
        wait_until(lambda: scheduled(api, "tick.ha-off")[0][-1] > killed_at + 10, 40,
                   what="ticks after the restart")
        time.sleep(1)
        for name in list(procs.procs):
            if name.startswith("scheduler"):
                procs.kill(name, signal.SIGTERM)
        check(api, killed_at, procs.logs())
    finally:
        procs.stop_all()


def check(api, killed_at, logs):
    on, on_events = scheduled(api, "tick.ha-on")
    off, off_events = scheduled(api, "tick.ha-off")
    for events in (on_events, off_events):
        ids = [e["event"]["id"] for e in events]
        assert len(ids) == len(set(ids)), logs
    # catchup=true: every second from the first tick to the last, none twice
    assert on == [on[0] + i for i in range(len(on))], (on, logs)
    # catchup=false: exactly one gap, the outage, and the driver names it
    gaps = [(a, b) for a, b in zip(off, off[1:]) if b - a != 1]
    assert len(gaps) == 1, (gaps, logs)
    a, b = gaps[0]
    assert a < killed_at + 1 and b > killed_at + 5  # past the grace (2 periods + lease)
    driver = api.get(f"{api.base}/v1/event/drivers/ha-off").json()
    assert driver["missedTicks"] == b - a - 1, (driver, logs)
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert driver["lastMissed"]["from"] == iso(a + 1) and driver["lastMissed"]["to"] == iso(b - 1)
    assert "missed" in driver["reason"][0]
    assert api.get(f"{api.base}/v1/event/drivers/ha-on").json()["missedTicks"] == 0
