"""``/v1/event`` of an embedded Dispatch: events in every CloudEvents shape run real
sandboxed functions through subscriptions; duplicates, other organizations, bad events
and oversized bodies do not."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import requests

from api.embedded import start_embedded
from engine.sources import pack

from .conftest import wait_for_status, wait_until

ECHO = '''\
def handle(ctx, payload):
    return {"input": payload, "event": ctx.get("event"), "secrets": ctx.get("secrets")}
'''
PASSWORD = "Sesame-5c1d9e"
MAX_BODY = 4096


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # its own server: a small body limit, to test the 413 without sending megabytes
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2, max_body_bytes=MAX_BODY,
                            auth="off")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def echo_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "echo.py"
    path.write_text(ECHO)
    return base64.b64encode(pack(str(path))).decode()


class Org:
    """One organization's view of the API."""

    def __init__(self, base: str, name: str):
        self.base, self.name = base, name
        self.session = requests.Session()
        self.session.headers["X-Dispatch-Org"] = name

    def post(self, path, **kw):
        return self.session.post(self.base + path, **kw)

    def get(self, path, **kw):
        return self.session.get(self.base + path, **kw)

    def function(self, name, source):
        r = self.post("/v1/function", json={"name": name, "image": "python3",
                                            "handler": "echo.handle", "source": source})
        assert r.status_code == 201, r.text
        assert wait_for_status(self.base, name, org=self.name)["status"] == "READY"

    def subscribe(self, function, event_type, **extra):
        r = self.post("/v1/event/subscriptions",
                      json={"eventType": event_type, "function": function, **extra})
        assert r.status_code == 201, r.text
        name = r.json()["name"]
        return wait_until(lambda: self._ready(name), 15, what=f"subscription {name} READY")

    def _ready(self, name):
        sub = self.get(f"/v1/event/subscriptions/{name}").json()
        return sub if sub["status"] == "READY" else None

    def runs_of(self, function):
        return self.get("/v1/runs", params={"functionName": function}).json()

    def settled_runs(self, function, count):
        def settled():
            runs = self.runs_of(function)
            done = [r for r in runs if r["status"] in ("READY", "ERROR")]
            return done if len(done) >= count else None

        return wait_until(settled, 30, what=f"{count} runs of {function}")


@pytest.fixture
def org(server, echo_source):
    """A fresh organization with function ``echo`` subscribed to ``user.created``, with a
    secret."""
    org = Org(server.url, f"ev-{uuid.uuid4().hex[:8]}")
    r = org.post("/v1/secret", json={"name": "door", "secrets": {"password": PASSWORD}})
    assert r.status_code == 201, r.text
    org.function("echo", echo_source)
    org.subscription = org.subscribe("echo", "user.created", secrets=["door"])
    return org


def v01(event_id=None, **extra):
    return {"eventType": "user.created", "cloudEventsVersion": "0.1", "source": "crm",
            "eventID": event_id or str(uuid.uuid4()), "data": {"name": "ann"}, **extra}


def test_a_dispatch_01_event_runs_the_subscribed_function(org):
    r = org.post("/v1/event", json=v01(contentType="application/json"))
    assert r.status_code == 200, r.text
    emission = r.json()
    assert emission["duplicate"] is False and emission["id"] and emission["emitted-time"]
    assert emission["event"]["type"] == "user.created" and emission["tags"] == []
    [run] = org.settled_runs("echo", 1)
    assert run["status"] == "READY", run
    output = run["output"]
    assert output["input"] == {"name": "ann"}
    assert output["event"]["eventType"] == output["event"]["type"] == "user.created"
    assert output["event"]["eventID"] == emission["event"]["id"]
    assert "data" not in output["event"]
    # unlike the original, the subscription's secrets reach the run
    assert output["secrets"] == {"password": PASSWORD}
    # the event record says which runs it started
    record = org.get(f"/v1/event/{emission['name']}").json()
    assert record["status"] == "READY" and record["runs"] == [run["name"]]


def test_a_10_structured_event_with_a_trailing_slash(org):
    event = {"specversion": "1.0", "type": "user.created", "source": "crm",
             "id": str(uuid.uuid4()), "data": [1, 2, 3]}
    r = org.post("/v1/event/", data=json.dumps(event),
                 headers={"Content-Type": "application/cloudevents+json"})
    assert r.status_code == 200, r.text
    [run] = org.settled_runs("echo", 1)
    assert run["output"]["input"] == [1, 2, 3]
    assert run["output"]["event"]["id"] == event["id"]


def test_a_10_binary_event(org):
    headers = {"ce-specversion": "1.0", "ce-type": "user.created", "ce-source": "crm",
               "ce-id": str(uuid.uuid4()), "ce-tenant": "t1", "Content-Type": "text/plain"}
    r = org.post("/v1/event", data=b"hello there", headers=headers)
    assert r.status_code == 200, r.text
    [run] = org.settled_runs("echo", 1)
    assert run["output"]["input"] == "hello there"
    event = run["output"]["event"]
    assert event["contentType"] == "text/plain" and event["extensions"] == {"tenant": "t1"}


