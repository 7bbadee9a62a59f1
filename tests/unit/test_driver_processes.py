"""DriverSupervisor with real processes on a memory store: what a driver's program is
given, restarts and ERROR, restarts on change, stops on delete and on lost leadership."""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest
from cryptography.fernet import Fernet, MultiFernet

from engine import entities as E
from engine.scheduler.driver_processes import DriverSupervisor
from engine.jobs import RecordingJobs
from engine.services.event_drivers import EventDriverService
from engine.store import open_store

from tests.waiting import settles

RECORD = """
import json, os, sys, time
out = os.environ["OUT"]
json.dump({"argv": sys.argv[1:], "env": dict(os.environ), "pid": os.getpid()}, open(out + ".tmp", "w"))
os.rename(out + ".tmp", out)
time.sleep(60)
"""


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def world(tmp_path):
    store = open_store("memory://")
    drivers = EventDriverService(store, RecordingJobs(),
                                 MultiFernet([Fernet(Fernet.generate_key())]),
                                 "http://api:1",
                                 allowed_commands=("/usr/bin/env", sys.executable))
    clock = Clock()
    secrets = {"keys": {"api-key": "k1"}}
    supervisor = DriverSupervisor(store, drivers,
                                  lambda org, names: {k: v for n in names
                                                      for k, v in secrets[n].items()},
                                  str(tmp_path), clock=clock)
    yield store, drivers, supervisor, clock
    supervisor.close()
    store.close()


def add_driver(drivers, store, command, name="d1", **config):
    drivers.create_type("o", {"name": "t", "command": command}) if not store.list(
        E.DRIVER_TYPE, "o") else None
    drivers.create("o", {"name": name, "type": "t", "secrets": ["keys"],
                         "config": [{"key": k, "value": v} for k, v in config.items()]})
    drivers.sync(f"/dispatch/driver/o/{name}")


def wait_for(path):
    settles(lambda: os.path.exists(path), f"{path} never appeared")
    return json.loads(open(path).read())


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return not f.read().split(") ")[1].startswith("Z")
    except OSError:
        return False


def test_a_program_gets_its_config_secrets_and_ingest_settings(world, tmp_path):
    store, drivers, supervisor, _ = world
    out = tmp_path / "seen.json"
    add_driver(drivers, store, ["/usr/bin/env", f"OUT={out}", sys.executable, "-c", RECORD],
               seconds="5")
    supervisor.reconcile()
    seen = wait_for(out)
    token = drivers.get("o", "d1")["token"]
    assert seen["argv"] == ["--seconds=5"]
    env = seen["env"]
    assert env["API_KEY"] == "k1" and env["DISPATCH_INGEST_TOKEN"] == token == env["AUTH_TOKEN"]
    assert env["DISPATCH_INGEST_URL"] == "http://api:1/v1/event/ingest/d1"
    assert env["DISPATCH_ORGANIZATION"] == "o" and env["DISPATCH_DRIVER_TYPE"] == "t"
    assert "DISPATCH_SECRET_KEY" not in env
    supervisor.reconcile()  # still running: not started twice
    assert len(supervisor.children) == 1 and alive(seen["pid"])
    # changed config: restarted with it
    os.remove(out)
    drivers.update("o", "d1", {"config": [{"key": "seconds", "value": "7"}]})
    drivers.sync("/dispatch/driver/o/d1")
    supervisor.reconcile()
    again = wait_for(out)
    assert again["argv"] == ["--seconds=7"] and not alive(seen["pid"])
    # deleted: stopped
    drivers.delete("o", "d1")
    drivers.sync("/dispatch/driver/o/d1")
    supervisor.reconcile()
    assert not supervisor.children and not alive(again["pid"])


def test_a_program_that_keeps_exiting_turns_its_driver_error_and_is_retried(world):
    store, drivers, supervisor, clock = world
    add_driver(drivers, store, [sys.executable, "-c", "print('bad flag'); raise SystemExit(2)"])
    child = None
    for _ in range(6):  # start, exit, restart after the backoff, ...
        supervisor.reconcile()
        child = supervisor.children["/dispatch/driver/o/d1"]
        if child.process is not None:
            child.process.wait()
        clock.now += 5  # past the first backoffs (1, 2, 4 s), short of "healthy"
    assert child.failures >= 3
    driver = store.get(E.DRIVER, "o", "d1")
    assert driver["status"] == E.ERROR
    assert "exit code 2" in driver["reason"][0] and "bad flag" in driver["reason"][0]
    supervisor.reconcile()
    assert child.process is not None  # still retried


def test_programs_stop_when_the_passes_stop(world, tmp_path):
    store, drivers, supervisor, _ = world
    out = tmp_path / "seen.json"
    add_driver(drivers, store, ["/usr/bin/env", f"OUT={out}", sys.executable, "-c", RECORD])
    supervisor.reconcile()
    pid = wait_for(out)["pid"]
    stop = threading.Event()
    watchdog = threading.Thread(target=supervisor.watchdog, args=(0.3, stop), daemon=True)
    watchdog.start()
    settles(lambda: not alive(pid), "the program outlived the leadership")
    stop.set()
    watchdog.join(5)
