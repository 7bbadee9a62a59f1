"""The Node.js function server, spoken to over TCP as a container's port would be."""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import textwrap
import threading

import pytest

from engine.drivers.languages import RUNTIMES

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")]

SERVER_FILE = RUNTIMES["nodejs"].server_file
NODE = shutil.which("node") or "node"

HANDLER = """
module.exports = async function (context, payload) {
  if (payload === 'boom') throw new RangeError('missing');
  if (payload === 'reject') return Promise.reject(new TypeError('rejected'));
  if (payload === 'timer') return new Promise(() => setTimeout(() => { throw new Error('in a timer'); }, 5));
  if (payload === 'string') throw 'plain';
  if (payload === 'bigint') return { n: 10n };
  if (payload === 'cycle') { const a = {}; a.self = a; return a; }
  if (payload === 'huge') return 'x'.repeat(1024 * 1024);
  if (payload === 'slow') await new Promise((resolve) => setTimeout(resolve, 500));
  if (payload === 'loud') process.stdout.write('z'.repeat(200000) + '\\n');
  if (payload === 'child') require('child_process').execFileSync('echo', ['from a child'], { stdio: 'inherit' });
  console.log('out', payload);
  console.error('err');
  return { ctx: context, payload, env: process.env.GREETING || null };
};
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(directory, handler="fn.js", *, port=None, env=None, extra=(), **popen):
    """Start server.js, wait for its ready line; return (process, port)."""
    port = port or free_port()
    ready_r, ready_w = os.pipe()
    cmd = [NODE, SERVER_FILE, "--handler", handler, "--dir", str(directory), "--ready-fd", str(ready_w), *extra]
    if env is None and "--socket" not in extra:
        cmd += ["--port", str(port)]
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen(cmd, pass_fds=(ready_w,), env=env, **popen)
    os.close(ready_w)
    readable, _, _ = select.select([ready_r], [], [], 20)
    line = os.read(ready_r, 64) if readable else b""
    os.close(ready_r)
    assert line == b"ready\n", proc.stderr.read() if proc.poll() is not None and proc.stderr else "no ready line"
    return proc, port


@pytest.fixture
def function_dir(tmp_path):
    (tmp_path / "fn.js").write_text(textwrap.dedent(HANDLER))
    return tmp_path


@pytest.fixture
def server(function_dir):
    proc, port = start_server(function_dir)
    yield port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def call(conn, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, data, {"Content-Type": "application/json"} if data else {})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def run(port, payload, context=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    status, body = call(conn, "POST", "/", {"context": context or {}, "payload": payload})
    assert status == 200
    return body


def test_healthz_answers_an_empty_object(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    assert call(conn, "GET", "/healthz") == (200, {})


def test_dispatch_protocol_returns_payload_and_logs_on_one_kept_alive_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    for i in range(3):
        status, body = call(conn, "POST", "/", {"context": {"n": i}, "payload": f"p{i}"})
        assert status == 200
        assert body == {"context": {"logs": {"stdout": [f"out p{i}"], "stderr": ["err"]}, "error": None},
                        "payload": {"ctx": {"n": i}, "payload": f"p{i}", "env": None}}
    first_sock = conn.sock
    assert call(conn, "GET", "/healthz")[0] == 200
    assert conn.sock is first_sock  # still the same connection


@pytest.mark.parametrize("payload, message", [
    ("boom", "RangeError: missing"),
    ("reject", "TypeError: rejected"),
    ("timer", "Error: in a timer"),  # thrown outside the handler's own call chain
])
def test_a_throw_or_rejection_is_a_function_error_with_the_stack(server, payload, message):
    body = run(server, payload)
    error = body["context"]["error"]
    assert error["type"] == "FunctionError"
    assert error["message"] == message
    assert error["stacktrace"][0] == message
    assert any("fn.js" in line for line in error["stacktrace"])
    assert not any("server.js" in line for line in error["stacktrace"])  # the runtime's frames are hidden
    assert body["payload"] is None
    assert run(server, "after")["context"]["error"] is None  # the server carries on


def test_a_thrown_non_error_is_a_function_error(server):
    error = run(server, "string")["context"]["error"]
    assert error == {"type": "FunctionError", "message": "a non-Error value was thrown: plain", "stacktrace": []}


@pytest.mark.parametrize("payload, detail", [("bigint", "BigInt"), ("cycle", "circular structure")])
def test_a_result_json_cannot_encode_is_a_function_error(server, payload, detail):
    error = run(server, payload)["context"]["error"]
    assert error["message"].startswith("the function's output is not JSON-serializable: TypeError: ")
    assert detail in error["message"]


def test_a_result_over_one_megabyte_is_refused(server):
    body = run(server, "huge")
    assert body["payload"] is None
    assert body["context"]["error"]["message"] == (
        "output is larger than 1048576 bytes: the function returned 1048578 bytes of JSON")


def test_log_capture_is_capped_per_stream(server):
    stdout = run(server, "loud")["context"]["logs"]["stdout"]
    assert stdout[-1] == "... [truncated]"
    assert len(stdout[0]) == 64 * 1024


def test_healthz_is_answered_while_an_invocation_runs(server):
    caller = threading.Thread(target=run, args=(server, "slow"))
    caller.start()
    threading.Event().wait(0.1)
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=0.3)
    assert call(conn, "GET", "/healthz") == (200, {})
    caller.join()


def test_invocations_run_one_at_a_time(server):
    results = []
    callers = [threading.Thread(target=lambda p=p: results.append(run(server, p))) for p in ("slow", "fast")]
    for t in callers:
        t.start()
        threading.Event().wait(0.05)
    for t in callers:
        t.join()
    # each invocation's logs are its own, even though the second arrived during the first
    assert sorted(r["context"]["logs"]["stdout"][0] for r in results) == ["out fast", "out slow"]


def test_openwhisk_init_then_run(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    assert call(conn, "POST", "/init", {"value": {"main": "handle", "env": {"GREETING": "hi"}}}) == (
        200, {"ok": True})
    status, body = call(conn, "POST", "/run", {"value": {"name": "x"}, "activation_id": "a1",
                                               "deadline": "1700000000000"})
    assert status == 200
    assert body == {"ctx": {"deadline": "1700000000000"}, "payload": {"name": "x"}, "env": "hi"}


def test_openwhisk_run_failure_is_an_error_field(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    assert call(conn, "POST", "/run", {"value": "boom"}) == (200, {"error": "RangeError: missing"})


def test_openwhisk_run_with_a_dispatch_envelope_answers_like_dispatch(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    _, body = call(conn, "POST", "/run", {"value": {"context": {"a": 1}, "payload": "p"}})
    assert body["payload"]["ctx"] == {"a": 1}
    assert body["context"]["logs"]["stdout"] == ["out p"]


def test_unknown_routes_and_bad_bodies_are_client_errors(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    assert call(conn, "GET", "/nothing")[0] == 404
    assert call(conn, "GET", "/")[0] == 405
    conn.request("POST", "/", b"{not json", {"Content-Length": "9"})
    resp = conn.getresponse()
    assert resp.status == 400 and "not JSON" in json.loads(resp.read())["error"]
    assert call(conn, "POST", "/", [1, 2]) == (400, {"error": "request body must be a JSON object"})


def test_an_idle_open_connection_does_not_block_another(server):
    idle = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    call(idle, "GET", "/healthz")
    other = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    assert call(other, "GET", "/healthz") == (200, {})


def test_port_comes_from_the_PORT_variable(function_dir):
    port = free_port()
    proc, _ = start_server(function_dir, env={"PORT": str(port), "PATH": os.environ["PATH"]})
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        assert call(conn, "GET", "/healthz") == (200, {})
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_finishes_the_request_in_flight_then_exits_cleanly(function_dir):
    proc, port = start_server(function_dir)
    result = {}

    def slow():
        result["reply"] = run(port, "slow")

    caller = threading.Thread(target=slow)
    caller.start()
    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    threading.Event().wait(0.2)  # let the slow call begin
    proc.send_signal(signal.SIGTERM)
    caller.join()
    assert proc.wait(timeout=10) == 0
    assert result["reply"]["payload"]["payload"] == "slow"
    with pytest.raises(OSError):
        call(probe, "GET", "/healthz")


def test_with_its_capture_files_as_fds_1_and_2_child_output_is_captured_too(function_dir, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    out, err = (os.open(instance / name, flags, 0o600) for name in ("stdout", "stderr"))
    socket_path = str(instance / "sock")
    proc, _ = start_server(function_dir, extra=("--socket", socket_path), stdout=out, stderr=err)
    os.close(out)
    os.close(err)
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(socket_path)
        conn = http.client.HTTPConnection("localhost", timeout=10)
        conn.sock = sock
        for _ in range(2):  # the files are emptied before each invocation
            _, body = call(conn, "POST", "/", {"context": {}, "payload": "child"})
            assert body["context"]["logs"] == {"stdout": ["from a child", "out child"], "stderr": ["err"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert not os.path.exists(socket_path)


@pytest.mark.parametrize("files, handler", [
    ({"fn.js": "module.exports = (ctx, p) => 'ok';"}, "fn.js"),
    ({"fn.js": "module.exports = (ctx, p) => 'ok';"}, "./fn.js"),
    ({"fn.js": "module.exports = (ctx, p) => 'ok';"}, "fn"),
    ({"fn.js": "exports.handle = async (ctx, p) => 'ok';"}, "fn.handle"),
    ({"lib/util.js": "exports.handle = (ctx, p) => 'ok';"}, "lib/util.handle"),
    ({"fn.mjs": "export default async (ctx, p) => 'ok';"}, "fn.mjs"),
    ({"fn.mjs": "export const handle = (ctx, p) => 'ok';"}, "fn.handle"),
    ({"fn.mjs": "await 0;\nexport default (ctx, p) => 'ok';"}, "fn.mjs"),  # top-level await
])
def test_handler_names_a_file_or_one_of_its_exports(tmp_path, files, handler):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    proc, port = start_server(tmp_path, handler)
    try:
        assert run(port, None)["payload"] == "ok"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("source, handler, reason", [
    ("module.exports = () => 1;\n", "absent.js", "handler module 'absent.js' not found"),
    ("const x = 1;\n\nmodule.exports = function (ctx, payload) {\n  return {\n}}}\n", "fn.js",
     "SyntaxError in fn.js line 5: Unexpected token '}'"),
    ("module.exports = () => 1;\n", "fn.handle", "module 'fn' has no export 'handle'"),
    ("module.exports = { a: 1 };\n", "fn.js", "handler 'fn.js' is not a function: module.exports is an object"),
    ("require('not_installed_anywhere');\n", "fn.js",
     "Error while loading 'fn.js': Cannot find module 'not_installed_anywhere'"),
    ("throw new TypeError('no config');\n", "fn.js", "TypeError while loading 'fn.js': no config"),
    ("exports.handle = 42;\n", "fn.handle", "handler 'fn.handle' is not a function"),
    ("module.exports = () => 1;\n", "lib/", "handler 'lib/' must be FILE.js or FILE.EXPORT"),
])
def test_a_broken_handler_exits_with_code_3_and_a_one_line_reason(tmp_path, source, handler, reason):
    (tmp_path / "fn.js").write_text(source)
    proc = subprocess.run([NODE, SERVER_FILE, "--handler", handler, "--dir", str(tmp_path),
                           "--port", str(free_port())], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 3
    assert proc.stderr == f"dispatch-runtime: handler error: {reason}\n"


def test_bad_usage_exits_with_code_2(tmp_path):
    proc = subprocess.run([NODE, SERVER_FILE, "--dir", str(tmp_path), "--bogus", "1"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2
    assert "unrecognized argument: --bogus" in proc.stderr
