"""Multi-tenancy: organization B, with a service account allowed everything in B (not
globally), reaches nothing of organization A — whatever names, run ids, query
parameters or ``X-Dispatch-Org`` it sends.

Both organizations have an account named ``ops`` and a policy ``all`` (``*`` on ``*``);
A owns a function, a run, a secret, a base image and an image, a subscription, an event,
a webhook event driver, and a public and a bearer API. Every test has a positive
control (A reaching its own thing) so that a broken fixture cannot pass for isolation.
"""

from __future__ import annotations

import base64
import time
import uuid

import pytest
import requests

from api.embedded import start_embedded
from engine.sources import pack
from tests.unit.identity_keys import rsa_key

from .conftest import wait_until
from .identity_client import account_client, admin_client

SOURCE = '''\
def handle(ctx, payload):
    return {"payload": payload, "secrets": ctx.get("secrets")}
'''
SECRET_VALUE = "A-only-password-7f3c"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2, cron_seconds=0.5)
    yield server
    server.stop()


class Tenant:
    def __init__(self, admin, name: str, key_index: int):
        self.name = name
        r = admin.post("/v1/iam/organization", json={"name": name})
        assert r.status_code == 201, r.text
        self.client = account_client(admin, name, "ops", rsa_key(2048, key_index))
        r = admin.post("/v1/iam/policy", org=name, json={"name": "all", "rules": [
            {"subjects": ["ops"], "resources": ["*"], "actions": ["*"]}]})
        assert r.status_code == 201, r.text
        wait_until(lambda: self.get("/v1/function").status_code == 200, 10,
                   what=f"{name}'s policy applied")

    def __getattr__(self, method):
        return getattr(self.client, method)

    def function(self, name: str, source: str, **extra):
        r = self.post("/v1/function", json={"name": name, "image": "python3",
                                            "handler": "fn.handle", "source": source,
                                            **extra})
        assert r.status_code == 201, r.text

        def settled():
            status = self.get(f"/v1/function/{name}").json().get("status")
            return status if status in ("READY", "ERROR") else None

        assert wait_until(settled, 60, what=f"function {name}") == "READY"

    def runs(self, function: str) -> list[dict]:
        r = self.get("/v1/runs", params={"functionName": function, "since": -62135596800})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "fn.py"
    path.write_text(SOURCE)
    return base64.b64encode(pack(str(path))).decode()


@pytest.fixture(scope="module")
def world(server, source):
    """Tenants A and B, and everything of A's that B will try to reach."""
    admin = admin_client(server)
    suffix = uuid.uuid4().hex[:6]
    a, b = Tenant(admin, "orga" + suffix, 11), Tenant(admin, "orgb" + suffix, 12)
    a.function("onlya", source)
    b.function("echo", source)
    assert a.post("/v1/secret", json={"name": "creds", "secrets": {"password": SECRET_VALUE}}
                  ).status_code == 201
    run = a.post("/v1/runs?functionName=onlya", json={"input": {"n": 1}, "blocking": True})
    assert run.status_code == 200 and run.json()["status"] == "READY", run.text
    assert a.post("/v1/baseimage", json={"name": "base-a", "dockerUrl": "python3",
                                         "language": "python3"}).status_code == 201
    assert a.post("/v1/image", json={"name": "img-a", "baseImageName": "base-a"}
                  ).status_code == 201
    sub = a.post("/v1/event/subscriptions", json={"name": "sub-a", "eventType": "shared.t",
                                                  "function": "onlya"})
    assert sub.status_code == 201, sub.text
    wait_until(lambda: a.get("/v1/event/subscriptions/sub-a").json()["status"] == "READY",
               20, what="A's subscription")
    driver = a.post("/v1/event/drivers", json={"name": "hook-a", "type": "webhook"})
    assert driver.status_code == 201, driver.text
    wait_until(lambda: a.get("/v1/event/drivers/hook-a").json()["status"] == "READY", 20,
               what="A's driver")
    for name, uri, authentication in (("pub-a", "/pub", "public"),
                                      ("sec-a", "/sec", "bearer")):
        r = a.post("/v1/api", json={"name": name, "function": "onlya", "uris": [uri],
                                    "methods": ["GET", "POST"],
                                    "authentication": authentication})
        assert r.status_code == 200, r.text
        wait_until(lambda: a.get(f"/v1/api/{name}").json()["status"] == "READY", 20,
                   what=f"A's api {name}")
    emitted = a.post("/v1/event", json={"specversion": "1.0", "id": "e-a-1",
                                        "source": "/test", "type": "other.t",
                                        "data": {"x": 1}})
    assert emitted.status_code == 200, emitted.text
    return {"server": server, "a": a, "b": b, "run": run.json()["name"],
            "event": emitted.json()["name"]}


