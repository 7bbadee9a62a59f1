"""The API gateway of an embedded Dispatch over HTTP, with real sandboxed functions:
``/v1/api`` CRUD, routing by org path and by host, input from JSON, forms and query
strings, ``ctx.httpContext``, non-blocking calls, CORS, errors and limits."""

from __future__ import annotations

import base64
import http.client
import json
import uuid

import pytest
import requests

from engine.errors import MethodNotAllowed
from engine.sources import pack

from .conftest import wait_for_status, wait_until

ECHO = '''\
def handle(ctx, payload):
    return {"input": payload, "http": ctx.get("httpContext")}
'''

FAIL = '''\
def handle(ctx, payload):
    raise ValueError("no luck today")
'''

SLEEPY = '''\
import time

def handle(ctx, payload):
    time.sleep(float(payload.get("seconds", 0)) if isinstance(payload, dict) else 0)
    return "slept"
'''

STRICT_SCHEMA = {"in": {"type": "object", "required": ["name"]}}


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Org(requests.Session):
    """A session on ``/v1`` as one organization."""

    def __init__(self, server, name: str):
        super().__init__()
        self.base, self.name, self.routes = server.url, name, server.system.routes
        self.headers["X-Dispatch-Org"] = name

    def create_api(self, expect: int = 200, **spec):
        r = self.post(f"{self.base}/v1/api", json=spec)
        assert r.status_code == expect, r.text
        if expect == 200:
            wait_until(lambda: self.get(f"{self.base}/v1/api/{spec['name']}").json()
                       .get("status") == "READY", 10, what=f"api {spec['name']} READY")
            if spec.get("enabled", True):
                # the gateway's table follows the store through a watch: wait for it
                wait_until(lambda: self.routed(spec), 10, what=f"api {spec['name']} routed")
        return r.json()

    def routed(self, spec) -> bool:
        host = (spec.get("hosts") or [None])[0]
        uri = (spec.get("uris") or ["/"])[0]
        path = uri if host else f"/{self.name}{uri}"
        try:
            match = self.routes.match(host, path, (spec.get("methods") or ["GET"])[0])
        except MethodNotAllowed:
            return False
        return match is not None and match.api["name"] == spec["name"]


def create_function(org: Org, name: str, code: str, tmp_path_factory, **extra) -> None:
    path = tmp_path_factory.mktemp(name) / "fn.py"
    path.write_text(code)
    r = org.post(f"{org.base}/v1/function", json={
        "name": name, "image": "python3", "handler": "fn.handle",
        "source": base64.b64encode(pack(str(path))).decode(), **extra})
    assert r.status_code == 201, r.text
    assert wait_for_status(org.base, name, org=org.name)["status"] == "READY"


@pytest.fixture(scope="module")
def org_a(server, tmp_path_factory):
    org = Org(server, unique("a"))
    create_function(org, "echo", ECHO, tmp_path_factory)
    create_function(org, "fail", FAIL, tmp_path_factory)
    create_function(org, "sleepy", SLEEPY, tmp_path_factory, timeout=1000)
    create_function(org, "strict", ECHO, tmp_path_factory, schema=STRICT_SCHEMA)
    return org


@pytest.fixture(scope="module")
def org_b(server, tmp_path_factory):
    org = Org(server, unique("b"))
    create_function(org, "echo", ECHO, tmp_path_factory)
    return org


@pytest.fixture
def gw(server):
    """A client of the gateway that sends no organization header."""
    return requests.Session()


