"""``dispatch create|get|delete eventdriver|eventdrivertype`` (and both kinds in seed files)
against a real embedded Dispatch."""

from __future__ import annotations

import json
import sys
import time

import pytest
import requests
import yaml

from .conftest import embedded


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An embedded Dispatch whose operator lets driver types run this Python."""
    yield from embedded(tmp_path_factory, driver_commands=(sys.executable,), auth="off")


def settled_driver(dispatch, name, statuses=("READY",), timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        driver = dispatch.json("get", "eventdriver", name)
        if driver["status"] in statuses:
            return driver
        time.sleep(0.05)
    raise AssertionError(f"driver {name} not in {statuses} in {timeout}s")


def test_create_get_and_delete_a_cron_driver(dispatch, own_org):
    out = dispatch("create", "eventdriver", "cron", "--name", "nightly",
                   "--set", "schedule=0 3 * * *", "--set", "timezone=Europe/Paris").stdout
    assert out == "Created event driver: nightly\n"
    driver = settled_driver(dispatch, "nightly")
    assert {"key": "timezone", "value": "Europe/Paris"} in driver["config"]
    table = dispatch("get", "eventdrivers").stdout
    assert "nightly" in table and "cron" in table and "schedule=0 3 * * *" in table
    assert dispatch("delete", "eventdriver", "nightly").stdout == "Deleted event driver: nightly\n"


def test_bad_cron_is_refused_naming_it(dispatch, own_org):
    result = dispatch("create", "eventdriver", "cron", "--set", "schedule=every day", expect=1)
    assert "schedule 'every day'" in result.stderr
    assert json.loads(dispatch("get", "eventdrivers", "-o", "json").stdout) == []


def test_a_webhook_driver_shows_its_url_and_token(dispatch, own_org, at_server):
    out = dispatch("create", "eventdriver", "webhook", "--name", "hook").stdout
    assert "Ingest URL: " in out and "/v1/event/ingest/hook" in out
    token = out.split("Token: ")[1].strip()
    settled_driver(dispatch, "hook")
    r = requests.post(f"{at_server.url}/v1/event/ingest/hook", json={"a": 1},
                      headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


def test_driver_types_from_a_command_and_from_an_image(dispatch, own_org):
    out = dispatch("create", "eventdrivertype", "ticker", "--command",
                   f"{sys.executable} -c 'import time; time.sleep(60)'", "--set", "seconds=5").stdout
    assert out == "Created event driver type: ticker\n"
    dtype = dispatch.json("get", "eventdrivertype", "ticker")
    assert dtype["command"] == [sys.executable, "-c", "import time; time.sleep(60)"]
    assert dtype["config"] == [{"key": "seconds", "value": "5"}]
    dispatch("create", "eventdrivertype", "boxed", "example.org/driver:1", "--expose")
    table = dispatch("get", "eventdrivertypes").stdout
    for name in ("cron", "webhook", "ticker", "boxed", "example.org/driver:1"):
        assert name in table
    dispatch("create", "eventdrivertype", "both", "img", "--command", "x", expect=2)
    dispatch("create", "eventdriver", "ticker", "--name", "t1")
    settled_driver(dispatch, "t1")
    result = dispatch("delete", "eventdrivertype", "ticker", expect=1)
    assert "t1" in result.stderr
    dispatch("delete", "eventdriver", "t1")
    dispatch("delete", "eventdrivertype", "boxed")


def test_drivers_and_types_in_a_seed_file(dispatch, own_org, tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump_all([
        {"kind": "DriverType", "name": "sleeper", "command": [sys.executable, "-c", "import time; time.sleep(60)"]},
        {"kind": "Driver", "name": "s1", "type": "sleeper",
         "config": [{"key": "k", "value": "v"}]},
        {"kind": "Driver", "name": "tick", "type": "cron",
         "config": [{"key": "schedule", "value": "*/5 * * * *"}]},
    ]))
    dispatch("create", "-f", seed)
    assert settled_driver(dispatch, "s1")["type"] == "sleeper"
    settled_driver(dispatch, "tick")
    dispatch("delete", "-f", seed)
    deadline = time.monotonic() + 15
    while dispatch.json("get", "eventdrivers") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dispatch.json("get", "eventdrivers") == []
