"""``/v1/event/drivertypes``, ``/v1/event/drivers`` and ``/v1/event/ingest`` of an embedded
Dispatch: cron ticks, webhook posts and a custom driver program run real sandboxed
functions through subscriptions; bad input is refused with nothing stored."""

from __future__ import annotations

import base64
import os
import sys
import textwrap
import uuid

import pytest
import requests

from api.embedded import start_embedded
from engine.sources import pack

from .conftest import wait_for_status, wait_until

ECHO = '''\
def handle(ctx, payload):
    return {"input": payload, "event": ctx.get("event")}
'''
MAX_BODY = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2, max_body_bytes=MAX_BODY,
                            cron_seconds=0.5, driver_commands=("/usr/bin/env", sys.executable),
                            auth="off")
    yield server
    server.stop()


class Org:
    """One organization's view of the API."""

    def __init__(self, base: str, name: str):
        self.base, self.name = base, name
        self.session = requests.Session()
        self.session.headers["X-Dispatch-Org"] = name

    def __getattr__(self, method):
        return lambda path, **kw: self.session.request(method, self.base + path, **kw)

    def function(self, name, source):
        r = self.post("/v1/function", json={"name": name, "image": "python3",
                                            "handler": "echo.handle", "source": source})
        assert r.status_code == 201, r.text
        assert wait_for_status(self.base, name, org=self.name)["status"] == "READY"

    def subscribe(self, function, event_type):
        r = self.post("/v1/event/subscriptions", json={"eventType": event_type,
                                                       "function": function})
        assert r.status_code == 201, r.text
        name = r.json()["name"]
        wait_until(lambda: self.get(f"/v1/event/subscriptions/{name}").json()["status"]
                   == "READY", 15, what="subscription READY")

    def driver(self, **body):
        r = self.post("/v1/event/drivers", json=body)
        assert r.status_code == 201, r.text
        return self.wait_driver(r.json()["name"])

    def wait_driver(self, name, statuses=("READY",)):
        def settled():
            d = self.get(f"/v1/event/drivers/{name}").json()
            return d if d.get("status") in statuses else None

        return wait_until(settled, 20, what=f"driver {name} in {statuses}")

    def runs(self, function, count):
        def enough():
            runs = [r for r in self.get("/v1/runs", params={"functionName": function}).json()
                    if r["status"] in ("READY", "ERROR")]
            return runs if len(runs) >= count else None

        return wait_until(enough, 30, what=f"{count} runs of {function}")


@pytest.fixture(scope="module")
def echo_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "echo.py"
    path.write_text(ECHO)
    return base64.b64encode(pack(str(path))).decode()


@pytest.fixture
def org(server, echo_source):
    o = Org(server.url, "drv" + uuid.uuid4().hex[:8])
    o.function("echo", echo_source)
    return o


def pairs(**config):
    return [{"key": k, "value": v} for k, v in config.items()]


# ---- types ----------------------------------------------------------------------------

def test_builtin_types_are_listed_and_read_only(org):
    names = [t["name"] for t in org.get("/v1/event/drivertypes").json()]
    assert names[:2] == ["cron", "webhook"]
    assert org.get("/v1/event/drivertypes/cron").json()["builtin"] is True
    r = org.post("/v1/event/drivertypes", json={"name": "cron", "image": "x"})
    assert r.status_code == 409 and "built in" in r.json()["message"]
    assert org.delete("/v1/event/drivertypes/webhook").status_code == 409
    assert org.put("/v1/event/drivertypes/cron", json={"image": "x"}).status_code == 409


def test_a_type_needs_exactly_one_of_image_and_command(org):
    for body in ({"name": "t"}, {"name": "t", "image": "i", "command": ["c"]}):
        r = org.post("/v1/event/drivertypes", json=body)
        assert r.status_code == 400 and "exactly one of image" in r.json()["message"]
    assert [t["name"] for t in org.get("/v1/event/drivertypes").json()] == ["cron", "webhook"]


def test_a_type_in_use_cannot_be_deleted(org):
    r = org.post("/v1/event/drivertypes", json={"name": "sleeper",
                                                "command": [sys.executable, "-c", "import time; time.sleep(60)"]})
    assert r.status_code == 201 and r.json()["status"] == "READY"
    org.driver(type="sleeper", name="zz")
    r = org.delete("/v1/event/drivertypes/sleeper")
    assert r.status_code == 409 and "zz" in r.json()["message"]
    assert org.delete("/v1/event/drivers/zz").status_code == 200
    wait_until(lambda: org.get("/v1/event/drivers/zz").status_code == 404, 10, what="zz gone")
    assert org.delete("/v1/event/drivertypes/sleeper").status_code == 200


