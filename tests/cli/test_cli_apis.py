"""``dispatch create|get|delete api`` and APIs in seed files, against a real embedded
Dispatch: what is sent, what is shown, and a request through the gateway."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.waiting import settles


def unique(prefix: str = "api") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_ready(dispatch, name, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        api = dispatch.json("get", "api", name)
        if api["status"] == "READY" or time.monotonic() > deadline:
            return api
        time.sleep(0.05)


def test_create_api_with_defaults(dispatch, at_server):
    name = unique()
    assert dispatch("create", "api", name, "hello").stdout == f"Created api: {name}\n"
    api = wait_ready(dispatch, name)
    assert api["function"] == "hello" and api["methods"] == ["GET"] and api["uris"] == ["/"]
    assert api["authentication"] == "public" and api["enabled"] is True and api["cors"] is False
    assert api["status"] == "READY"


def test_create_api_with_every_flag_and_show_it_as_a_table(dispatch, at_server):
    name = unique()
    created = dispatch.json("create", "api", name, "fn", "-m", "POST", "-m", "get",
                            "-p", f"/{name}", "-p", f"/{name}/v2", "--cors", "--disable")
    assert created["methods"] == ["POST", "GET"]
    assert created["uris"] == [f"/{name}", f"/{name}/v2"]
    assert created["cors"] is True and created["enabled"] is False
    wait_ready(dispatch, name)
    lines = dispatch("get", "apis").stdout.splitlines()
    assert [h.strip() for h in lines[0].split("|")] == [
        "NAME", "FUNCTION", "METHODS", "PATHS", "STATUS", "ENABLED"]
    table = dispatch("get", "api", name).stdout
    assert f"/default/{name}" in table and "READY" in table and "false" in table
    hosted = unique()
    dispatch("create", "api", hosted, "fn", "-d", "shop.example.com", "-p", "/cart")
    assert "shop.example.com/cart" in dispatch("get", "api", hosted).stdout


def test_get_apis_of_one_function(dispatch, at_server):
    mine, other = unique(), unique()
    fn = unique("fn")
    dispatch("create", "api", mine, fn, "-p", f"/{mine}")
    dispatch("create", "api", other, "other-fn", "-p", f"/{other}")
    listed = dispatch.json("get", "apis", "--function", fn)
    assert [a["name"] for a in listed] == [mine]


def test_refusals_are_reported_with_the_servers_message(dispatch, at_server):
    name = unique()
    result = dispatch("create", "api", name, "fn", "-m", "FETCH", expect=1)
    assert "methods" in result.stderr and "FETCH" in result.stderr
    result = dispatch("create", "api", name, "fn", "--auth", "basic", expect=1)
    assert "authentication basic is not supported" in result.stderr
    dispatch("create", "api", name, "fn", "-p", f"/{name}")
    result = dispatch("create", "api", unique(), "fn", "-p", f"/{name}", expect=1)
    assert f"api {name}" in result.stderr


def test_delete_api(dispatch, at_server):
    name = unique()
    dispatch("create", "api", name, "fn", "-p", f"/{name}")
    assert dispatch("delete", "api", name).stdout == f"Deleted api: {name}\n"
    settles(lambda: dispatch("get", "api", name, expect=None).exit_code != 0,
            "the api was never removed")
    assert "not found" in dispatch("delete", "api", name, expect=1).stderr.lower()


def test_a_seed_file_creates_an_api_that_the_gateway_serves(dispatch, at_server, tmp_path):
    src = tmp_path / "echo.py"
    src.write_text("def handle(ctx, payload):\n    return {'got': payload}\n")
    seed = tmp_path / "seed.yaml"
    name = unique()
    seed.write_text(f"""\
kind: Function
name: {name}-fn
sourcePath: echo.py
image: python3
handler: echo.handle
---
kind: API
name: {name}
function: {name}-fn
uris: [/{name}]
methods: [POST]
""")
    out = dispatch("create", "-f", seed).stdout
    assert f"Created API: {name}" in out
    wait_ready(dispatch, name)
    url = f"{at_server.url}/default/{name}"
    deadline = time.monotonic() + 10
    while True:  # the gateway follows the store through a watch
        r = requests.post(url, json={"a": 1})
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 200 and r.json() == {"got": {"a": 1}}, r.text
    out = dispatch("delete", "-f", seed).stdout
    assert f"Deleted API: {name}" in out
