"""``dispatch emit`` and ``dispatch create|get|delete subscription`` (and subscriptions in
seed files) against a real embedded Dispatch, plus what ``emit`` puts on the wire."""

from __future__ import annotations

import base64
import json
import time

import pytest
import yaml

from tests.waiting import settles

ECHO = '''\
def handle(ctx, payload):
    return {"input": payload, "event": ctx.get("event"), "secrets": ctx.get("secrets")}
'''


@pytest.fixture
def echo(dispatch, own_org, tmp_path):
    """Function ``echo`` (READY) in a fresh organization, and secret ``door``."""
    path = tmp_path / "echo.py"
    path.write_text(ECHO)
    dispatch("create", "function", "--wait", "echo", path, "--image", "python3", "--handler", "echo.handle")
    values = tmp_path / "door.json"
    values.write_text(json.dumps({"password": "Sesame-2f7a"}))
    dispatch("create", "secret", "door", values)
    return "echo"


def settled_runs(dispatch, function, count, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = dispatch.json("get", "runs", function)
        done = [r for r in runs if r["status"] in ("READY", "ERROR")]
        if len(done) >= count:
            return done
        time.sleep(0.1)
    raise AssertionError(f"no {count} settled runs of {function} in {timeout}s")


def ready_subscription(dispatch, name, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sub = dispatch.json("get", "subscription", name)
        if sub["status"] == "READY":
            return sub
        time.sleep(0.05)
    raise AssertionError(f"subscription {name} not READY in {timeout}s")


def test_emit_runs_the_subscribed_function_with_its_secrets(dispatch, echo):
    result = dispatch("create", "subscription", "echo", "--event-type", "user.created",
                      "--name", "on-user", "--secret", "door")
    assert result.stdout == "Created subscription: on-user\n"
    sub = ready_subscription(dispatch, "on-user")
    assert sub["secrets"] == ["door"] and sub["function"] == "echo"

    emission = json.loads(dispatch("emit", "user.created", "--data", '{"name": "ann"}',
                                   "--event-id", "e-1", "--event-type-version", "2").stdout)
    assert emission["duplicate"] is False
    assert emission["event"]["source"] == "dispatch" and emission["event"]["id"] == "e-1"
    [run] = settled_runs(dispatch, "echo", 1)
    output = run["output"]
    assert output["input"] == {"name": "ann"}
    assert output["event"]["eventType"] == "user.created"
    assert output["event"]["eventTypeVersion"] == "2"
    assert output["secrets"] == {"password": "Sesame-2f7a"}

    again = json.loads(dispatch("emit", "user.created", "--data", "{}",
                                "--event-id", "e-1").stdout)
    assert again["duplicate"] is True


def test_emit_binary_mode_and_file_data(dispatch, echo, tmp_path):
    dispatch("create", "subscription", "echo", "--event-type", "file.up", "--name", "files")
    ready_subscription(dispatch, "files")
    png = tmp_path / "pixel.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    dispatch("emit", "file.up", "--data-from-file", png, "--binary")
    dispatch("emit", "file.up", "--data-from-file", png)  # structured: data_base64
    text = tmp_path / "note.txt"
    text.write_text("hello")
    dispatch("emit", "file.up", "--data-from-file", text, "--binary")
    runs = settled_runs(dispatch, "echo", 3)
    inputs = sorted(json.dumps(r["output"]["input"]) for r in runs)
    encoded = base64.b64encode(png.read_bytes()).decode()
    assert inputs == sorted([json.dumps(encoded)] * 2 + [json.dumps("hello")])
    types = {r["output"]["event"]["contentType"] for r in runs}
    assert types == {"image/png", "text/plain"}


def test_get_and_delete_subscriptions(dispatch, echo):
    dispatch("create", "subscription", "echo", "--event-type", "a.b", "--name", "s-one")
    made = dispatch.json("create", "subscription", "echo", "--event-type", "c.d")
    word, animal, digits = made["name"].split("-")
    assert len(digits) == 6 and made["status"] == "CREATING"
    ready_subscription(dispatch, "s-one")
    table = dispatch("get", "subscriptions").stdout
    header = table.splitlines()[0]
    assert [h.strip() for h in header.split("|")] == ["NAME", "EVENT TYPE", "FUNCTION",
                                                       "STATUS", "CREATED DATE"]
    assert "s-one" in table and made["name"] in table
    result = dispatch("delete", "subscription", "s-one")
    assert result.stdout == "Deleted subscription: s-one\n"
    settles(lambda: "s-one" not in dispatch("get", "subscriptions").stdout,
            "subscription not removed")


def test_subscriptions_in_seed_files(dispatch, echo, tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump({"kind": "Subscription", "name": "seeded",
                                    "eventType": "x.y", "function": "echo",
                                    "secrets": ["door"]}))
    assert dispatch("create", "--wait", "-f", seed).stdout == "Created Subscription: seeded\n"
    ready_subscription(dispatch, "seeded")
    seed.write_text(yaml.safe_dump({"kind": "Subscription", "name": "seeded",
                                    "eventType": "z.z", "function": "echo"}))
    assert dispatch("update", "--wait", "-f", seed).stdout == "Updated Subscription: seeded\n"
    assert ready_subscription(dispatch, "seeded")["eventType"] == "z.z"
    assert dispatch("delete", "-f", seed).stdout == "Deleted Subscription: seeded\n"


def test_bad_input_is_refused_naming_it(dispatch, echo):
    result = dispatch("emit", "user.created", "--data", "{oops", expect=2)
    assert "--data" in result.stderr and "not valid JSON" in result.stderr
    result = dispatch("emit", "user/created", expect=1)
    assert "type 'user/created' may only contain" in result.stderr
    result = dispatch("create", "subscription", "echo", "--event-type", "a b", expect=1)
    assert "eventType 'a b'" in result.stderr
    result = dispatch("emit", "x", "--data", "1", "--data-from-file", __file__, expect=2)
    assert "one or the other" in result.stderr


def test_emit_on_the_wire(dispatch, recorder):
    emission = {"id": "i", "name": "n", "emitted-time": 1, "tags": [], "event": {},
                "duplicate": False}
    recorder.answer("POST", "/v1/event", (200, emission))
    dispatch("emit", "user.created", "--data", '{"a": 1}', "--event-id", "e-9",
             "--source-id", "crm", "--event-schema-url", "https://s.example/u.json")
    request = recorder.requests[-1]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"] == "application/cloudevents+json"
    assert headers["x-dispatch-org"] == "default"
    body = request.body
    assert (body["specversion"], body["type"], body["id"], body["source"]) == (
        "1.0", "user.created", "e-9", "crm")
    assert body["data"] == {"a": 1} and body["dataschema"] == "https://s.example/u.json"
    assert body["datacontenttype"] == "application/json"

    # binary mode: attributes in ce-* headers, the data alone is the body
    dispatch("emit", "user.created", "--data", "[1, 2]", "--binary", "--event-id", "e-10")
    request = recorder.requests[-1]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["ce-type"] == "user.created" and headers["ce-specversion"] == "1.0"
    assert headers["ce-source"] == "dispatch" and headers["ce-id"] == "e-10"
    assert headers["content-type"] == "application/json" and request.body == [1, 2]