# ---- bad input ------------------------------------------------------------------------

@pytest.mark.parametrize("body, named", [
    ({"type": "cron", "config": pairs(schedule="61 * * * *")}, "schedule '61 * * * *'"),
    ({"type": "cron", "config": pairs(schedule="nonsense")}, "schedule 'nonsense'"),
    ({"type": "cron"}, "schedule is required"),
    ({"type": "cron", "config": pairs(schedule="* * * * *", timezone="Mars/Olympus")},
     "timezone 'Mars/Olympus'"),
    ({"type": "cron", "config": pairs(schedule="* * * * *", catchup="maybe")}, "catchup"),
    ({"type": "nosuchtype"}, "driver type 'nosuchtype' not found"),
    ({"type": "webhook", "name": "Upper_Case"}, "name 'Upper_Case'"),
    ({"type": "webhook", "config": pairs(eventType="bad type!")}, "eventType"),
])
def test_bad_drivers_are_refused_naming_the_problem_and_nothing_is_stored(org, body, named):
    r = org.post("/v1/event/drivers", json={"name": "bad", **body})
    assert r.status_code == 400, r.text
    assert named in r.json()["message"]
    assert org.get("/v1/event/drivers").json() == []


# ---- cron -----------------------------------------------------------------------------

def test_a_one_second_cron_driver_runs_its_subscriber_once_per_tick(org):
    org.subscribe("echo", "every.second")
    driver = org.driver(name="ticker", type="cron",
                        config=pairs(schedule="* * * * * *", eventType="every.second"))
    assert driver["url"] == "" and "token" not in driver
    runs = org.runs("echo", 4)
    times = sorted(r["output"]["input"]["scheduledTime"] for r in runs)
    assert len(set(times)) == len(times)  # one run per tick
    event = runs[0]["output"]["event"]
    assert event["type"] == "every.second" and event["source"] == f"/dispatch/cron/{org.name}/ticker"
    assert event["id"].startswith(driver["id"] + "/")
    assert org.delete("/v1/event/drivers/ticker").json()["status"] == "DELETING"
    wait_until(lambda: org.get("/v1/event/drivers/ticker").status_code == 404, 10,
               what="the driver gone")
    settled = len(org.runs("echo", 1))
    import time
    time.sleep(2)
    assert len(org.runs("echo", 1)) <= settled + 1  # a tick in flight at most


# ---- webhook --------------------------------------------------------------------------

