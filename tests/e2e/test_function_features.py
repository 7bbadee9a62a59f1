"""Schemas, secrets and updates of functions, through the API of an embedded Dispatch."""

from __future__ import annotations

import base64
import json
import threading

import pytest
import requests

from engine.sources import pack

from .conftest import wait_for_status, wait_until

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def api(server, request):
    session = requests.Session()
    # an organization per test: nothing one test creates is seen by another
    session.headers["X-Dispatch-Org"] = "t" + str(abs(hash(request.node.name)))[:10]
    session.base = server.url
    return session


def create(api, name, path, handler, **extra):
    body = {"name": name, "image": "python3", "handler": handler,
            "source": base64.b64encode(pack(str(path))).decode(), **extra}
    r = api.post(f"{api.base}/v1/function", json=body)
    assert r.status_code == 201, r.text
    return wait_for_status(api.base, name, org=api.headers["X-Dispatch-Org"])


def run(api, name, **body):
    r = api.post(f"{api.base}/v1/runs?functionName={name}", json={"blocking": True, **body})
    assert r.status_code == 200, r.text
    return r.json()


def schema(name):
    return json.loads((EXAMPLES / "python3" / name).read_text())


def test_schemas_check_input_and_output(api, tmp_path):
    fn = create(api, "hello", EXAMPLES / "python3" / "hello.py", "hello.handle",
                schema={"in": schema("hello.schema.in.json"), "out": schema("hello.schema.out.json")})
    assert fn["status"] == "READY" and fn["schema"]["in"]["required"] == ["name"]
    assert run(api, "hello", input={"name": "Jon"})["output"] == {"myField": "Hello, Jon from Nowhere"}
    bad = run(api, "hello", input={"name": 7})
    assert bad["status"] == "ERROR" and bad["error"]["type"] == "InputError"
    assert bad["error"]["message"] == "Input invalid against schema: $.name: 7 is not of type 'string'"
    liar = tmp_path / "liar.py"
    liar.write_text("def handle(ctx, payload):\n    return {'other': 1}\n")
    create(api, "liar", liar, "liar.handle", schema={"out": schema("hello.schema.out.json")})
    wrong = run(api, "liar", input={})
    assert wrong["error"]["type"] == "FunctionError"
    assert "Output invalid against schema" in wrong["error"]["message"] and wrong["output"] is None


def test_invalid_schema_is_refused_at_create(api, tmp_path):
    r = api.post(f"{api.base}/v1/function", json={
        "name": "bad", "image": "python3", "handler": "hello.handle",
        "source": base64.b64encode(pack(str(EXAMPLES / "python3" / "hello.py"))).decode(),
        "schema": {"in": {"type": "no-such-type"}}})
    assert r.status_code == 400 and r.json()["message"].startswith("schema.in is not a valid JSON Schema")
    assert api.get(f"{api.base}/v1/function/bad").status_code == 404


def test_secrets_reach_the_function_and_nowhere_else(api):
    assert api.post(f"{api.base}/v1/secret", json={
        "name": "open-sesame", "secrets": {"password": "OpenSesame"}}).status_code == 201
    assert api.post(f"{api.base}/v1/secret", json={
        "name": "other", "secrets": {"password": "Override", "user": "jon"}}).status_code == 201
    create(api, "secret", EXAMPLES / "python3" / "i_have_a_secret.py", "i_have_a_secret.handle",
           secrets=["open-sesame"])
    done = run(api, "secret")
    assert done["output"] == {"message": "The password is OpenSesame"}
    # the run's own secrets come after the function's, and win
    assert run(api, "secret", secrets=["other"])["output"] == {"message": "The password is Override"}
    # nothing but the function's own output (this example returns it on purpose) holds it
    records = api.get(f"{api.base}/v1/runs?functionName=secret").json()
    everything = json.dumps([{k: v for k, v in r.items() if k != "output"} for r in records])
    assert "OpenSesame" not in everything and "Override" not in everything


def test_missing_secret_is_an_input_error_and_the_function_does_not_run(api):
    create(api, "secret", EXAMPLES / "python3" / "i_have_a_secret.py", "i_have_a_secret.handle")
    failed = run(api, "secret", secrets=["nope"])
    assert failed["status"] == "ERROR" and failed["error"]["type"] == "InputError"
    assert failed["error"]["message"] == "secret nope not found"
    assert failed["logs"] == {"stdout": [], "stderr": []}


def test_update_serves_the_old_version_until_the_new_one_is_ready(api, tmp_path):
    v1 = tmp_path / "v1" / "ver.py"
    v1.parent.mkdir()
    v1.write_text("import time\n\ndef handle(ctx, payload):\n"
                  "    time.sleep(payload.get('sleep', 0))\n    return 'v1'\n")
    create(api, "ver", v1, "ver.handle")
    in_flight = {}
    thread = threading.Thread(target=lambda: in_flight.update(run(api, "ver", input={"sleep": 1.5})))
    thread.start()
    v2 = tmp_path / "v2" / "ver.py"
    v2.parent.mkdir()
    v2.write_text("def handle(ctx, payload):\n    return 'v2'\n")
    r = api.put(f"{api.base}/v1/function/ver", json={
        "name": "ver", "image": "python3", "handler": "ver.handle",
        "source": base64.b64encode(pack(str(v2))).decode()})
    assert r.status_code == 200 and r.json()["status"] == "UPDATING"
    wait_for_status(api.base, "ver", org=api.headers["X-Dispatch-Org"])
    assert run(api, "ver")["output"] == "v2"
    thread.join(30)
    assert in_flight["status"] == "READY" and in_flight["output"] == "v1"


def test_delete_while_runs_exist_removes_them(api):
    create(api, "gone", EXAMPLES / "python3" / "hello.py", "hello.handle")
    names = [run(api, "gone", input={"name": "x"})["name"] for _ in range(3)]
    assert api.delete(f"{api.base}/v1/function/gone").status_code == 200
    wait_until(lambda: api.get(f"{api.base}/v1/function/gone").status_code == 404)
    assert all(api.get(f"{api.base}/v1/runs/{n}").status_code == 404 for n in names)


def test_runs_list_filters_newest_first_with_a_limit(api):
    create(api, "many", EXAMPLES / "python3" / "hello.py", "hello.handle")
    names = [run(api, "many", input={"name": str(i)})["name"] for i in range(4)]
    listed = api.get(f"{api.base}/v1/runs?functionName=many&limit=3").json()
    assert [r["name"] for r in listed] == names[::-1][:3]
    assert all(r["durationMs"] > 0 and r["executedTime"] and r["finishedTime"] for r in listed)
    assert api.get(f"{api.base}/v1/runs?functionName=many&limit=0").status_code == 400
    assert api.get(f"{api.base}/v1/runs?tags=owner=me").status_code == 400
