"""The CLI against a real embedded Dispatch: SQLite store, in-process Dramatiq workers and
local sandboxed functions, all behind real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from cli import config

ROOT = Path(__file__).resolve().parents[2]

HELLO = '''\
def handle(ctx, payload):
    return {"myField": "Hello, %s from %s" % (payload.get("name"), payload.get("place"))}
'''

JON = '{"name": "Jon", "place": "Winterfell"}'
JON_SAYS = {"myField": "Hello, Jon from Winterfell"}


@pytest.fixture
def hello_file(tmp_path):
    path = tmp_path / "hello.py"
    path.write_text(HELLO)
    return path


def unique(prefix: str) -> str:
    """A function name no other test uses (the server is shared by the module)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def eventually(check, timeout_s: float = 30.0):
    """``check()``'s first truthy result, retried until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def create_hello(dispatch, hello_file) -> str:
    name = unique("hello")
    dispatch("create", "function", "--wait", name, hello_file, "--image", "python3")
    return name


def test_create_function_wait_waits_until_ready(dispatch, at_server, hello_file):
    name = unique("hello")
    result = dispatch("create", "function", "--wait", name, hello_file, "--image", "python3")
    assert result.stdout == f"Created function: {name}\n"
    function = dispatch.json("get", "function", name)
    assert function["status"] == "READY"
    assert function["handler"] == "hello.handle"
    assert function["image"] == "python3"


def test_a_function_with_a_bad_handler_is_created_then_goes_error(dispatch, at_server,
                                                                  hello_file):
    # Dispatch's e2e: create succeeds, then `get function` is polled for READY or ERROR
    name = unique("bad")
    result = dispatch("create", "function", name, hello_file, "--image", "python3",
                      "--handler", "hello.no_such_function")
    assert result.stdout == f"Created function: {name}\n"
    function = eventually(lambda: (f := dispatch.json("get", "function", name))["status"]
                          in ("READY", "ERROR") and f)
    assert function["status"] == "ERROR" and "no_such_function" in " ".join(function["reason"])

    again = unique("bad")
    result = dispatch("create", "function", again, hello_file, "--image", "python3",
                      "--handler", "hello.no_such_function", "--wait", expect=1)
    assert result.stderr.startswith(f"Error: function {again} failed: ")
    assert "no_such_function" in result.stderr


def test_create_function_from_a_directory(dispatch, at_server, tmp_path):
    (tmp_path / "fn" / "greetings").mkdir(parents=True)
    (tmp_path / "fn" / "greetings" / "__init__.py").write_text('WORD = "Hi"\n')
    (tmp_path / "fn" / "main.py").write_text(
        "from greetings import WORD\n\n"
        "def greet(ctx, payload):\n"
        '    return WORD + ", " + payload["name"]\n'
    )
    name = unique("dir")
    dispatch("create", "function", "--wait", name, tmp_path / "fn", "--image", "python3",
             "--handler", "main.greet", "--timeout", "5000")
    assert dispatch.json("get", "function", name)["timeout"] == 5000
    run = json.loads(dispatch("exec", name, "--input", '{"name": "Arya"}', "--wait").stdout)
    assert run["status"] == "READY", run
    assert run["output"] == "Hi, Arya"


def test_get_functions_as_a_table(dispatch, at_server, hello_file):
    name = create_hello(dispatch, hello_file)
    lines = dispatch("get", "functions").stdout.splitlines()
    assert [h.strip() for h in lines[0].split("|")] == ["NAME", "IMAGE", "STATUS", "CREATED DATE"]
    row = next(line for line in lines if line.split("|")[0].strip() == name)
    cells = [c.strip() for c in row.split("|")]
    assert cells[1:3] == ["python3", "READY"]
    assert cells[3].endswith(time.strftime("%Y"))


def test_get_functions_as_json(dispatch, at_server, hello_file):
    name = create_hello(dispatch, hello_file)
    functions = dispatch.json("get", "functions")
    assert isinstance(functions, list)
    assert name in {f["name"] for f in functions}
    assert all(f["kind"] == "Function" for f in functions)


def test_get_function_as_yaml(dispatch, at_server, hello_file):
    import yaml

    name = create_hello(dispatch, hello_file)
    function = yaml.safe_load(dispatch("get", "function", name, "-o", "yaml").stdout)
    assert function["name"] == name and function["status"] == "READY"


def test_exec_wait_prints_the_functions_output(dispatch, at_server, hello_file):
    name = create_hello(dispatch, hello_file)
    run = json.loads(dispatch("exec", name, "--input", JON, "--wait").stdout)
    assert run["status"] == "READY", run
    assert run["functionName"] == name
    assert run["output"] == JON_SAYS


def test_exec_without_wait_returns_at_once_and_the_run_finishes(dispatch, at_server, hello_file):
    name = create_hello(dispatch, hello_file)
    run = json.loads(dispatch("exec", name, "--input", JON).stdout)
    assert run["status"] == "INITIALIZED"

    def finished():
        runs = dispatch.json("get", "runs", name)
        return next((r for r in runs if r["name"] == run["name"] and r["status"] == "READY"), None)

    done = eventually(finished)
    assert done, dispatch("get", "runs", name).stdout
    assert done["output"] == JON_SAYS
    table = dispatch("get", "run", name, run["name"]).stdout.splitlines()
    assert [h.strip() for h in table[0].split("|")] == ["ID", "FUNCTION", "STATUS", "STARTED", "FINISHED"]
    cells = [c.strip() for c in table[2].split("|")]
    assert cells[:3] == [run["name"], name, "READY"]
    assert cells[3] and cells[4]  # both times shown


def test_a_failing_function_gives_a_run_in_error(dispatch, at_server, tmp_path):
    (tmp_path / "boom.py").write_text("def handle(ctx, payload):\n    raise ValueError('boom')\n")
    name = unique("boom")
    dispatch("create", "function", "--wait", name, tmp_path / "boom.py", "--image", "python3")
    run = json.loads(dispatch("exec", name, "--wait").stdout)  # the Run prints; exit 0
    assert run["status"] == "ERROR"
    assert run["error"]["type"] == "FunctionError"
    assert "boom" in run["error"]["message"]


def test_delete_function(dispatch, at_server, hello_file):
    name = create_hello(dispatch, hello_file)
    assert dispatch("delete", "function", name).stdout == f"Deleted function: {name}\n"
    gone = eventually(lambda: dispatch("get", "function", name, expect=None).exit_code == 1)
    assert gone
    assert name not in {f["name"] for f in dispatch.json("get", "functions")}


def test_unknown_function_is_an_error_with_the_servers_message(dispatch, at_server):
    result = dispatch("get", "function", "no-such-fn", expect=1)
    assert result.stderr.startswith("Error: ")
    assert "no-such-fn" in result.stderr and "not found" in result.stderr
    result = dispatch("exec", "no-such-fn", "--wait", expect=1)
    assert "no-such-fn" in result.stderr
    result = dispatch("delete", "function", "no-such-fn", expect=1)
    assert "not found" in result.stderr


def test_creating_a_function_twice_is_a_conflict(dispatch, at_server, hello_file):
    name = create_hello(dispatch, hello_file)
    result = dispatch("create", "function", "--wait", name, hello_file, "--image", "python3", expect=1)
    # Dispatch's "<kind> <name> already exists"
    assert result.stderr.lower() == f"error: function {name} already exists\n"


def test_bad_input_json_is_refused_before_any_run(dispatch, at_server, hello_file):
    name = create_hello(dispatch, hello_file)
    result = dispatch("exec", name, "--input", "{'name': 'Jon'}", expect=2)
    assert "Invalid value for '--input'" in result.stderr
    assert dispatch.json("get", "runs", name) == []


def test_the_config_files_context_is_used_with_no_flags(dispatch, server):
    config.write_context(os.environ["DISPATCH_CONFIG"], config.Context(port=server.port))
    assert isinstance(dispatch.json("get", "functions"), list)


def test_flags_override_env_which_overrides_the_config_file(dispatch, server, monkeypatch):
    dead = _free_port()
    config.write_context(os.environ["DISPATCH_CONFIG"], config.Context(port=dead))
    unreachable = dispatch("get", "functions", expect=1)
    assert f"127.0.0.1:{dead}" in unreachable.stderr

    monkeypatch.setenv("DISPATCH_PORT", str(server.port))
    dispatch("get", "functions")  # env beats the file

    monkeypatch.setenv("DISPATCH_PORT", str(dead))
    dispatch("get", "functions", "--port", server.port)  # a flag beats env
    dispatch("--port", server.port, "get", "functions")  # before the verb too

    monkeypatch.setenv("DISPATCH_PORT", str(server.port))
    monkeypatch.setenv("DISPATCH_ORGANIZATION", "other-org")
    assert dispatch.json("get", "functions") == []  # orgs see only their own
    assert dispatch.json("get", "functions", "--organization", "default") != []


def test_dispatch_up_writes_the_context_and_serves(dispatch, isolated_env, hello_file):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    up = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "up", "--port", str(port),
         "--home", str(isolated_env / "dispatch-home")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert eventually(lambda: _answers(f"http://127.0.0.1:{port}/healthz") or up.poll() is not None), \
            "dispatch up did not start listening"
        assert up.poll() is None, up.stdout.read()
        stored = config.current_context(config.read_file(os.environ["DISPATCH_CONFIG"]))
        assert (stored["host"], stored["port"], stored["scheme"], stored["organization"]) == (
            "127.0.0.1", port, "http", "default")
        # auth is on: the context signs as the admin the server bootstrapped
        assert (stored["serviceAccount"], stored["jwtPrivateKey"]) == (
            "default/admin", str(isolated_env / "dispatch-home" / "admin.key"))

        name = unique("up")  # everything below with no connection flags or credentials
        dispatch("create", "function", "--wait", name, hello_file, "--image", "python3")
        run = json.loads(dispatch("exec", name, "--input", JON, "--wait").stdout)
        assert run["output"] == JON_SAYS
    finally:
        up.send_signal(signal.SIGINT)
        try:
            output, _ = up.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            output, _ = up.communicate()
    assert up.returncode == 0, output
    assert f"127.0.0.1:{port}" in output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
