"""``create|update function`` spec flags (--schema-in/-out, --secret, --network,
--concurrency) and ``get runs --last/--limit``: on the wire and against a real embedded
Dispatch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / "examples" / "python3"
HELLO = PYTHON / "hello.py"
SCHEMA_IN = PYTHON / "hello.schema.in.json"
SCHEMA_OUT = PYTHON / "hello.schema.out.json"

JON = '{"name": "Jon", "place": "Winterfell"}'


def run(dispatch, name: str, payload: str = "{}", *flags: str) -> dict:
    return json.loads(dispatch("exec", name, "--input", payload, "--wait", *flags).stdout)


# -- on the wire ------------------------------------------------------------------------


def test_spec_flags_go_into_the_create_body(dispatch, recorder):
    recorder.answer("POST", "/v1/function", (201, {"name": "hello", "status": "INITIALIZED"}))
    recorder.answer("GET", "/v1/function/hello", (200, {"name": "hello", "status": "READY"}))

    dispatch("create", "function", "--wait", "hello", HELLO, "--image", "python3",
             "--schema-in", SCHEMA_IN, "--schema-out", SCHEMA_OUT,
             "--secret", "s1", "--secret", "s2", "--network", "--concurrency", 3)

    body = recorder.requests[0].body
    assert body["schema"] == {"in": json.loads(SCHEMA_IN.read_text()),
                              "out": json.loads(SCHEMA_OUT.read_text())}
    assert body["secrets"] == ["s1", "s2"]
    assert body["network"] is True and body["concurrency"] == 3


def test_update_function_puts_the_same_body_by_name(dispatch, recorder):
    recorder.answer("PUT", "/v1/function/hello", (200, {"name": "hello", "status": "UPDATING"}))
    recorder.answer("GET", "/v1/function/hello", (200, {"name": "hello", "status": "READY"}))

    result = dispatch("update", "function", "--wait", "hello", HELLO, "--image", "python3",
                      "--secret", "s1")

    assert result.stdout == "Updated function: hello\n"
    put = recorder.requests[0]
    assert (put.method, put.path) == ("PUT", "/v1/function/hello")
    assert put.body["secrets"] == ["s1"] and put.body["handler"] == "hello.handle"
    assert "network" not in put.body and "concurrency" not in put.body


@pytest.mark.parametrize("flag", ["--schema-in", "--schema-out"])
@pytest.mark.parametrize("content, says", [
    ("{type: object}", "is not valid JSON"),
    ('["not", "an", "object"]', "must hold a JSON object"),
])
def test_a_bad_schema_file_names_the_flag_and_sends_nothing(dispatch, recorder, tmp_path,
                                                            flag, content, says):
    schema = tmp_path / "schema.json"
    schema.write_text(content)
    result = dispatch("create", "function", "--wait", "hello", HELLO, "--image", "python3",
                      flag, schema, expect=2)
    assert f"Invalid value for '{flag}'" in result.stderr and says in result.stderr
    assert recorder.requests == []


def test_get_runs_last_and_limit_send_a_limit(dispatch, recorder):
    recorder.answer("GET", "/v1/runs", (200, [{"name": "r2"}]))
    dispatch("get", "runs", "hello", "--last")
    dispatch("get", "runs", "--limit", 5)
    assert recorder.requests[0].query == {"functionName": ["hello"], "limit": ["1"]}
    assert recorder.requests[1].query == {"limit": ["5"]}


def test_get_runs_last_takes_no_run_id_nor_limit(dispatch, recorder):
    result = dispatch("get", "run", "hello", "r1", "--last", expect=2)
    assert "leave RUN out" in result.stderr
    result = dispatch("get", "runs", "hello", "--last", "--limit", 2, expect=2)
    assert "one or the other" in result.stderr
    assert recorder.requests == []


# -- against the server -----------------------------------------------------------------


def test_schema_flags_validate_runs(dispatch, own_org):
    dispatch("create", "function", "--wait", "hello", HELLO, "--image", "python3",
             "--schema-in", SCHEMA_IN, "--schema-out", SCHEMA_OUT)

    schema = dispatch.json("get", "function", "hello")["schema"]
    assert schema["in"] == json.loads(SCHEMA_IN.read_text())
    assert run(dispatch, "hello", JON)["output"] == {"myField": "Hello, Jon from Winterfell"}
    refused = run(dispatch, "hello", '{"name": ""}')
    assert refused["error"]["type"] == "InputError"


def test_secret_flag_gives_every_run_the_secret(dispatch, own_org, tmp_path):
    values = tmp_path / "values.json"
    values.write_text('{"password": "OpenSesame"}')
    dispatch("create", "secret", "open-sesame", values)

    dispatch("create", "function", "--wait", "secret", PYTHON / "i_have_a_secret.py",
             "--image", "python3", "--secret", "open-sesame")

    assert dispatch.json("get", "function", "secret")["secrets"] == ["open-sesame"]
    assert run(dispatch, "secret")["output"] == {"message": "The password is OpenSesame"}


def test_exec_secret_flag_adds_a_secret_to_one_run(dispatch, own_org, tmp_path):
    values = tmp_path / "values.json"
    values.write_text('{"password": "JustOnce"}')
    dispatch("create", "secret", "once", values)
    dispatch("create", "function", "--wait", "secret", PYTHON / "i_have_a_secret.py", "--image", "python3")

    assert run(dispatch, "secret")["output"] == {"message": "I know nothing"}
    assert run(dispatch, "secret", "{}", "--secret", "once")["output"] == {
        "message": "The password is JustOnce"}


def test_network_and_concurrency_are_stored(dispatch, own_org):
    dispatch("create", "function", "--wait", "hello", HELLO, "--image", "python3",
             "--network", "--concurrency", 2)

    function = dispatch.json("get", "function", "hello")
    assert (function.get("network"), function.get("concurrency")) == (True, 2)


def test_update_function_replaces_source_and_flags(dispatch, own_org, tmp_path):
    dispatch("create", "function", "--wait", "hello", HELLO, "--image", "python3")
    (tmp_path / "hello.py").write_text(
        "def handle(ctx, payload):\n    return {'myField': 'Bye, ' + payload['name']}\n")

    result = dispatch("update", "function", "--wait", "hello", tmp_path / "hello.py", "--image", "python3",
                      "--schema-in", SCHEMA_IN)

    assert result.stdout == "Updated function: hello\n"
    assert run(dispatch, "hello", JON)["output"] == {"myField": "Bye, Jon"}
    assert run(dispatch, "hello", "{}")["error"]["type"] == "InputError"


def test_get_runs_last_and_limit_show_the_newest_first(dispatch, own_org):
    dispatch("create", "function", "--wait", "hello", HELLO, "--image", "python3")
    for who in ("Arya", "Bran", "Sansa"):
        run(dispatch, "hello", json.dumps({"name": who}))

    newest_two = dispatch.json("get", "runs", "hello", "--limit", 2)
    assert [r["input"]["name"] for r in newest_two] == ["Sansa", "Bran"]
    last = dispatch.json("get", "runs", "hello", "--last")
    assert last["input"] == {"name": "Sansa"}  # one Run, not a list of one
    table = dispatch("get", "runs", "hello", "--last").stdout.splitlines()
    assert len(table) == 3 and table[2].split("|")[0].strip() == last["name"]
    everything = dispatch.json("get", "runs", "hello")
    assert [r["input"]["name"] for r in everything] == ["Sansa", "Bran", "Arya"]


def test_get_runs_last_without_runs_says_so(dispatch, own_org):
    dispatch("create", "function", "--wait", "hello", HELLO, "--image", "python3")
    result = dispatch("get", "runs", "hello", "--last", expect=1)
    assert result.stderr == "Error: function hello has no runs yet\n"
