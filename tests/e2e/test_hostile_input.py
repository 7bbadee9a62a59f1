"""Hostile and oversized input against an embedded Dispatch over HTTP: every refusal is a
4xx in Dispatch's ``{code, message}`` shape naming the problem, never a 500."""

from __future__ import annotations

import base64
import uuid

import pytest
import requests

from engine.limits import CONCURRENCY_MAX, JSON_DEPTH_MAX, TIMEOUT_MAX_MS
from engine.names import NAME_MAX
from engine.sources import MAX_UNPACKED_BYTES, pack

from ..unit.test_sources import gzip_bomb
from .conftest import wait_for_status, wait_until

ECHO = "def handle(ctx, payload):\n    return payload\n"

DEEP = b"[" * 100_000 + b"]" * 100_000  # Python's parser: RecursionError


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.fixture(scope="module")
def org(server, tmp_path_factory):
    """An organization with a READY ``echo`` function, an API ``/echo`` on it and a
    webhook driver; yields a session on it and the webhook's URL and token."""
    session = requests.Session()
    session.base = server.url
    name = f"hostile{uuid.uuid4().hex[:6]}"
    session.headers["X-Dispatch-Org"] = name
    path = tmp_path_factory.mktemp("echo") / "fn.py"
    path.write_text(ECHO)
    r = session.post(f"{server.url}/v1/function", json={
        "name": "echo", "image": "python3", "handler": "fn.handle",
        "source": base64.b64encode(pack(str(path))).decode()})
    assert r.status_code == 201, r.text
    assert wait_for_status(server.url, "echo", org=name)["status"] == "READY"
    r = session.post(f"{server.url}/v1/api", json={"name": "echo", "function": "echo",
                                                   "uris": ["/echo"], "methods": ["POST"]})
    assert r.status_code == 200, r.text
    routes = server.system.routes
    wait_until(lambda: routes.match(None, f"/{name}/echo", "POST") is not None, 10,
               what="the api routed")
    r = session.post(f"{server.url}/v1/event/drivers",
                     json={"name": "hook", "type": "webhook"})
    assert r.status_code in (200, 201), r.text
    session.hook = r.json()
    session.org = name
    return session


def refused(r: requests.Response, code: int, *words: str) -> dict:
    assert r.status_code == code, (r.status_code, r.text[:300])
    body = r.json()
    assert body["code"] == code and set(body) == {"code", "message"}, body
    for word in words:
        assert word in body["message"], body
    return body


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/function"),
    ("PUT", "/v1/function/echo"),
    ("POST", "/v1/runs?functionName=echo"),
    ("POST", "/v1/secret"),
    ("PUT", "/v1/secret/s"),
    ("POST", "/v1/api"),
    ("POST", "/v1/event/subscriptions"),
    ("POST", "/v1/iam/organization"),
    ("POST", "/v1/event"),
])
def test_a_100000_deep_json_body_is_a_400_on_every_endpoint(org, method, path):
    r = org.request(method, org.base + path, data=DEEP, headers=JSON)
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert set(r.json()) == {"code", "message"}


def test_deep_json_to_the_gateway_and_ingest_is_a_400_naming_the_limit(org):
    r = requests.post(f"{org.base}/{org.org}/echo", data=DEEP, headers=JSON)
    refused(r, 400, str(JSON_DEPTH_MAX))
    r = requests.post(org.hook["url"], data=DEEP, headers={
        **JSON, "Authorization": f"Bearer {org.hook['token']}"})
    refused(r, 400, str(JSON_DEPTH_MAX))


def test_json_just_past_the_depth_limit_is_refused_and_at_it_accepted(org):
    r = org.post(f"{org.base}/v1/runs?functionName=echo",
                 data=b'{"blocking": true, "input": ' + nested(JSON_DEPTH_MAX - 1) + b"}",
                 headers=JSON)
    assert r.status_code == 200 and r.json()["status"] == "READY", r.text[:300]
    r = org.post(f"{org.base}/v1/runs?functionName=echo",
                 data=b'{"blocking": true, "input": ' + nested(JSON_DEPTH_MAX) + b"}",
                 headers=JSON)
    refused(r, 400, f"deeper than {JSON_DEPTH_MAX}")


