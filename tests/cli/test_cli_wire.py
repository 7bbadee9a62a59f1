"""What the CLI puts on the wire, checked against a recording HTTP server.

These pin the request shapes the original Dispatch CLI sends (reference §2, "What the
original CLI sends on the wire") and how answers and failures are shown.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import socket
import tarfile

import pytest

FUNCTION = {
    "name": "hello", "kind": "Function", "image": "python3", "handler": "hello.handle",
    "status": "READY", "reason": [], "createdTime": 1700000000,
}


def _members(source_b64: str) -> dict[str, bytes]:
    raw = gzip.decompress(base64.b64decode(source_b64))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_every_request_sends_accept_org_and_unset_cookie(dispatch, recorder):
    recorder.answer("GET", "/v1/function", (200, []))
    dispatch("get", "functions", "--organization", "acme")
    headers = recorder.requests[0].headers
    assert headers["Accept"] == "application/json"
    assert headers["X-Dispatch-Org"] == "acme"
    assert headers["Cookie"] == "unset"
    assert "Authorization" not in headers


def test_token_is_sent_as_bearer_instead_of_the_cookie(dispatch, recorder, monkeypatch):
    recorder.answer("GET", "/v1/function", (200, []))
    monkeypatch.setenv("DISPATCH_TOKEN", "abc.def")
    dispatch("get", "functions")
    headers = recorder.requests[0].headers
    assert headers["Authorization"] == "Bearer abc.def"
    assert "Cookie" not in headers


def test_create_function_sends_the_original_cli_body(dispatch, recorder, tmp_path):
    source = tmp_path / "hello.py"
    source.write_text("def handle(ctx, payload):\n    return payload\n")
    recorder.answer("POST", "/v1/function", (201, {**FUNCTION, "status": "INITIALIZED"}))
    recorder.answer("GET", "/v1/function/hello", (200, FUNCTION))

    result = dispatch("create", "function", "hello", source, "--image", "python3",
                      "--timeout", 1500)

    assert result.stdout == "Created function: hello\n"
    post = recorder.requests[0]
    assert post.headers["Content-Type"] == "application/json"
    body = post.body
    assert set(body) == {"name", "image", "handler", "source", "schema", "secrets",
                         "services", "tags", "timeout"}
    assert body["handler"] == "hello.handle"  # defaulted from the file name
    assert body["schema"] == {"in": None, "out": None}
    assert body["secrets"] == body["services"] == body["tags"] == []
    assert body["timeout"] == 1500
    assert _members(body["source"]) == {"hello.py": source.read_bytes()}


def test_create_function_from_a_directory_packs_its_contents(dispatch, recorder, tmp_path):
    (tmp_path / "fn" / "lib").mkdir(parents=True)
    (tmp_path / "fn" / "main.py").write_text("from lib import x\n")
    (tmp_path / "fn" / "lib" / "x.py").write_text("X = 1\n")
    recorder.answer("POST", "/v1/function", (201, FUNCTION))
    recorder.answer("GET", "/v1/function/hello", (200, FUNCTION))

    dispatch("create", "function", "hello", tmp_path / "fn", "--image", "python3",
             "--handler", "main.handle")

    body = recorder.requests[0].body
    assert "timeout" not in body
    assert body["handler"] == "main.handle"
    assert set(_members(body["source"])) == {"main.py", "lib/x.py"}


def test_create_function_returns_once_created_without_polling(dispatch, recorder, tmp_path):
    # as Dispatch's CLI: scripts create, then poll `get function` for READY or ERROR
    (tmp_path / "hello.py").write_text("def handle(ctx, payload): pass\n")
    recorder.answer("POST", "/v1/function", (201, {**FUNCTION, "status": "INITIALIZED"}))
    result = dispatch("create", "function", "hello", tmp_path / "hello.py", "--image", "python3")
    assert result.stdout == "Created function: hello\n"
    assert [r.method for r in recorder.requests] == ["POST"]
    # --no-wait, the opt-out of when waiting was the default, is still accepted
    dispatch("create", "function", "hello", tmp_path / "hello.py", "--image", "python3",
             "--no-wait")
    assert [r.method for r in recorder.requests] == ["POST", "POST"]


def test_create_function_wait_polls_until_ready(dispatch, recorder, tmp_path):
    (tmp_path / "hello.py").write_text("def handle(ctx, payload): pass\n")
    recorder.answer("POST", "/v1/function", (201, {**FUNCTION, "status": "INITIALIZED"}))
    recorder.answer(
        "GET", "/v1/function/hello",
        (200, {**FUNCTION, "status": "CREATING"}), (200, {**FUNCTION, "status": "CREATING"}),
        (200, FUNCTION),
    )
    result = dispatch("create", "function", "hello", tmp_path / "hello.py",
                      "--image", "python3", "--wait", "-o", "json")
    assert json.loads(result.stdout)["status"] == "READY"
    assert [r.method for r in recorder.requests] == ["POST", "GET", "GET", "GET"]


def test_a_function_that_ends_in_error_is_created_and_wait_exits_1_with_the_reason(
        dispatch, recorder, tmp_path):
    (tmp_path / "hello.py").write_text("syntax error(\n")
    recorder.answer("POST", "/v1/function", (201, {**FUNCTION, "status": "INITIALIZED"}))
    recorder.answer("GET", "/v1/function/hello",
                    (200, {**FUNCTION, "status": "ERROR", "reason": ["cannot import hello"]}))
    created = dispatch("create", "function", "hello", tmp_path / "hello.py", "--image", "python3")
    assert created.stdout == "Created function: hello\n"

    result = dispatch("create", "function", "hello", tmp_path / "hello.py",
                      "--image", "python3", "--wait", expect=1)
    assert result.stderr == "Error: function hello failed: cannot import hello\n"
    assert "Created" not in result.stdout


def test_update_function_returns_at_once_unless_wait(dispatch, recorder, tmp_path):
    (tmp_path / "hello.py").write_text("def handle(ctx, payload): pass\n")
    recorder.answer("PUT", "/v1/function/hello", (200, {**FUNCTION, "status": "UPDATING"}))
    recorder.answer("GET", "/v1/function/hello", (200, {**FUNCTION, "status": "UPDATING"}),
                    (200, {**FUNCTION, "status": "ERROR", "reason": ["no module x"]}))
    dispatch("update", "function", "hello", tmp_path / "hello.py", "--image", "python3")
    assert [r.method for r in recorder.requests] == ["PUT"]
    result = dispatch("update", "function", "hello", tmp_path / "hello.py", "--image",
                      "python3", "--wait", expect=1)
    assert "function hello failed: no module x" in result.stderr
    assert [r.method for r in recorder.requests] == ["PUT", "PUT", "GET", "GET"]


SETTLING_COMMANDS = {
    "base-image": (["create", "base-image", "b", "python3", "--language", "python3"],
                   "/v1/baseimage", "/v1/baseimage/b", "b"),
    "image": (["create", "image", "b", "base"], "/v1/image", "/v1/image/b", "b"),
    "subscription": (["create", "subscription", "fn", "--event-type", "t", "--name", "b"],
                     "/v1/event/subscriptions", "/v1/event/subscriptions/b", "b"),
    "eventdriver": (["create", "eventdriver", "cron", "--name", "b", "--set", "schedule=* * * * *"],
                    "/v1/event/drivers", "/v1/event/drivers/b", "b"),
    "api": (["create", "api", "b", "fn", "-p", "/b"], "/v1/api", "/v1/api/b", "b"),
}


@pytest.mark.parametrize("args, post, get, name", SETTLING_COMMANDS.values(),
                         ids=SETTLING_COMMANDS.keys())
def test_other_creates_return_once_created_and_wait_only_with_wait(
        dispatch, recorder, args, post, get, name):
    recorder.answer("POST", post, (201, {"name": name, "status": "CREATING"}))
    recorder.answer("GET", get, (200, {"name": name, "status": "CREATING"}),
                    (200, {"name": name, "status": "ERROR", "reason": ["it broke"]}))
    dispatch(*args)
    assert [r.method for r in recorder.requests] == ["POST"]

    result = dispatch(*args, "--wait", expect=1)
    assert [r.method for r in recorder.requests] == ["POST", "POST", "GET", "GET"]
    assert result.stderr.startswith("Error: ") and "b failed: it broke" in result.stderr


def test_create_function_from_a_directory_needs_a_handler(dispatch, recorder, tmp_path):
    result = dispatch("create", "function", "hello", tmp_path, "--image", "python3", expect=2)
    assert "--handler is required" in result.stderr
    assert recorder.requests == []


def test_exec_sends_input_blocking_and_secrets(dispatch, recorder):
    run = {"name": "r1", "functionName": "hello", "status": "READY", "output": {"a": 1}}
    recorder.answer("POST", "/v1/runs", (200, run))
    result = dispatch("exec", "hello", "--input", '{"name": "Jon"}', "--wait",
                      "--secret", "s1", "--secret", "s2")
    request = recorder.requests[0]
    assert request.query == {"functionName": ["hello"]}
    assert request.body == {"input": {"name": "Jon"}, "blocking": True, "secrets": ["s1", "s2"]}
    assert json.loads(result.stdout) == run  # the Run, as JSON, with no -o


def test_exec_defaults_to_empty_input_and_not_blocking(dispatch, recorder):
    recorder.answer("POST", "/v1/runs", (202, {"name": "r1", "status": "INITIALIZED"}))
    dispatch("exec", "hello")
    assert recorder.requests[0].body == {"input": {}, "blocking": False, "secrets": []}


def test_exec_with_invalid_input_names_the_option_and_sends_nothing(dispatch, recorder):
    result = dispatch("exec", "hello", "--input", "{name: Jon}", expect=2)
    assert "--input" in result.stderr
    assert "not valid JSON" in result.stderr
    assert recorder.requests == []


def test_get_runs_sends_function_name_and_no_since(dispatch, recorder):
    recorder.answer("GET", "/v1/runs", (200, []))
    recorder.answer("GET", "/v1/runs/r1", (200, {"name": "r1", "status": "READY"}))
    dispatch("get", "runs", "hello")
    dispatch("get", "run", "hello", "r1")
    assert recorder.requests[0].query == {"functionName": ["hello"]}
    assert recorder.requests[1].path == "/v1/runs/r1"
    assert recorder.requests[1].query == {"functionName": ["hello"]}


def test_delete_function(dispatch, recorder):
    recorder.answer("DELETE", "/v1/function/hello", (200, {**FUNCTION, "status": "DELETING"}))
    assert dispatch("delete", "function", "hello").stdout == "Deleted function: hello\n"


def test_api_error_prints_the_server_message_and_exits_1(dispatch, recorder):
    recorder.answer("GET", "/v1/function/nope",
                    (404, {"code": 404, "message": "function nope not found"}))
    result = dispatch("get", "function", "nope", expect=1)
    assert result.stderr == "Error: function nope not found\n"
    assert result.stdout == ""


def test_error_page_that_is_not_json_is_still_described(dispatch, recorder):
    recorder.answer("GET", "/v1/function", (502, None))
    result = dispatch("get", "functions", expect=1)
    assert "502" in result.stderr


def test_unreachable_server_says_how_to_start_one(dispatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = dispatch("get", "functions", "--port", port, expect=1)
    assert result.stderr == (
        f"Error: cannot reach Dispatch at http://127.0.0.1:{port}: "
        "is `dispatch up` running?\n"
    )


def test_global_options_work_before_and_after_the_verb(dispatch, recorder):
    recorder.answer("GET", "/v1/function", (200, [FUNCTION]))
    before = dispatch("-o", "json", "get", "functions")
    after = dispatch("get", "functions", "-o", "json")
    hidden = dispatch("get", "functions", "--json")
    assert json.loads(before.stdout) == json.loads(after.stdout) == json.loads(hidden.stdout)
    assert json.loads(after.stdout) == [FUNCTION]


def test_version_shows_the_server_version(dispatch, recorder):
    recorder.answer("GET", "/v1/version", (200, {"version": "0.2.0", "commit": "abc"}))
    result = dispatch("version")
    assert "Server: 0.2.0 (abc)" in result.stdout


def test_version_without_a_server_still_prints_the_client(dispatch, monkeypatch):
    monkeypatch.setenv("DISPATCH_PORT", "1")
    result = dispatch("version")
    assert result.stdout.startswith("Client: ")
    assert "cannot reach Dispatch" in result.stdout
