"""The Python function server, spoken to over TCP as a container's port would be."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from engine.drivers.instance import SERVER_FILE

pytestmark = pytest.mark.timeout(60)

HANDLER = """
import os, subprocess, sys, time

def handle(ctx, payload):
    if payload == "boom":
        raise KeyError("missing")
    if payload == "set":
        return {1, 2}
    if payload == "huge":
        return {"big": "x" * (1 << 20)}
    if payload == "slow":
        time.sleep(0.5)
    if payload == "loud":
        sys.stdout.write("z" * 200_000 + "\\n")
    print("out", payload)
    os.write(2, b"err\\n")
    return {"ctx": ctx, "payload": payload, "env": os.environ.get("GREETING")}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(directory, handler="fn.handle", *, port=None, env=None):
    """Start server.py, wait for its ready line; return (process, port)."""
    port = port or free_port()
    ready_r, ready_w = os.pipe()
    cmd = [sys.executable, "-I", SERVER_FILE, "--handler", handler, "--dir", str(directory),
           "--ready-fd", str(ready_w)]
    if env is None:
        cmd += ["--port", str(port)]
    proc = subprocess.Popen(cmd, pass_fds=(ready_w,), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    os.close(ready_w)
    readable, _, _ = select.select([ready_r], [], [], 20)
    line = os.read(ready_r, 64) if readable else b""
    os.close(ready_r)
    assert line == b"ready\n", proc.stderr.read() if proc.poll() is not None else "no ready line"
    return proc, port


@pytest.fixture
def function_dir(tmp_path):
    (tmp_path / "fn.py").write_text(textwrap.dedent(HANDLER))
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


def test_exception_is_a_function_error_with_the_stack(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    status, body = call(conn, "POST", "/", {"context": {}, "payload": "boom"})
    assert status == 200
    error = body["context"]["error"]
    assert error["type"] == "FunctionError"
    assert error["message"] == "KeyError: 'missing'"
    assert error["stacktrace"][0] == "Traceback (most recent call last):"
    assert body["payload"] is None


def test_a_result_json_cannot_encode_is_a_function_error(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    _, body = call(conn, "POST", "/", {"context": {}, "payload": "set"})
    assert "not JSON-serializable" in body["context"]["error"]["message"]


def test_a_result_over_one_megabyte_is_refused(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    _, body = call(conn, "POST", "/", {"context": {}, "payload": "huge"})
    assert body["payload"] is None
    assert body["context"]["error"] == {
        "type": "FunctionError", "stacktrace": [],
        "message": "output is larger than 1048576 bytes: the function returned 1048587 bytes of JSON"}


def test_openwhisk_result_over_one_megabyte_is_an_error_field(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    status, body = call(conn, "POST", "/run", {"value": "huge"})
    assert status == 200 and body["error"].startswith("output is larger than 1048576 bytes")


def test_log_capture_is_capped_per_stream(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    _, body = call(conn, "POST", "/", {"context": {}, "payload": "loud"})
    stdout = body["context"]["logs"]["stdout"]
    assert stdout[-1] == "... [truncated]"
    assert len(stdout[0]) == 64 * 1024


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
    assert call(conn, "POST", "/run", {"value": "boom"}) == (200, {"error": "KeyError: 'missing'"})


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
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        result["reply"] = call(conn, "POST", "/", {"context": {}, "payload": "slow"})

    caller = threading.Thread(target=slow)
    caller.start()
    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    threading.Event().wait(0.2)  # let the slow call begin
    proc.send_signal(signal.SIGTERM)
    caller.join()
    assert proc.wait(timeout=10) == 0
    assert result["reply"][1]["payload"]["payload"] == "slow"
    with pytest.raises(OSError):
        call(probe, "GET", "/healthz")


@pytest.mark.parametrize("source, handler, reason", [
    ("def handle(ctx, payload):\n    pass\n", "absent.handle", "handler module 'absent' not found"),
    ("def handle(ctx, payload)\n    pass\n", "fn.handle", "SyntaxError in fn.py line 1: expected ':'"),
    ("def other(ctx, payload):\n    pass\n", "fn.handle", "module 'fn' has no attribute 'handle'"),
    ("import not_installed_anywhere\n", "fn.handle",
     "ModuleNotFoundError while importing 'fn': No module named 'not_installed_anywhere'"),
    ("raise RuntimeError('no config')\n", "fn.handle", "RuntimeError while importing 'fn': no config"),
    ("handle = 42\n", "fn.handle", "handler 'fn.handle' is not callable"),
    ("def handle(ctx, payload):\n    pass\n", "handle", "handler 'handle' must be MODULE.FUNCTION"),
])
def test_a_broken_handler_exits_with_code_3_and_a_one_line_reason(tmp_path, source, handler, reason):
    (tmp_path / "fn.py").write_text(source)
    proc = subprocess.run([sys.executable, "-I", SERVER_FILE, "--handler", handler, "--dir", str(tmp_path),
                           "--port", str(free_port())], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 3
    assert proc.stderr == f"dispatch-runtime: handler error: {reason}\n"