def test_a_gzip_bomb_source_is_a_400_naming_the_unpacked_limit(org):
    bomb = base64.b64encode(gzip_bomb()).decode()
    r = org.post(f"{org.base}/v1/function", json={"name": "bomb", "image": "python3",
                                                  "handler": "fn.handle", "source": bomb})
    refused(r, 400, f"limit of {MAX_UNPACKED_BYTES} bytes")
    assert org.get(f"{org.base}/v1/function/bomb").status_code == 404


@pytest.mark.parametrize("name, words", [
    ("a" * (NAME_MAX + 1), ("name", f"limit of {NAME_MAX}")),
    ("a" * 100_000, ("name", f"limit of {NAME_MAX}")),
    ("ok\n", ("name", "should start with")),
], ids=["one-too-long", "100000-long", "trailing-newline"])
def test_malformed_names_are_refused_before_anything_is_stored(org, name, words):
    r = org.post(f"{org.base}/v1/secret", json={"name": name, "secrets": {}})
    refused(r, 400, *words)
    r = org.post(f"{org.base}/v1/function", json={"name": name, "image": "python3",
                                                  "handler": "fn.handle"})
    refused(r, 400, *words)


@pytest.mark.parametrize("field, value, maximum", [
    ("timeout", 10**30, TIMEOUT_MAX_MS),
    ("timeout", TIMEOUT_MAX_MS + 1, TIMEOUT_MAX_MS),
    ("concurrency", CONCURRENCY_MAX + 1, CONCURRENCY_MAX),
])
def test_numeric_fields_beyond_their_maximum_are_a_400_naming_the_field(org, field, value,
                                                                        maximum):
    r = org.post(f"{org.base}/v1/function", json={"name": "big", "image": "python3",
                                                  "handler": "fn.handle", field: value})
    refused(r, 400, field, str(maximum))


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=100000000", "limit"), ("since=-" + "9" * 40, "since"),
    ("since=" + "9" * 40, "since"),
])
def test_list_bounds_are_a_400_naming_the_field(org, query, field):
    refused(org.get(f"{org.base}/v1/runs?{query}"), 400, field)


@pytest.mark.parametrize("path", [
    "/v1/secret/s", "/v1/function/echo", "/v1/iam/organization/x",
    "/v1/iam/serviceaccount/x", "/v1/iam/policy/x", "/v1/api/echo",
])
def test_a_put_with_no_body_is_refused(org, path):
    refused(org.put(org.base + path), 400, "body is required")
    refused(org.put(org.base + path, data=b"", headers=JSON), 400, "body is required")


def test_empty_tags_filters_nothing_out(org):
    r = org.get(f"{org.base}/v1/function?tags=")
    assert r.status_code == 200 and [f["name"] for f in r.json()] == ["echo"]


@pytest.mark.parametrize("path", ["/v1/function", "/v1/function/echo", "/healthz",
                                  "/v1/iam/policy", "/openapi.json"])
def test_trace_on_an_api_path_is_a_405_saying_what_is_allowed(org, path):
    r = org.request("TRACE", org.base + path)
    refused(r, 405)
    assert "GET" in r.headers["Allow"]


def test_trace_through_the_gateway_answers_from_the_route_table(org):
    r = requests.request("TRACE", f"{org.base}/{org.org}/echo")
    refused(r, 405)
    assert r.headers["Allow"] == "POST"
    refused(requests.request("TRACE", f"{org.base}/{org.org}/nothing-here"), 404)


@pytest.mark.parametrize("path", ["/healthz", "/v1/version"])
def test_health_and_version_match_their_declared_schema(org, path):
    doc = org.get(f"{org.base}/openapi.json").json()
    declared = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    ref = declared["schema"]["$ref"].rsplit("/", 1)[1]
    properties = doc["components"]["schemas"][ref]["properties"]
    body = org.get(org.base + path).json()
    assert body["version"] and set(body) <= set(properties)
    assert all(isinstance(body[k], str) for k in body)