def a_paths(world) -> list[str]:
    """Paths naming each of A's things."""
    return [
        "/v1/function/onlya",
        f"/v1/runs/{world['run']}",
        f"/v1/runs/{world['run']}?functionName=onlya",
        "/v1/runs?functionName=onlya",
        "/v1/secret/creds",
        "/v1/baseimage/base-a",
        "/v1/image/img-a",
        "/v1/event/subscriptions/sub-a",
        f"/v1/event/{world['event']}",
        "/v1/event/drivers/hook-a",
        "/v1/api/pub-a",
        "/v1/api/sec-a",
        "/v1/iam/serviceaccount/ops",
        "/v1/iam/policy/all",
    ]


LISTS = {"/v1/function": "onlya", "/v1/secret": "creds", "/v1/baseimage": "base-a",
         "/v1/image": "img-a", "/v1/event/subscriptions": "sub-a",
         "/v1/event/drivers": "hook-a", "/v1/api": "pub-a"}


def test_the_owner_reaches_its_own_things(world):
    a = world["a"]
    for path in a_paths(world):
        r = a.get(path)
        assert r.status_code == 200, (path, r.text)
    assert SECRET_VALUE in a.get("/v1/secret/creds").text
    for path, name in LISTS.items():
        assert name in [e["name"] for e in a.get(path).json()], path


def test_b_cannot_read_a_s_things_by_name_or_id(world):
    b = world["b"]
    for path in a_paths(world):
        r = b.get(path)
        if path == "/v1/runs?functionName=onlya":
            assert r.status_code == 404 or r.json() == [], (path, r.text)
        elif path.startswith("/v1/iam/"):
            # B has its own ops and all: B sees those, never A's
            assert r.status_code == 200 and r.json()["organizationId"] == world["b"].name
            continue
        else:
            assert r.status_code == 404, (path, r.status_code, r.text)
        assert SECRET_VALUE not in r.text and world["a"].name not in r.text, (path, r.text)


def test_b_lists_none_of_a_s_things(world):
    b = world["b"]
    for path, name in LISTS.items():
        r = b.get(path)
        assert r.status_code == 200, (path, r.text)
        assert name not in [e["name"] for e in r.json()], path
        assert world["a"].name not in r.text
    events = b.get("/v1/event").json()
    assert world["event"] not in [e.get("name") for e in events]
    assert [o["name"] for o in b.get("/v1/iam/organization").json()] == [b.name]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
def test_b_naming_organization_a_is_403_everywhere(world, method):
    a, b = world["a"], world["b"]
    paths = a_paths(world) + list(LISTS) + [
        "/v1/runs?functionName=onlya", "/v1/event", "/v1/iam/serviceaccount",
        "/v1/iam/policy", "/v1/event/drivertypes"]
    for path in paths:
        r = b.request(method, path, org=a.name, json={"name": "x"})
        assert r.status_code == 403, (method, path, r.text)
        assert SECRET_VALUE not in r.text
    # and nothing changed
    assert a.get("/v1/secret/creds").json()["secrets"] == {"password": SECRET_VALUE}
    assert a.get("/v1/function/onlya").json()["status"] == "READY"


def test_b_cannot_update_delete_or_run_a_s_things_by_name(world):
    a, b = world["a"], world["b"]
    before = len(a.runs("onlya"))
    for path in ("/v1/function/onlya", "/v1/secret/creds", "/v1/image/img-a",
                 "/v1/baseimage/base-a", "/v1/event/subscriptions/sub-a",
                 "/v1/event/drivers/hook-a", "/v1/api/pub-a"):
        assert b.put(path, json={}).status_code in (400, 404), path
        assert b.delete(path).status_code == 404, path
    r = b.post("/v1/runs?functionName=onlya", json={"input": {}, "blocking": True})
    assert r.status_code == 404, r.text
    assert len(a.runs("onlya")) == before
    assert a.get("/v1/secret/creds").json()["secrets"] == {"password": SECRET_VALUE}
    for path in ("/v1/image/img-a", "/v1/event/drivers/hook-a", "/v1/api/pub-a"):
        assert a.get(path).status_code == 200, path


def test_b_cannot_use_a_s_secret_or_base_image(world):
    b = world["b"]
    r = b.post("/v1/runs?functionName=echo", json={"input": {}, "blocking": True,
                                                    "secrets": ["creds"]})
    assert SECRET_VALUE not in r.text
    assert r.status_code >= 400 or r.json()["status"] == "ERROR", r.text
    r = b.post("/v1/image", json={"name": "img-b", "baseImageName": "base-a"})
    if r.status_code == 201:  # accepted, then it must fail to build on a base B lacks
        wait_until(lambda: b.get("/v1/image/img-b").json()["status"] == "ERROR", 30,
                   what="B's image on A's base to fail")
    else:
        assert 400 <= r.status_code < 500, r.text


