"""The REST API of an embedded Dispatch (SQLite, in-process workers, sandboxed local
functions), spoken to over HTTP as Dispatch's own CLI speaks to it."""

from __future__ import annotations

import base64
import gzip
import io
import tarfile

import pytest
import requests

from engine.sources import pack

from .conftest import wait_for_status, wait_until

# What the original Dispatch CLI sends with every request.
CLI_HEADERS = {"Accept": "application/json", "X-Dispatch-Org": "default", "Cookie": "unset"}


@pytest.fixture
def api(server):
    session = requests.Session()
    session.headers.update(CLI_HEADERS)
    session.base = server.url
    return session


def create_body(name: str, source_path, **extra) -> dict:
    # the original CLI's body, nulls included
    body = {"source": base64.b64encode(pack(str(source_path))).decode(), "image": "python3",
            "handler": "hello.handle", "name": name, "reason": None,
            "schema": {"in": None, "out": None}, "secrets": [], "services": [], "tags": []}
    body.update(extra)
    return body


@pytest.fixture
def hello(api, hello_file, request):
    name = "hello-" + request.node.name.replace("_", "-")[-40:]
    r = api.post(f"{api.base}/v1/function", json=create_body(name, hello_file))
    assert r.status_code == 201, r.text
    assert wait_for_status(api.base, name)["status"] == "READY"
    yield name
    api.delete(f"{api.base}/v1/function/{name}")


def test_blocking_run_returns_the_finished_run(api, hello):
    r = api.post(f"{api.base}/v1/runs?functionName={hello}",
                 json={"input": {"name": "Jon", "place": "Winterfell"}, "blocking": True,
                       "reason": None, "secrets": [], "services": None, "tags": None})
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "READY"
    assert run["output"] == {"myField": "Hello, Jon from Winterfell"}
    assert run["logs"]["stdout"] == ["hello log line"]
    assert run["functionName"] == hello and run["executedTime"] and run["finishedTime"]


def test_non_blocking_run_is_accepted_then_finishes(api, hello):
    r = api.post(f"{api.base}/v1/runs?functionName={hello}", json={"input": {"name": "A"}})
    assert r.status_code == 202 and r.json()["status"] == "INITIALIZED"
    name = r.json()["name"]
    run = wait_until(lambda: (lambda x: x if x["status"] == "READY" else None)(
        api.get(f"{api.base}/v1/runs/{name}?functionName={hello}").json()), what="run READY")
    assert run["output"]["myField"] == "Hello, A from None"
    listed = api.get(f"{api.base}/v1/runs?functionName={hello}&since=-62135596800").json()
    assert [x["name"] for x in listed] == [name]


def test_function_is_listed_and_read(api, hello):
    names = [f["name"] for f in api.get(f"{api.base}/v1/function").json()]
    assert hello in names
    fn = api.get(f"{api.base}/v1/function/{hello}").json()
    assert fn["kind"] == "Function" and fn["image"] == "python3" and fn["status"] == "READY"
    assert "source" not in fn and fn["sourceURL"].startswith("es://")


def test_unterminated_tarball_from_the_original_cli_is_accepted(api, tmp_path):
    # the original CLI writes no end-of-archive blocks and names members .//hello.py
    tar_bytes = io.BytesIO()
    data = b"def handle(ctx, payload):\n    return 42\n"
    info = tarfile.TarInfo(".//hello.py")
    info.size = len(data)
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        tar.addfile(info, io.BytesIO(data))
    raw = tar_bytes.getvalue()
    unterminated = raw[: 512 + 512]  # header + one data block, no trailer
    body = create_body("raw-tar", tmp_path)
    body["source"] = base64.b64encode(gzip.compress(unterminated)).decode()
    assert api.post(f"{api.base}/v1/function", json=body).status_code == 201
    assert wait_for_status(api.base, "raw-tar")["status"] == "READY"
    run = api.post(f"{api.base}/v1/runs?functionName=raw-tar", json={"blocking": True}).json()
    assert run["output"] == 42
    api.delete(f"{api.base}/v1/function/raw-tar")


def test_a_run_carries_json_s_edge_values_exactly(api, tmp_path):
    """Request, store, function, store, answer: integers beyond 64 bits keep every
    digit, text every character, keys their order."""
    src = tmp_path / "echo.py"
    src.write_text("def handle(ctx, payload):\n    return {'got': payload, 'big': payload['big'] * 10}\n")
    assert api.post(f"{api.base}/v1/function",
                    json=create_body("echo-edges", src, handler="echo.handle")).status_code == 201
    wait_for_status(api.base, "echo-edges")
    value = {"big": 123456789012345678901234567890, "neg": -(2**63) - 1, "max": 2**64 - 1,
             "text": "é 日本 🙂 \u2028", "z": 1, "a": [0.1, 1e300, -0.0]}
    r = api.post(f"{api.base}/v1/runs?functionName=echo-edges", json={"blocking": True, "input": value})
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["input"] == value and list(run["input"]) == list(value)
    assert run["output"] == {"got": value, "big": 1234567890123456789012345678900}
    again = api.get(f"{api.base}/v1/runs/{run['name']}?functionName=echo-edges").json()
    assert again["input"] == value and again["output"] == run["output"]
    api.delete(f"{api.base}/v1/function/echo-edges")