def test_api_crud_answers_dispatchs_codes(org_a):
    name = unique("crud")
    r = org_a.post(f"{org_a.base}/v1/api/", json={"name": name, "function": "echo",
                                                  "uris": [f"/{name}"]})
    assert r.status_code == 200 and r.json()["status"] == "CREATING", r.text
    assert r.json()["kind"] == "API" and r.json()["methods"] == ["GET"]
    wait_until(lambda: org_a.get(f"{org_a.base}/v1/api/{name}").json()["status"] == "READY", 10)
    assert name in [a["name"] for a in org_a.get(f"{org_a.base}/v1/api").json()]
    assert org_a.get(f"{org_a.base}/v1/api?function=fail").json() == []
    r = org_a.post(f"{org_a.base}/v1/api", json={"name": name, "function": "echo",
                                                 "uris": ["/elsewhere"]})
    assert r.status_code == 409
    r = org_a.delete(f"{org_a.base}/v1/api/{name}")
    assert r.status_code == 200 and r.json()["status"] == "DELETING"
    wait_until(lambda: org_a.get(f"{org_a.base}/v1/api/{name}").status_code == 404, 10)


def test_bad_input_is_a_400_naming_the_field(org_a):
    for spec, words in [({"name": "x"}, "function"),
                        ({"name": "x", "function": "echo", "methods": ["FETCH"]}, "methods"),
                        ({"name": "x", "function": "echo", "uris": ["nope"]}, "uris"),
                        ({"name": "x", "function": "echo", "authentication": "oidc"},
                         "authentication oidc is not supported")]:
        r = org_a.post(f"{org_a.base}/v1/api", json=spec)
        assert r.status_code == 400 and words in r.json()["message"], r.text
    assert org_a.get(f"{org_a.base}/v1/api/x").status_code == 404