def test_webhook_posts_become_events_with_its_token_only(org, server):
    org.subscribe("echo", "github.push")
    hook = org.driver(name="gh", type="webhook", config=pairs(eventType="github.push"))
    assert hook["url"] == f"{server.url}/v1/event/ingest/gh" and len(hook["token"]) > 20
    url = hook["url"]
    for headers in ({}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Bearer {hook['token']}x"}):
        r = requests.post(url, json={"x": 1}, headers=headers)
        assert r.status_code == 401 and r.json()["message"] == "token not recognized"
    r = requests.post(url, json={"ref": "main"}, headers={
        "Authorization": f"Bearer {hook['token']}", "Idempotency-Key": "delivery-1",
        "X-Dispatch-Org": "someone-else"})  # the org is the driver's, never a header's
    assert r.status_code == 200, r.text
    [emitted] = r.json()["events"]
    assert emitted == {"id": "delivery-1", "source": "/v1/event/ingest/gh",
                       "type": "github.push", "name": emitted["name"], "duplicate": False}
    again = requests.post(f"{server.url}/v1/event/ingest?authToken={hook['token']}",
                          json={"ref": "main"}, headers={"Idempotency-Key": "delivery-1"})
    assert again.json()["events"][0]["duplicate"] is True
    [run] = org.runs("echo", 1)
    assert run["output"]["input"] == {"ref": "main"}
    assert run["output"]["event"]["type"] == "github.push"


def test_a_cloudevent_posted_to_a_webhook_is_emitted_as_it_is(org):
    hook = org.driver(type="webhook")
    assert hook["name"].startswith("webhook-")
    org.subscribe("echo", "custom.thing")
    ce = {"specversion": "1.0", "id": "abc", "source": "/my/source", "type": "custom.thing",
          "data": {"n": 1}}
    r = requests.post(hook["url"], json=ce, headers={"Authorization": f"Bearer {hook['token']}"})
    assert r.status_code == 200, r.text
    assert r.json()["events"][0]["source"] == "/my/source"
    [run] = org.runs("echo", 1)
    assert run["output"]["input"] == {"n": 1}
    bad = dict(ce, specversion="9.9")
    r = requests.post(hook["url"], json=bad, headers={"Authorization": f"Bearer {hook['token']}"})
    assert r.status_code == 400 and "specversion" in r.json()["message"]


def test_a_text_body_is_wrapped_and_an_oversized_one_is_a_413(org):
    hook = org.driver(type="webhook", name="texts")
    auth = {"Authorization": f"Bearer {hook['token']}"}
    r = requests.post(hook["url"], data="plain words", headers={**auth, "Content-Type": "text/plain"})
    assert r.status_code == 200 and r.json()["events"][0]["type"] == "texts.webhook"
    r = requests.post(hook["url"], data="x" * (MAX_BODY + 1), headers=auth)
    assert r.status_code == 413 and str(MAX_BODY) in r.json()["message"]


def test_a_driver_not_ready_takes_no_events(org, server):
    hook = org.driver(type="webhook", name="soon")
    system = server.system
    stored = system.store.get("driver", org.name, "soon")
    system.store.update(dict(stored, status="UPDATING"))
    r = requests.post(hook["url"], json={}, headers={"Authorization": f"Bearer {hook['token']}"})
    assert r.status_code == 409 and "not READY" in r.json()["message"]


# ---- custom executables ---------------------------------------------------------------

DRIVER_PROGRAM = '''\
import json, os, sys, time, urllib.request
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
open(os.environ["PIDFILE"], "w").write(str(os.getpid()))
for i in range(int(args["count"])):
    event = {"specversion": "1.0", "id": f"{os.getpid()}-{i}", "source": "/custom",
             "type": "custom.tick", "data": {"greeting": args["greeting"], "i": i,
             "key": os.environ.get("API_KEY"), "org": os.environ["DISPATCH_ORGANIZATION"]}}
    request = urllib.request.Request(os.environ["DISPATCH_INGEST_URL"], json.dumps(event).encode(),
        {"Content-Type": "application/cloudevents+json",
         "Authorization": "Bearer " + os.environ["DISPATCH_INGEST_TOKEN"]})
    urllib.request.urlopen(request).read()
time.sleep(3600)
'''


def test_a_custom_executable_driver_posts_events_with_its_config_and_secrets(org, tmp_path):
    program = tmp_path / "driver.py"
    program.write_text(DRIVER_PROGRAM)
    pidfile = tmp_path / "pid"
    assert org.post("/v1/secret", json={"name": "keys", "secrets": {"api-key": "k-123"}}
                    ).status_code == 201
    r = org.post("/v1/event/drivertypes", json={
        "name": "pyticker", "command": ["/usr/bin/env", f"PIDFILE={pidfile}", sys.executable, str(program)],
        "config": pairs(count="2", greeting="hi")})
    assert r.status_code == 201, r.text
    org.subscribe("echo", "custom.tick")
    org.driver(name="mine", type="pyticker", config=pairs(greeting="hello"), secrets=["keys"])
    runs = org.runs("echo", 2)
    inputs = sorted((r["output"]["input"] for r in runs), key=lambda i: i["i"])
    assert inputs == [{"greeting": "hello", "i": i, "key": "k-123", "org": org.name}
                      for i in (0, 1)]
    pid = int(pidfile.read_text())
    assert org.delete("/v1/event/drivers/mine").status_code == 200
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 15,
               what="the driver's process to stop")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_a_driver_program_that_keeps_failing_is_an_error_with_its_output(org):
    r = org.post("/v1/event/drivertypes", json={
        "name": "broken", "command": [sys.executable, "-c",
                                      textwrap.dedent("import sys; print('no config file'); sys.exit(3)")]})
    assert r.status_code == 201
    org.post("/v1/event/drivers", json={"name": "flaky", "type": "broken"})
    driver = org.wait_driver("flaky", ("ERROR",))
    assert "exit code 3" in driver["reason"][0] and "no config file" in driver["reason"][0]
    org.delete("/v1/event/drivers/flaky")
