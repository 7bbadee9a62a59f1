"""An embedded Dispatch with ``DISPATCH_DRIVER=openwhisk``, against the OpenWhisk contract
stand-in (tests/contract/openwhisk_server.py, not OpenWhisk itself): functions become
actions, runs become activations, through Dispatch's own API."""

from __future__ import annotations

import base64

import pytest
import requests

from api.embedded import start_embedded
from engine.sources import pack
from tests.contract.openwhisk_server import ContractOpenWhisk

from .conftest import wait_for_status, wait_until

pytestmark = pytest.mark.timeout(180)

AUTH = "0a1b2c3d-0000-4000-8000-00000000e2e0:e2e-key"


@pytest.fixture(scope="module")
def whisk():
    server = ContractOpenWhisk({AUTH: "e2e"}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, whisk):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0, reconcile_seconds=0.5,
                            stuck_seconds=2, driver="openwhisk", openwhisk_api_host=whisk.api_host,
                            openwhisk_auth=AUTH, openwhisk_namespace="e2e",
                            auth="off")
    yield server
    server.stop()


@pytest.fixture
def api(server, request):
    session = requests.Session()
    session.headers["X-Dispatch-Org"] = "ow" + str(abs(hash(request.node.name)))[:8]
    session.base = server.url
    return session


def create(api, tmp_path, name, code, *, image="python3", file="fn.py", handler="fn.handle", update=False):
    src = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
    src.mkdir()
    (src / file).write_text(code)
    body = {"name": name, "image": image, "handler": handler, "timeout": 5000,
            "source": base64.b64encode(pack(str(src))).decode()}
    if update:
        r = api.put(f"{api.base}/v1/function/{name}", json=body)
        assert r.status_code == 200, r.text
        return wait_until(lambda: (lambda fn: fn if fn["status"] in ("READY", "ERROR") and fn.get("faasId")
                                   and not fn.get("previous") else None)(
            api.get(f"{api.base}/v1/function/{name}").json()), 60, what="the update")
    r = api.post(f"{api.base}/v1/function", json=body)
    assert r.status_code == 201, r.text
    return wait_for_status(api.base, name, org=api.headers["X-Dispatch-Org"])


def run(api, name, payload):
    r = api.post(f"{api.base}/v1/runs?functionName={name}", json={"blocking": True, "input": payload})
    assert r.status_code == 200, r.text
    return r.json()


def actions_of(whisk, org, name):
    return sorted(n for (ns, n) in whisk.actions if ns == "e2e" and n.startswith(f"{org}.{name}."))


def test_a_function_is_an_action_and_a_run_an_activation(api, whisk, tmp_path):
    org = api.headers["X-Dispatch-Org"]
    fn = create(api, tmp_path, "hello", "def handle(ctx, payload):\n    print('hello log line')\n"
                                        "    return {'hi': payload['name']}\n")
    assert fn["status"] == "READY", fn
    assert actions_of(whisk, org, "hello") == [f"{org}.hello.{fn['faasId']}"]
    done = run(api, "hello", {"name": "ow"})
    assert done["status"] == "READY", done
    assert done["output"] == {"hi": "ow"}
    assert done["logs"] == {"stdout": ["hello log line"], "stderr": []}
    record = whisk.activations[done["activationId"]]
    assert record["name"] == f"{org}.hello.{fn['faasId']}" and record["response"]["statusCode"] == 0
    assert done["initTimeMs"] >= 0 and done["coldStartMs"] == done["initTimeMs"]
    assert "waitTimeMs" in done and done["activationDurationMs"] == record["duration"]
    again = run(api, "hello", {"name": "warm"})
    assert again["output"] == {"hi": "warm"} and "initTimeMs" not in again
    assert api.get(f"{api.base}/v1/runs/{done['name']}").json()["activationId"] == done["activationId"]


def test_a_nodejs_function_runs_as_a_nodejs_action(api, whisk, tmp_path):
    fn = create(api, tmp_path, "greet", "module.exports = (ctx, p) => { console.error('to stderr'); return `hi ${p}`; };\n",
                image="nodejs", file="greet.js", handler="greet.js")
    assert fn["status"] == "READY", fn
    done = run(api, "greet", "node")
    assert done["output"] == "hi node" and done["logs"]["stderr"] == ["to stderr"]
    assert whisk.actions[("e2e", whisk.activations[done["activationId"]]["name"])]["exec"]["kind"] == "nodejs:20"


def test_a_failing_function_is_a_function_error_on_the_run(api, tmp_path):
    create(api, tmp_path, "fails", "def handle(ctx, payload):\n    raise RuntimeError('no luck')\n")
    done = run(api, "fails", {})
    assert done["status"] == "ERROR"
    assert done["error"]["type"] == "FunctionError" and done["error"]["message"] == "RuntimeError: no luck"
    assert done["activationId"]


def test_update_replaces_the_action_and_delete_removes_it(api, whisk, tmp_path):
    org = api.headers["X-Dispatch-Org"]
    first = create(api, tmp_path, "ver", "def handle(ctx, payload):\n    return 1\n")
    second = create(api, tmp_path, "ver", "def handle(ctx, payload):\n    return 2\n", update=True)
    assert second["status"] == "READY" and second["faasId"] != first["faasId"]
    wait_until(lambda: actions_of(whisk, org, "ver") == [f"{org}.ver.{second['faasId']}"], 30,
               what="the old action to be deleted")
    assert run(api, "ver", None)["output"] == 2
    assert api.delete(f"{api.base}/v1/function/ver").status_code == 200
    wait_until(lambda: actions_of(whisk, org, "ver") == [], 30, what="the action to be deleted")


def test_refused_credentials_put_the_function_in_error_with_the_reason(api, whisk, tmp_path):
    whisk.credentials.pop(AUTH)
    try:
        fn = create(api, tmp_path, "refused", "def handle(ctx, payload):\n    return 1\n")
    finally:
        whisk.credentials[AUTH] = "e2e"
    assert fn["status"] == "ERROR"
    assert "credentials were refused (401" in fn["reason"][0] and "DISPATCH_OPENWHISK_AUTH" in fn["reason"][0]


def test_a_failed_update_keeps_the_old_action_serving(api, whisk, tmp_path):
    org = api.headers["X-Dispatch-Org"]
    first = create(api, tmp_path, "steady", "def handle(ctx, payload):\n    return 1\n")
    src = tmp_path / "steady-v2"
    src.mkdir()
    (src / "fn.py").write_text("def handle(ctx, payload):\n    return 2\n")
    whisk.credentials.pop(AUTH)
    try:
        r = api.put(f"{api.base}/v1/function/steady",
                    json={"name": "steady", "image": "python3", "handler": "fn.handle",
                          "timeout": 5000, "source": base64.b64encode(pack(str(src))).decode()})
        assert r.status_code == 200, r.text
        failed = wait_for_status(api.base, "steady", statuses=("ERROR",), org=org)
    finally:
        whisk.credentials[AUTH] = "e2e"
    assert "credentials were refused" in failed["reason"][0]
    assert failed["reason"][1] == (f"version {first['faasId']} keeps serving until an update "
                                   "succeeds")
    assert actions_of(whisk, org, "steady") == [f"{org}.steady.{first['faasId']}"]
    done = run(api, "steady", None)
    assert done["status"] == "READY" and done["output"] == 1