def test_json_body_becomes_the_input_and_output_the_answer(org_a, gw, server):
    org_a.create_api(name=unique("json"), function="echo", uris=["/greet"],
                     methods=["POST"])
    r = gw.post(f"{server.url}/{org_a.name}/greet/?lang=en", json={"name": "Jon"},
                headers={"Cookie": "session=secret", "Authorization": "Bearer t",
                         "X-Custom": "yes"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    out = r.json()
    assert out["input"] == {"name": "Jon"}
    http = out["http"]
    assert http["method"] == "POST" and http["path"] == f"/{org_a.name}/greet/"
    assert http["uri"] == "/greet" and http["query"] == {"lang": "en"}
    assert http["host"] == f"127.0.0.1:{server.port}"
    assert http["headers"]["x-custom"] == "yes"
    assert "cookie" not in http["headers"] and "authorization" not in http["headers"]


def test_vendor_json_form_and_query_inputs(org_a, gw, server):
    org_a.create_api(name=unique("in"), function="echo", uris=["/in"],
                     methods=["GET", "POST"])
    url = f"{server.url}/{org_a.name}/in"
    r = gw.post(url, data='{"a": 1}', headers={"Content-Type": "application/vnd.x+json"})
    assert r.json()["input"] == {"a": 1}
    r = gw.post(url, data={"name": "Jon", "tag": ["x", "y"]})
    assert r.json()["input"] == {"name": "Jon", "tag": ["x", "y"]}
    r = gw.post(url, files={"f": ("f.txt", b"data")}, data={"name": "Arya"})
    assert r.json()["input"] == {"name": "Arya"}  # form fields; files are not input
    r = gw.get(url + "?name=Jon&tag=x&tag=y")
    assert r.json()["input"] == {"name": "Jon", "tag": ["x", "y"]}
    r = gw.post(url, data="plain words")
    assert r.json()["input"] == "plain words"


def test_bad_json_and_unsupported_types_get_dispatchs_messages(org_a, gw, server):
    org_a.create_api(name=unique("bad"), function="echo", uris=["/bad"], methods=["POST"])
    url = f"{server.url}/{org_a.name}/bad"
    r = gw.post(url, data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"code": 400, "message": "request body is not json"}
    r = gw.post(url, data="<a/>", headers={"Content-Type": "text/xml"})
    assert r.status_code == 415
    assert r.json()["message"] == "request body type is not supported: text/xml"


def test_non_blocking_answers_an_empty_body_and_names_the_run_in_a_header(org_a, gw, server):
    org_a.create_api(name=unique("nb"), function="echo", uris=["/later"], methods=["POST"])
    r = gw.post(f"{server.url}/{org_a.name}/later", json={"x": 1},
                headers={"X-Dispatch-Blocking": "false"})
    # Dispatch's gateway: 200 and nothing else (its e2e asserts the empty output)
    assert r.status_code == 200 and r.content == b"", r.text
    run = r.headers["X-Dispatch-Run"]
    assert r.headers["Location"] == f"/v1/runs/{run}"
    done = wait_until(lambda: (lambda x: x if x["status"] == "READY" else None)(
        org_a.get(f"{server.url}{r.headers['Location']}").json()), 30)
    assert done["output"]["input"] == {"x": 1}
    assert done["httpContext"]["uri"] == "/later"


def test_the_org_comes_from_the_path_never_from_the_header(org_a, org_b, gw, server):
    org_a.create_api(name=unique("only"), function="echo", uris=["/only-a"])
    # org B's path with org A's header does not reach A's API
    r = gw.get(f"{server.url}/{org_b.name}/only-a", headers={"X-Dispatch-Org": org_a.name})
    assert r.status_code == 404
    # A's path with B's header reaches A's API, running A's function
    org_b.create_api(name=unique("both"), function="echo", uris=["/both"])
    org_a.create_api(name=unique("both"), function="echo", uris=["/both"])
    r = gw.get(f"{server.url}/{org_a.name}/only-a", headers={"X-Dispatch-Org": org_b.name})
    assert r.status_code == 200
    run = gw.post(f"{server.url}/{org_a.name}/both", headers={
        "X-Dispatch-Org": org_b.name, "X-Dispatch-Blocking": "false"})
    assert run.status_code == 405  # GET only
    r = gw.get(f"{server.url}/{org_a.name}/both?n=1", headers={
        "X-Dispatch-Org": org_b.name, "X-Dispatch-Blocking": "false"})
    assert org_a.get(f"{server.url}/v1/runs/{r.headers['X-Dispatch-Run']}").status_code == 200
    assert org_b.get(f"{server.url}/v1/runs/{r.headers['X-Dispatch-Run']}").status_code == 404


def test_host_routing(org_a, server):
    host = f"{unique('shop')}.example.com"
    org_a.create_api(name=unique("host"), function="echo", uris=["/cart"], hosts=[host])
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/cart?item=1", headers={"Host": f"{host}:8080"})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, body
    assert json.loads(body)["input"] == {"item": "1"}
    # the host's API is not on the org's paths
    assert requests.get(f"{server.url}/{org_a.name}/cart").status_code == 404
    # the API's own paths on an API host are the gateway's, not /v1's
    conn.request("GET", "/v1/function", headers={"Host": host})
    r = conn.getresponse()
    r.read()
    assert r.status == 404
    conn.close()


def test_cors_preflight_and_headers(org_a, gw, server):
    org_a.create_api(name=unique("cors"), function="echo", uris=["/cors"],
                     methods=["GET", "POST"], cors=True)
    url = f"{server.url}/{org_a.name}/cors"
    r = gw.options(url, headers={"Origin": "https://app.example.com",
                                 "Access-Control-Request-Method": "POST",
                                 "Access-Control-Request-Headers": "content-type, x-token"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type, x-token"
    r = gw.get(url, headers={"Origin": "https://app.example.com"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    # without cors: no preflight, no header
    org_a.create_api(name=unique("nocors"), function="echo", uris=["/nocors"])
    r = gw.options(f"{server.url}/{org_a.name}/nocors")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    assert "Access-Control-Allow-Origin" not in gw.get(f"{server.url}/{org_a.name}/nocors").headers


def test_disabled_updated_and_deleted_apis(org_a, gw, server):
    name = unique("life")
    org_a.create_api(name=name, function="echo", uris=["/life"], enabled=False)
    url = f"{server.url}/{org_a.name}/life"
    r = gw.get(url)
    assert r.status_code == 404
    assert r.json() == {"code": 404, "message": "no API found with those values"}
    r = org_a.put(f"{server.url}/v1/api/{name}", json={"enabled": True, "function": "sleepy"})
    assert r.status_code == 200 and r.json()["function"] == "sleepy"
    assert wait_until(lambda: gw.get(url).text == '"slept"', 10)
    assert org_a.delete(f"{server.url}/v1/api/{name}").status_code == 200
    wait_until(lambda: gw.get(url).status_code == 404, 10)


def test_colliding_routes_are_409_naming_the_other_api(org_a):
    first = unique("first")
    org_a.create_api(name=first, function="echo", uris=["/same"], methods=["GET", "POST"])
    r = org_a.post(f"{org_a.base}/v1/api", json={"name": unique("second"),
                                                 "function": "echo", "uris": ["/same/"],
                                                 "methods": ["POST"]})
    assert r.status_code == 409 and f"api {first}" in r.json()["message"]


def test_failed_runs_map_to_gateway_codes(org_a, gw, server):
    org_a.create_api(name=unique("err"), function="fail", uris=["/fail"])
    org_a.create_api(name=unique("err"), function="strict", uris=["/strict"],
                     methods=["POST"])
    org_a.create_api(name=unique("err"), function="missing", uris=["/missing"])
    r = gw.get(f"{server.url}/{org_a.name}/fail")
    assert r.status_code == 502
    assert "FunctionError" in r.json()["message"] and "no luck today" in r.json()["message"]
    assert "run " in r.json()["message"]
    r = gw.post(f"{server.url}/{org_a.name}/strict", json={"other": 1})
    assert r.status_code == 400 and "InputError" in r.json()["message"], r.text
    r = gw.get(f"{server.url}/{org_a.name}/missing")
    assert r.status_code == 502 and "missing not found" in r.json()["message"]


def test_a_run_past_its_functions_timeout_fails_instead_of_hanging(org_a, gw, server):
    # the function's timeout is 1 s: the run ends in ERROR and the gateway says so
    # (a run that does not settle at all is a 504: tests/unit/test_gateway_app.py)
    org_a.create_api(name=unique("slow"), function="sleepy", uris=["/slow"])
    r = gw.get(f"{server.url}/{org_a.name}/slow?seconds=3", timeout=120)
    assert r.status_code in (500, 502), r.text
    assert "run " in r.json()["message"] and "sleepy" in r.json()["message"]


def test_bodies_over_the_limit_are_413(org_a, gw, server):
    org_a.create_api(name=unique("big"), function="echo", uris=["/big"], methods=["POST"])
    limit = server.settings.max_body_bytes
    r = gw.post(f"{server.url}/{org_a.name}/big", data=b"x" * (limit + 1),
                headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and str(limit) in r.json()["message"]
    # chunked: no length up front
    r = gw.post(f"{server.url}/{org_a.name}/big", data=iter([b"{}", b" " * limit]),
                headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and str(limit) in r.json()["message"]
    # chunked within the limit: every chunk is read, not the first one alone
    r = gw.post(f"{server.url}/{org_a.name}/big", data=iter([b'{"a": ', b"1, ", b'"b": 2}']),
                headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["input"] == {"a": 1, "b": 2}, r.text


def test_the_v1_api_has_its_own_larger_limit(server):
    from api.app import API_MAX_BODY_BYTES

    r = requests.post(f"{server.url}/v1/function", data=b"x" * (API_MAX_BODY_BYTES + 1),
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and str(API_MAX_BODY_BYTES) in r.json()["message"]


def test_unknown_paths_and_api_paths_stay_apart(server, gw):
    assert gw.get(f"{server.url}/healthz").status_code == 200
    r = gw.get(f"{server.url}/nobody/nothing")
    assert r.status_code == 404 and r.json()["message"] == "no API found with those values"