def test_a_10_batch_runs_once_per_event_and_answers_a_list(org):
    events = [{"specversion": "1.0", "type": "user.created", "source": "crm",
               "id": str(uuid.uuid4()), "data": {"n": n}} for n in range(2)]
    r = org.post("/v1/event", data=json.dumps(events),
                 headers={"Content-Type": "application/cloudevents-batch+json"})
    assert r.status_code == 200, r.text
    assert [e["event"]["id"] for e in r.json()] == [e["id"] for e in events]
    runs = org.settled_runs("echo", 2)
    assert sorted(run["output"]["input"]["n"] for run in runs) == [0, 1]
    # a batch with one bad event keeps none of them
    bad = [dict(events[0], id="fresh"), dict(events[1], id="")]
    r = org.post("/v1/event", data=json.dumps(bad),
                 headers={"Content-Type": "application/cloudevents-batch+json"})
    assert r.status_code == 400 and r.json()["message"] == "event 1 of the batch: id is required"
    assert len(org.get("/v1/event").json()) == 2


def test_the_same_event_twice_runs_once(org):
    first = org.post("/v1/event", json=v01("dup-1")).json()
    second = org.post("/v1/event", json=v01("dup-1")).json()
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert first["id"] == second["id"]
    org.settled_runs("echo", 1)
    assert len(org.runs_of("echo")) == 1
    events = org.get("/v1/event", params={"type": "user.created"}).json()
    assert len(events) == 1


def test_another_organizations_subscription_never_fires(server, org, echo_source):
    other = Org(server.url, f"ev-{uuid.uuid4().hex[:8]}")
    other.function("echo", echo_source)
    other.subscribe("echo", "user.created")
    r = org.post("/v1/event", json=v01())
    assert r.status_code == 200
    org.settled_runs("echo", 1)
    # the event is READY (delivered) and started no run in the other organization
    record = org.get(f"/v1/event/{r.json()['name']}").json()
    assert record["status"] == "READY"
    assert other.runs_of("echo") == []
    assert other.get(f"/v1/event/{r.json()['name']}").status_code == 404


@pytest.mark.parametrize("body, headers, message", [
    (v01(cloudEventsVersion="0.2"), None, "cloudEventsVersion must be 0.1"),
    ({k: v for k, v in v01().items() if k != "eventType"}, None, "eventType is required"),
    (v01(eventTime="tuesday"), None, "eventTime is not an RFC 3339 timestamp"),
    (b"{oops", {"Content-Type": "application/json"}, "invalid JSON body"),
    (b"", {"ce-specversion": "1.0", "ce-type": "user.created", "ce-source": "s"},
     "ce-id is required"),
])
def test_malformed_events_are_400_naming_the_field_and_nothing_is_stored(
        org, body, headers, message):
    if isinstance(body, bytes):
        r = org.post("/v1/event", data=body, headers=headers)
    else:
        r = org.post("/v1/event", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert org.get("/v1/event").json() == []
    assert org.runs_of("echo") == []


def test_a_body_over_the_limit_is_413_naming_it(org):
    r = org.post("/v1/event", json=v01(data={"blob": "x" * MAX_BODY}))
    assert r.status_code == 413
    assert f"limit of {MAX_BODY} bytes" in r.json()["message"]
    assert org.get("/v1/event").json() == []


def test_subscription_crud_in_dispatchs_codes(org):
    sub = org.subscription
    assert sub["kind"] == "Subscription" and sub["secrets"] == ["door"]
    listed = org.get("/v1/event/subscriptions").json()
    assert [s["name"] for s in listed] == [sub["name"]]
    r = org.session.put(f"{org.base}/v1/event/subscriptions/{sub['name']}",
                        json={"eventType": "user.deleted", "function": "echo"})
    assert r.status_code == 200 and r.json()["status"] == "UPDATING"
    wait_until(lambda: org._ready(sub["name"]), 15, what="update synced")
    r = org.session.delete(f"{org.base}/v1/event/subscriptions/{sub['name']}")
    assert r.status_code == 200 and r.json()["status"] == "DELETING"
    wait_until(lambda: org.get(f"/v1/event/subscriptions/{sub['name']}").status_code == 404,
               15, what="subscription gone")


def test_bad_subscriptions_are_400_naming_the_field(org):
    r = org.post("/v1/event/subscriptions", json={"eventType": "a b", "function": "echo"})
    assert r.status_code == 400 and "eventType 'a b'" in r.json()["message"]
    r = org.post("/v1/event/subscriptions", json={"eventType": "a.b"})
    assert r.status_code == 400 and "function" in r.json()["message"]
    r = org.post("/v1/event/subscriptions",
                 json={"eventType": "a.b", "function": "echo", "secrets": "door"})
    assert r.status_code == 400 and "secrets" in r.json()["message"]


def test_a_subscription_to_a_missing_function_errors_then_heals(org, echo_source):
    r = org.post("/v1/event/subscriptions",
                 json={"name": "later", "eventType": "a.b", "function": "echo2"})
    assert r.status_code == 201
    errored = wait_until(lambda: (lambda s: s if s["status"] == "ERROR" else None)(
        org.get("/v1/event/subscriptions/later").json()), 15, what="ERROR")
    assert errored["reason"] == ["function echo2 not found"]
    org.function("echo2", echo_source)
    wait_until(lambda: org._ready("later"), 30, what="healed by the reconciler")


def test_event_routes_do_not_swallow_other_paths(org):
    assert org.get("/v1/event/nosuchpath").status_code == 404
    assert org.get("/v1/event/" + "0" * 40).status_code == 404