def test_b_s_subscription_to_a_s_function_never_runs_it(world):
    a, b = world["a"], world["b"]
    r = b.post("/v1/event/subscriptions", json={"name": "steal", "eventType": "steal.t",
                                                "function": "onlya"})
    assert r.status_code in (201, 400, 404), r.text
    before = len(a.runs("onlya"))
    r = b.post("/v1/event", json={"specversion": "1.0", "id": "steal-1", "source": "/b",
                                  "type": "steal.t", "data": {"from": "B"}})
    assert r.status_code == 200, r.text
    time.sleep(2)  # a delivery would have happened by now (the positive control below)
    assert len(a.runs("onlya")) == before


def test_an_event_emitted_in_b_never_reaches_a_s_subscription(world):
    a, b = world["a"], world["b"]
    before = len(a.runs("onlya"))
    r = b.post("/v1/event", json={"specversion": "1.0", "id": "from-b", "source": "/b",
                                  "type": "shared.t", "data": {"from": "B"}})
    assert r.status_code == 200, r.text
    # positive control: the same type emitted in A runs A's subscriber
    r = a.post("/v1/event", json={"specversion": "1.0", "id": "from-a", "source": "/a",
                                  "type": "shared.t", "data": {"from": "A"}})
    assert r.status_code == 200, r.text

    def delivered():
        runs = [run for run in a.runs("onlya") if run["status"] in ("READY", "ERROR")]
        return runs if len(runs) > before else None

    wait_until(delivered, 30, what="A's own event delivered")
    time.sleep(1.5)  # B's event was emitted first: it would have arrived by now
    inputs = [run.get("input") for run in a.runs("onlya")]
    assert any((i or {}).get("from") == "A" or "from" in str(i) for i in inputs)
    assert not any("'B'" in str(i) or '"B"' in str(i) for i in inputs), inputs


def test_b_cannot_post_to_a_s_event_driver(world):
    a, b = world["a"], world["b"]
    url = world["server"].url
    r = b.post("/v1/event/drivers", json={"name": "hook-b", "type": "webhook"})
    assert r.status_code == 201, r.text
    wait_until(lambda: b.get("/v1/event/drivers/hook-b").json()["status"] == "READY", 20,
               what="B's driver")
    b_token = b.get("/v1/event/drivers/hook-b").json()["token"]
    a_token = a.get("/v1/event/drivers/hook-a").json()["token"]
    # B's driver token, and B's account token, at A's driver: refused
    for token in (b_token, "not-a-token"):
        r = requests.post(f"{url}/v1/event/ingest/hook-a", json={"x": 1},
                          headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, r.text
    r = b.client.session.post(f"{url}/v1/event/ingest/hook-a", json={"x": 1})
    assert r.status_code == 401, r.text
    # positive control: A's own token works
    r = requests.post(f"{url}/v1/event/ingest/hook-a", json={"x": 1},
                      headers={"Authorization": f"Bearer {a_token}"})
    assert r.status_code == 200, r.text


def test_the_gateway_keeps_a_s_apis_to_a_s_paths_and_callers(world):
    a, b = world["a"], world["b"]
    url = world["server"].url
    # A's public API answers on A's path (to anyone: it is public) …
    r = requests.get(f"{url}/{a.name}/pub", params={"n": "1"})
    assert r.status_code == 200, r.text
    # … and never on B's, whatever header is sent
    for headers in ({}, {"X-Dispatch-Org": a.name}):
        r = b.client.session.get(f"{url}/{b.name}/pub", headers=headers)
        assert r.status_code == 404, r.text
    # A's bearer API: B's token is refused, A's accepted, none is 401
    r = b.client.session.get(f"{url}/{a.name}/sec", headers={"X-Dispatch-Org": a.name})
    assert r.status_code == 403, r.text
    assert requests.get(f"{url}/{a.name}/sec").status_code == 401
    r = a.client.session.get(f"{url}/{a.name}/sec")
    assert r.status_code == 200, r.text
    # B's API naming A's function runs nothing of A's
    before = len(a.runs("onlya"))
    r = b.post("/v1/api", json={"name": "steal", "function": "onlya", "uris": ["/steal"]})
    if r.status_code == 200:
        time.sleep(1)
        r = requests.get(f"{url}/{b.name}/steal")
        assert r.status_code >= 400, r.text
    else:
        assert 400 <= r.status_code < 500, r.text
    assert len(a.runs("onlya")) == before


def test_b_cannot_grant_itself_anything_in_a(world):
    a, b = world["a"], world["b"]
    r = b.post("/v1/iam/policy", json={"name": "into-a", "global": True, "rules": [
        {"subjects": ["ops"], "resources": ["*"], "actions": ["*"]}]})
    assert r.status_code == 403, r.text
    r = b.post("/v1/iam/serviceaccount", org=a.name, json={"name": "mole", "publicKey": "x"})
    assert r.status_code == 403, r.text
    assert b.delete(f"/v1/iam/organization/{a.name}").status_code == 403
    assert b.get(f"/v1/iam/organization/{a.name}").status_code == 404
    assert [s["name"] for s in a.get("/v1/iam/serviceaccount").json()] == ["ops"]