def test_function_exception_is_a_function_error_in_a_200(api, tmp_path):
    src = tmp_path / "boom.py"
    src.write_text("def handle(ctx, payload):\n    raise ValueError('no way')\n")
    assert api.post(f"{api.base}/v1/function",
                    json=create_body("boom", src, handler="boom.handle")).status_code == 201
    wait_for_status(api.base, "boom")
    r = api.post(f"{api.base}/v1/runs?functionName=boom", json={"blocking": True})
    assert r.status_code == 200
    run = r.json()
    assert run["status"] == "ERROR" and run["error"]["type"] == "FunctionError"
    assert "ValueError: no way" in run["error"]["message"] and run["error"]["stacktrace"]
    api.delete(f"{api.base}/v1/function/boom")


def test_broken_handler_makes_the_function_error_at_create_time(api, tmp_path):
    src = tmp_path / "hello.py"
    src.write_text("def other(ctx, payload):\n    return 1\n")
    api.post(f"{api.base}/v1/function", json=create_body("broken", src))
    fn = wait_for_status(api.base, "broken")
    assert fn["status"] == "ERROR" and len(fn["reason"]) == 1 and "handle" in fn["reason"][0]
    r = api.post(f"{api.base}/v1/runs?functionName=broken", json={"blocking": True})
    assert r.status_code == 404 and r.json()["message"] == "function broken is not READY"
    api.delete(f"{api.base}/v1/function/broken")


def test_delete_removes_function_and_its_runs(api, hello_file):
    api.post(f"{api.base}/v1/function", json=create_body("gone", hello_file))
    wait_for_status(api.base, "gone")
    run = api.post(f"{api.base}/v1/runs?functionName=gone", json={"blocking": True}).json()
    r = api.delete(f"{api.base}/v1/function/gone")
    assert r.status_code == 200 and r.json()["status"] == "DELETING"
    wait_until(lambda: api.get(f"{api.base}/v1/function/gone").status_code == 404,
               what="function removed")
    assert api.get(f"{api.base}/v1/runs/{run['name']}").status_code == 404


@pytest.mark.parametrize("change, status, message", [
    ({"name": "bad name!"}, 400, "name 'bad name!' should start with letter or number"),
    ({"source": None}, 400, "either source or sourceURL must be specified"),
    ({"source": "!!!"}, 400, "source is not valid base64"),
    ({"source": base64.b64encode(b"not a tarball").decode()}, 400, "not a valid tar.gz"),
    ({"handler": None}, 400, "handler is required"),
    ({"image": "nope"}, 400, "image nope not found"),
    ({"timeout": "soon"}, 400, "timeout"),
    ({"name": None}, 400, "name"),
])
def test_bad_function_is_refused_naming_the_problem_and_nothing_is_stored(
        api, hello_file, change, status, message):
    r = api.post(f"{api.base}/v1/function", json={**create_body("refused", hello_file), **change})
    assert r.status_code == status, r.text
    assert r.json()["code"] == status and message in r.json()["message"]
    assert api.get(f"{api.base}/v1/function/refused").status_code == 404


def test_duplicate_function_conflicts(api, hello, hello_file):
    r = api.post(f"{api.base}/v1/function", json=create_body(hello, hello_file))
    assert r.status_code == 409 and r.json()["message"] == f"Function {hello} already exists"


def test_unknown_function_is_404_with_dispatchs_message(api):
    r = api.get(f"{api.base}/v1/function/nope")
    assert r.status_code == 404 and r.json() == {"code": 404, "message": "Function nope not found"}
    r = api.post(f"{api.base}/v1/runs?functionName=nope", json={"blocking": True})
    assert r.status_code == 404 and "nope not found" in r.json()["message"]


def test_non_json_body_is_a_400(api, hello):
    r = api.post(f"{api.base}/v1/runs?functionName={hello}", data="{not json",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["message"]


def test_runs_are_scoped_by_organization(api, hello):
    r = api.post(f"{api.base}/v1/runs?functionName={hello}", json={"blocking": True},
                 headers={"X-Dispatch-Org": "other"})
    assert r.status_code == 404
    assert api.get(f"{api.base}/v1/function", headers={"X-Dispatch-Org": "other"}).json() == []


def test_health_version_and_openapi(api):
    assert api.get(f"{api.base}/healthz").json()["version"]
    assert api.get(f"{api.base}/v1/version").json()["version"]
    spec = api.get(f"{api.base}/openapi.json").json()
    assert "/v1/function" in spec["paths"] and "/v1/runs" in spec["paths"]
    assert api.get(f"{api.base}/docs").status_code == 200
