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


def test_create_function_polls_until_ready(dispatch, recorder, tmp_path):
    (tmp_path / "hello.py").write_text("def handle(ctx, payload): pass\n")
    recorder.answer("POST", "/v1/function", (201, {**FUNCTION, "status": "INITIALIZED"}))
    recorder.answer(
        "GET", "/v1/function/hello",
        (200, {**FUNCTION, "status": "CREATING"}), (200, {**FUNCTION, "status": "CREATING"}),
        (200, FUNCTION),
    )
    result = dispatch("create", "function", "hello", tmp_path / "hello.py",
                      "--image", "python3", "-o", "json")
    assert json.loads(result.stdout)["status"] == "READY"
    assert [r.method for r in recorder.requests] == ["POST", "GET", "GET", "GET"]


def test_create_function_no_wait_does_not_poll(dispatch, recorder, tmp_path):
    (tmp_path / "hello.py").write_text("def handle(ctx, payload): pass\n")
    recorder.answer("POST", "/v1/function", (201, {**FUNCTION, "status": "INITIALIZED"}))
    dispatch("create", "function", "hello", tmp_path / "hello.py", "--image", "python3",
             "--no-wait")
    assert [r.method for r in recorder.requests] == ["POST"]


def test_create_function_that_ends_in_error_shows_the_reason(dispatch, recorder, tmp_path):
    (tmp_path / "hello.py").write_text("syntax error(\n")
    recorder.answer("POST", "/v1/function", (201, {**FUNCTION, "status": "INITIALIZED"}))
    recorder.answer("GET", "/v1/function/hello",
                    (200, {**FUNCTION, "status": "ERROR", "reason": ["cannot import hello"]}))
    result = dispatch("create", "function", "hello", tmp_path / "hello.py",
                      "--image", "python3", expect=1)
    assert "cannot import hello" in result.stderr
    assert "Created" not in result.stdout


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
