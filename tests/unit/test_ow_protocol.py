"""Dispatch's function servers speaking OpenWhisk's action protocol (``docs/actions-new.md``):
``POST /init`` once (a native action's code, or only ``env`` for a blackbox one), ``POST /run``
per activation with the ``__OW_*`` environment, the sentinel line ending stdout and stderr
of each activation, errors as ``{"error": ...}``. Both servers, as processes on a TCP port,
and a docker-built function image in a container through the Docker Engine API.
"""

from __future__ import annotations

import base64
import io
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile

import pytest
import requests

from engine.drivers.base import Deployment
from engine.drivers.openwhisk_actions import action_zip
from engine.sources import pack

from tests.waiting import raises, settles

pytestmark = pytest.mark.timeout(120)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVERS = {"python3": [sys.executable, "-I", os.path.join(ROOT, "engine/runtimes/python/server.py")],
           "nodejs": ["node", os.path.join(ROOT, "engine/runtimes/nodejs/server.js")]}
SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"

NATIVE = {
    "python3": """
import os, sys

def main(args):
    print("out", args.get("name"))
    sys.stderr.write("err line\\n")
    if args.get("fail"):
        raise ValueError("asked to fail")
    if args.get("list"):
        return [1, 2]
    return {"hello": args.get("name"), "env": {k: v for k, v in os.environ.items() if k.startswith("__OW_")},
            "greeting": os.environ.get("GREETING")}
""",
    "nodejs": """
function main(args) {
  console.log('out', args.name);
  console.error('err line');
  if (args.fail) throw new Error('asked to fail');
  if (args.list) return [1, 2];
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('__OW_')));
  return { hello: args.name, env, greeting: process.env.GREETING };
}
""",
}
HANDLERS = {
    "python3": ("fn.handle", "fn.py", "import os\ndef handle(ctx, payload):\n    print('handled', payload)\n"
                "    if payload == 'boom':\n        raise KeyError('missing')\n    return {'ctx': ctx, 'payload': payload}\n"),
    "nodejs": ("fn.js", "fn.js", "module.exports = (ctx, payload) => { console.log('handled', payload);\n"
               "  if (payload === 'boom') throw new RangeError('missing');\n  return { ctx, payload }; };\n"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Action:
    """One function server as OpenWhisk's invoker drives it: a port, stdout and stderr."""

    def __init__(self, cmd: list[str]):
        self.port = _free_port()
        self.proc = subprocess.Popen(cmd + ["--port", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={"PATH": os.environ["PATH"], "HOME": "/tmp"})
        self.lines = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        for name in ("stdout", "stderr"):
            threading.Thread(target=self._pump, args=(name,), daemon=True).start()
        settles(lambda: not raises(OSError, lambda: socket.create_connection(
            ("127.0.0.1", self.port), 0.5).close()), "the server did not start")

    def _pump(self, name):
        for raw in iter(getattr(self.proc, name).readline, b""):
            self.lines[name].put(raw.decode().rstrip("\n"))

    def post(self, path, body):
        resp = requests.post(f"http://127.0.0.1:{self.port}{path}", json=body, timeout=20)
        return resp.status_code, resp.json()

    def activation_logs(self, name):
        """The lines of ``name`` up to the next sentinel (fails if it never comes)."""
        lines = []
        while True:
            line = self.lines[name].get(timeout=10)
            if line == SENTINEL:
                return lines
            lines.append(line)

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(params=list(SERVERS))
def language(request):
    if request.param == "nodejs" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    return request.param


@pytest.fixture
def native(language):
    """A server started without a handler: a native OpenWhisk action container."""
    action = Action(SERVERS[language] + ["--dir", "/tmp"])
    yield action
    action.close()


@pytest.fixture
def blackbox(language, tmp_path):
    """A server started with a handler: a blackbox action (a docker-built function image)."""
    handler, file, code = HANDLERS[language]
    (tmp_path / file).write_text(code)
    action = Action(SERVERS[language] + ["--handler", handler, "--dir", str(tmp_path)])
    yield action
    action.close()


def run_body(value, **fields):
    body = {"value": value, "namespace": "guest", "action_name": "/guest/hello", "activation_id": "a" * 32,
            "transaction_id": "t1", "deadline": "1700000000000", "api_key": "uuid:key"}
    body.update(fields)
    return body


def zip_of(files: dict[str, str]) -> str:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(out.getvalue()).decode()


def test_native_init_with_plain_code_then_runs_with_the_activation_environment(native, language):
    init = {"value": {"name": "hello", "main": "main", "code": NATIVE[language], "binary": False,
                      "env": {"GREETING": "hi"}}}
    assert native.post("/init", init) == (200, {"ok": True})
    status, body = native.post("/run", run_body({"name": "ow"}))
    assert status == 200
    assert body["hello"] == "ow" and body["greeting"] == "hi"
    assert body["env"] == {"__OW_NAMESPACE": "guest", "__OW_ACTION_NAME": "/guest/hello",
                           "__OW_ACTIVATION_ID": "a" * 32, "__OW_TRANSACTION_ID": "t1",
                           "__OW_DEADLINE": "1700000000000", "__OW_API_KEY": "uuid:key"}
    assert native.activation_logs("stdout") == ["out ow"]
    assert native.activation_logs("stderr") == ["err line"]
    # the next activation has its own context and its own framed logs
    status, body = native.post("/run", run_body({"name": "two"}, activation_id="b" * 32))
    assert body["env"]["__OW_ACTIVATION_ID"] == "b" * 32
    assert native.activation_logs("stdout") == ["out two"]
    assert native.activation_logs("stderr") == ["err line"]


def test_native_init_with_a_zip_and_another_entry_point(native, language):
    if language == "python3":
        files = {"__main__.py": "from helper import greet\ndef start(args):\n    return {'said': greet(args['name'])}\n",
                 "helper.py": "def greet(n):\n    return 'hello ' + n\n"}
    else:
        files = {"package.json": json.dumps({"main": "lib/entry.js"}),
                 "lib/entry.js": "const { greet } = require('./helper');\nexports.start = (args) => ({ said: greet(args.name) });\n",
                 "lib/helper.js": "exports.greet = (n) => `hello ${n}`;\n"}
    init = {"value": {"name": "hello", "main": "start", "code": zip_of(files), "binary": True}}
    assert native.post("/init", init) == (200, {"ok": True})
    assert native.post("/run", run_body({"name": "zip"})) == (200, {"said": "hello zip"})


def test_init_is_accepted_once(native, language):
    init = {"value": {"name": "hello", "main": "main", "code": NATIVE[language], "binary": False}}
    assert native.post("/init", init)[0] == 200
    assert native.post("/init", init) == (403, {"error": "Cannot initialize the action more than once."})


def test_run_before_init_is_an_error(native):
    status, body = native.post("/run", run_body({}))
    assert status == 502 and "not been initialized" in body["error"]


@pytest.mark.parametrize("value,reason", [
    ({"name": "x", "main": "main"}, "Missing main/no code to execute."),
    ({"name": "x", "main": "absent", "code": NATIVE["python3"]}, "absent"),
    ({"name": "x", "main": "main", "code": "not base64!", "binary": True}, "zip"),
])
def test_a_failed_init_is_a_502_with_the_reason_and_framed_logs(native, language, value, reason):
    if language == "nodejs" and value.get("code") == NATIVE["python3"]:
        value = {**value, "code": NATIVE["nodejs"]}
    status, body = native.post("/init", {"value": value})
    assert status == 502 and reason in body["error"]
    assert any(reason in line for line in native.activation_logs("stderr"))
    assert native.activation_logs("stdout") == []


def test_an_exception_is_an_error_field_and_a_non_object_result_too(native, language):
    init = {"value": {"name": "hello", "main": "main", "code": NATIVE[language]}}
    native.post("/init", init)
    status, body = native.post("/run", run_body({"name": "x", "fail": True}))
    assert status == 200 and "asked to fail" in body["error"]
    assert native.activation_logs("stdout") == ["out x"]
    assert native.activation_logs("stderr")[0] == "err line"
    status, body = native.post("/run", run_body({"list": True}))
    assert body == {"error": "the action did not return a dictionary"}


def test_the_dispatch_adapter_zip_runs_in_the_native_server(native, language, tmp_path):
    """The openwhisk driver's zip (source + adapter) through /init and /run."""
    handler, file, code = HANDLERS[language]
    (tmp_path / file).write_text(code)
    archive = pack(str(tmp_path))
    dep = Deployment(org="o", name="f", version="1", handler=handler, language=language, image=language,
                     timeout_ms=1000, source=lambda: archive)
    init = {"value": {"name": "f", "main": "main", "binary": True,
                      "code": base64.b64encode(action_zip(dep)).decode()}}
    assert native.post("/init", init) == (200, {"ok": True})
    status, body = native.post("/run", run_body({"context": {"a": 1}, "payload": "p"}))
    assert (status, body) == (200, {"payload": {"ctx": {"a": 1}, "payload": "p"}})
    assert native.activation_logs("stdout") == ["handled p"]
    status, body = native.post("/run", run_body({"context": {}, "payload": "boom"}))
    assert body["error"]["type"] == "FunctionError"
    assert body["error"]["message"] in ("KeyError: 'missing'", "RangeError: missing")
    assert body["error"]["stacktrace"]


def test_blackbox_init_applies_env_and_a_dispatch_value_is_answered_as_dispatch(blackbox):
    assert blackbox.post("/init", {"value": {"name": "f", "main": "main", "env": {"X": "1"}}}) == (200, {"ok": True})
    status, body = blackbox.post("/run", run_body({"context": {"a": 1}, "payload": "p"}))
    assert status == 200 and "error" not in body
    assert body["payload"] == {"ctx": {"a": 1}, "payload": "p"}
    assert body["context"]["logs"]["stdout"] == ["handled p"]
    assert blackbox.activation_logs("stdout") == ["handled p"]
    assert blackbox.activation_logs("stderr") == []
    # a failure is also a top-level error: OpenWhisk records an application error
    status, body = blackbox.post("/run", run_body({"context": {}, "payload": "boom"}))
    assert body["error"] == body["context"]["error"] and body["error"]["type"] == "FunctionError"
    assert body["payload"] is None
    assert blackbox.activation_logs("stdout") == ["handled boom"]


def test_a_docker_built_function_image_is_a_blackbox_action(docker_host, base_images, registry, tmp_path, language):
    """The function image the docker builder makes, run as OpenWhisk runs a blackbox action:
    the image's own command, port 8080 published, /init then /run, logs from the container."""
    import docker

    from engine.builders.base import BaseImageSpec, ImageSpec
    from engine.builders.docker import DockerBuilder

    handler, file, code = HANDLERS[language]
    (tmp_path / file).write_text(code)
    archive = pack(str(tmp_path))
    builder = DockerBuilder(str(tmp_path), docker_host=docker_host, registry=registry)
    base = BaseImageSpec(org="owtest", name=f"{language}-base", url=base_images[language], language=language)
    image = ImageSpec(org="owtest", name=language, id=f"owtest-{language}", base=base)
    config = builder.build_image(image, builder.check_base(base)).config
    dep = Deployment(org="owtest", name="f", version=uuid.uuid4().hex, handler=handler, language=language,
                     image=language, timeout_ms=1000, source=lambda: archive, image_config=config)
    config = builder.build_function(dep)
    client = docker.DockerClient(base_url=docker_host, version="1.41").api
    cid = None
    try:
        host_config = client.create_host_config(port_bindings={8080: ("127.0.0.1", None)})
        cid = client.create_container(config["functionImage"], ports=[8080], host_config=host_config)["Id"]
        client.start(cid)
        port = int(client.inspect_container(cid)["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
        url = f"http://127.0.0.1:{port}"
        def init():
            try:  # (the answer in a tuple: a Response is false when its status is not 2xx)
                return (requests.post(f"{url}/init", json={"value": {"name": "f", "main": "main"}},
                                      timeout=5),)
            except requests.ConnectionError:
                return None

        resp, = settles(init, "the container did not listen on 8080")
        assert (resp.status_code, resp.json()) == (200, {"ok": True})
        resp = requests.post(f"{url}/run", json=run_body({"context": {}, "payload": "c"}), timeout=10)
        assert resp.json()["payload"] == {"ctx": {}, "payload": "c"}
        env = requests.post(f"{url}/run", json=run_body("plain"), timeout=10)
        assert env.json()["payload"] == "plain"  # a non-Dispatch value: the handler gets it as payload
        deadline = time.monotonic() + 10
        while True:  # the invoker reads each activation's logs up to the sentinels
            out = client.logs(cid, stdout=True, stderr=False).decode().splitlines()
            err = client.logs(cid, stdout=False, stderr=True).decode().splitlines()
            if out.count(SENTINEL) == 2 and err.count(SENTINEL) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert out == ["handled c", SENTINEL, "handled plain", SENTINEL]
        assert err == [SENTINEL, SENTINEL]
        assert requests.post(f"{url}/init", json={"value": {}}, timeout=5).status_code == 403
    finally:
        if cid:
            client.remove_container(cid, force=True)
        builder.remove_function(config)
        builder.close()
