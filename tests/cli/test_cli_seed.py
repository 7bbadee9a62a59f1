"""``dispatch create|update|delete -f SEED.yaml [-w WORKDIR]`` against a real embedded
Dispatch, with examples/seed.yaml and files derived from it.

Each test works in an organization of its own (``own_org``), so every test can use the
examples' fixed names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.test_cli_e2e import eventually

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SEED = EXAMPLES / "seed.yaml"

JON = '{"name": "Jon", "place": "Winterfell"}'
JON_SAYS = {"myField": "Hello, Jon from Winterfell"}


def example_documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(SEED.read_text()) if doc]


def python_documents() -> list[dict]:
    """examples/seed.yaml without its Node.js functions."""
    return [d for d in example_documents() if d["kind"] != "Function" or d["image"] == "python3"]


def write_seed(path: Path, documents: list[dict]) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def names(dispatch, kind: str) -> list[str]:
    return sorted(entity["name"] for entity in dispatch.json("get", kind))


def run(dispatch, name: str, payload: str = "{}") -> dict:
    return json.loads(dispatch("exec", name, "--input", payload, "--wait").stdout)


def assert_nothing_created(dispatch) -> None:
    assert names(dispatch, "functions") == [] and names(dispatch, "secrets") == []


@pytest.fixture
def python_seed(tmp_path) -> Path:
    return write_seed(tmp_path / "seed.yaml", python_documents())


def test_create_from_the_examples_seed_creates_everything_ready(dispatch, own_org):
    # needs the built-in nodejs image as well as python3
    result = dispatch("create", "--wait", "-f", SEED, "-w", EXAMPLES)

    functions = [d["name"] for d in example_documents() if d["kind"] == "Function"]
    assert result.stdout.splitlines() == (
        ["Created Secret: open-sesame"] + [f"Created Function: {n}" for n in functions])
    statuses = {f["name"]: f["status"] for f in dispatch.json("get", "functions")}
    assert statuses == {name: "READY" for name in functions}
    assert run(dispatch, "hello-js", JON)["output"] == JON_SAYS
    assert run(dispatch, "secret-js")["output"] == {"message": "The password is OpenSesame"}


def test_seeded_python_functions_answer_as_the_examples_say(dispatch, own_org, python_seed):
    dispatch("create", "--wait", "-f", python_seed, "-w", EXAMPLES)

    assert run(dispatch, "hello-py", JON)["output"] == JON_SAYS
    assert run(dispatch, "secret-py")["output"] == {"message": "The password is OpenSesame"}
    logged = run(dispatch, "logger-py")
    assert logged["output"] == {"logged": True}
    assert logged["logs"]["stderr"] == ["and this to its stderr log"]


def test_seeded_schema_refuses_bad_input_with_an_input_error(dispatch, own_org, python_seed):
    dispatch("create", "--wait", "-f", python_seed, "-w", EXAMPLES)

    refused = run(dispatch, "hello-py", '{"place": "Winterfell"}')
    assert refused["status"] == "ERROR"
    assert refused["error"]["type"] == "InputError"
    assert "name" in refused["error"]["message"]


def test_secrets_are_created_before_the_functions_that_name_them(dispatch, own_org, tmp_path):
    secret, *functions = python_documents()
    seed = write_seed(tmp_path / "seed.yaml", functions + [secret])

    lines = dispatch("create", "--wait", "-f", seed, "-w", EXAMPLES).stdout.splitlines()

    assert lines[0] == "Created Secret: open-sesame"
    assert lines[1:] == [f"Created Function: {d['name']}" for d in functions]


def test_workdir_defaults_to_the_seed_files_directory(dispatch, own_org, tmp_path):
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "echo.py").write_text("def handle(ctx, payload):\n    return payload\n")
    seed = write_seed(tmp_path / "seed.yaml", [
        {"kind": "Function", "name": "echo", "sourcePath": "fn/echo.py", "image": "python3",
         "handler": "echo.handle"}])

    assert dispatch("create", "--wait", "-f", seed).stdout == "Created Function: echo\n"
    assert run(dispatch, "echo", '{"a": 1}')["output"] == {"a": 1}


def test_a_seeded_function_may_declare_a_retry_policy_and_retention(dispatch, own_org,
                                                                     tmp_path):
    (tmp_path / "echo.py").write_text("def handle(ctx, payload):\n    return payload\n")
    retry = {"attempts": 4, "backoff": "constant", "delayMs": 500, "maxDelayMs": 500,
             "jitter": 0.0, "on": ["SystemError", "FunctionError"]}
    seed = write_seed(tmp_path / "seed.yaml", [
        {"kind": "Function", "name": "echo", "sourcePath": "echo.py", "image": "python3",
         "handler": "echo.handle", "retry": retry, "retention": {"count": 20}}])

    dispatch("create", "-f", seed)
    fn = dispatch.json("get", "function", "echo")
    assert fn["retry"] == retry and fn["retention"] == {"count": 20, "ageSeconds": None}


def test_schemas_may_be_files_named_with_an_at_sign(dispatch, own_org, tmp_path):
    hello = next(d for d in python_documents() if d["name"] == "hello-py")
    hello["schema"] = {"in": "@python3/hello.schema.in.json",
                       "out": "@python3/hello.schema.out.json"}
    seed = write_seed(tmp_path / "seed.yaml", [hello])

    dispatch("create", "--wait", "-f", seed, "-w", EXAMPLES)

    schema = dispatch.json("get", "function", "hello-py")["schema"]
    assert schema["in"] == json.loads((EXAMPLES / "python3/hello.schema.in.json").read_text())
    assert schema["out"] == json.loads((EXAMPLES / "python3/hello.schema.out.json").read_text())


def test_update_applies_the_changed_documents(dispatch, own_org, python_seed, tmp_path):
    dispatch("create", "--wait", "-f", python_seed, "-w", EXAMPLES)
    (tmp_path / "loud.py").write_text(
        "def handle(ctx, payload):\n    return {'myField': 'HELLO, ' + payload['name']}\n")
    documents = python_documents()
    secret = documents[0]
    hello = next(d for d in documents if d["name"] == "hello-py")
    secret["secrets"] = {"password": "Changed"}
    hello.update(sourcePath=str(tmp_path / "loud.py"), handler="loud.handle")
    seed = write_seed(tmp_path / "changed.yaml", [secret, hello])

    result = dispatch("update", "--wait", "-f", seed, "-w", EXAMPLES)

    assert result.stdout == "Updated Secret: open-sesame\nUpdated Function: hello-py\n"
    function = dispatch.json("get", "function", "hello-py")
    assert (function["status"], function["handler"]) == ("READY", "loud.handle")
    assert run(dispatch, "hello-py", JON)["output"] == {"myField": "HELLO, Jon"}
    assert run(dispatch, "secret-py")["output"] == {"message": "The password is Changed"}


def test_delete_removes_every_entity_of_the_file(dispatch, own_org, python_seed):
    dispatch("create", "--wait", "-f", python_seed, "-w", EXAMPLES)

    result = dispatch("delete", "-f", python_seed)

    functions = [d["name"] for d in python_documents() if d["kind"] == "Function"]
    assert result.stdout.splitlines() == (
        [f"Deleted Function: {n}" for n in functions] + ["Deleted Secret: open-sesame"])
    assert names(dispatch, "secrets") == []
    assert eventually(lambda: names(dispatch, "functions") == []), names(dispatch, "functions")


def test_json_output_is_the_list_of_entities_without_secret_values(dispatch, own_org,
                                                                    python_seed):
    result = dispatch("create", "--wait", "-f", python_seed, "-w", EXAMPLES, "-o", "json")

    entities = json.loads(result.stdout)
    assert [(e["kind"], e["name"]) for e in entities] == [
        (d["kind"], d["name"]) for d in python_documents()]
    assert all(e["status"] == "READY" for e in entities)
    assert "secrets" not in entities[0] and "OpenSesame" not in result.stdout


BAD_DOCUMENTS = {
    "unknown kind": ({"kind": "Lambda", "name": "x"}, "unknown kind 'Lambda'"),
    "unsupported kind": ({"kind": "Application", "name": "p"},
                         "kind Application is not supported by this server yet"),
    "missing manifest file": ({"kind": "Image", "name": "py", "baseImageName": "python3-base",
                               "runtimeDependencies": {"manifest": "@python3/nope.txt"}},
                              "(Image py): runtimeDependencies.manifest @python3/nope.txt: "
                              "cannot read"),
    "unknown field": ({"kind": "Function", "name": "x", "image": "python3", "handler": "h.h",
                       "sourcePath": "python3/hello.py", "memory": 128},
                      "(Function x): unknown field 'memory'"),
    "unknown schema field": ({"kind": "Function", "name": "x", "image": "python3",
                              "handler": "h.h", "sourcePath": "python3/hello.py",
                              "schema": {"input": {}}},
                             "(Function x): unknown field 'schema.input'"),
    "missing handler": ({"kind": "Function", "name": "x", "image": "python3",
                         "sourcePath": "python3/hello.py"},
                        "(Function x): missing required field 'handler'"),
    "missing source": ({"kind": "Function", "name": "x", "image": "python3", "handler": "h.h"},
                       "(Function x): missing required field 'sourcePath' or 'source'"),
    "missing name": ({"kind": "Secret", "secrets": {"a": "b"}},
                     "(Secret): missing required field 'name'"),
    "missing sourcePath file": ({"kind": "Function", "name": "x", "image": "python3",
                                 "handler": "nope.handle", "sourcePath": "python3/nope.py"},
                                "(Function x): sourcePath python3/nope.py:"),
    "missing schema file": ({"kind": "Function", "name": "x", "image": "python3",
                             "handler": "hello.handle", "sourcePath": "python3/hello.py",
                             "schema": {"in": "@python3/nope.json"}},
                            "(Function x): schema.in: cannot read"),
    "duplicate": ({"kind": "Secret", "name": "open-sesame"},
                  "(Secret open-sesame): document 1 already describes it"),
}


@pytest.mark.parametrize("bad", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_a_bad_document_refuses_the_whole_file(dispatch, own_org, tmp_path, bad):
    document, says = bad
    documents = python_documents() + [document]  # the good ones come first
    seed = write_seed(tmp_path / "seed.yaml", documents)

    result = dispatch("create", "--wait", "-f", seed, "-w", EXAMPLES, expect=1)

    assert f"Error: document {len(documents)}" in result.stderr
    assert says in result.stderr
    assert result.stdout == ""
    assert_nothing_created(dispatch)


def test_update_and_delete_refuse_a_bad_file_too(dispatch, own_org, tmp_path):
    seed = write_seed(tmp_path / "seed.yaml",
                      python_documents() + [{"kind": "Application", "name": "post-hello"}])
    for verb in ("update", "delete"):
        result = dispatch(verb, "-f", seed, "-w", EXAMPLES, expect=1)
        assert "document 5: kind Application is not supported by this server yet" in result.stderr


def test_a_file_that_is_not_yaml_is_refused(dispatch, own_org, tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text("kind: Secret\nname: [unclosed\n")
    result = dispatch("create", "--wait", "-f", seed, expect=1)
    assert "is not valid YAML" in result.stderr
    assert_nothing_created(dispatch)


def test_a_conflict_stops_and_names_the_document(dispatch, own_org, python_seed, tmp_path):
    values = tmp_path / "values.json"
    values.write_text('{"password": "taken"}')
    dispatch("create", "secret", "open-sesame", values)

    result = dispatch("create", "--wait", "-f", python_seed, "-w", EXAMPLES, expect=1)

    assert result.stderr.startswith("Error: document 1 (Secret open-sesame): ")
    assert "already exists" in result.stderr
    assert names(dispatch, "functions") == []  # stopped before the functions


def test_a_function_that_fails_to_build_is_reported_after_the_rest(dispatch, own_org, tmp_path):
    (tmp_path / "broken.py").write_text("def handle(ctx, payload):\n    return 1\n")
    documents = [
        {"kind": "Function", "name": "broken", "sourcePath": "broken.py", "image": "python3",
         "handler": "broken.no_such_function"},
        *python_documents(),
    ]
    seed = write_seed(tmp_path / "seed.yaml", documents)
    (tmp_path / "python3").symlink_to(EXAMPLES / "python3")

    result = dispatch("create", "--wait", "-f", seed, expect=1)

    assert "Created Function: hello-py" in result.stdout
    assert "broken" not in result.stdout
    assert "document 1 (Function broken): function broken failed: " in result.stderr
    assert "no_such_function" in result.stderr
    assert dispatch.json("get", "function", "broken")["status"] == "ERROR"
    assert dispatch.json("get", "function", "logger-py")["status"] == "READY"


def test_update_sends_puts_by_name_without_source_path(dispatch, recorder, python_seed):
    for doc in python_documents():
        path = f"/v1/{doc['kind'].lower()}/{doc['name']}"
        recorder.answer("PUT", path, (200, {**doc, "status": "UPDATING"}))
        recorder.answer("GET", path, (200, {**doc, "status": "READY"}))

    dispatch("update", "-f", python_seed, "-w", EXAMPLES)

    puts = [r for r in recorder.requests if r.method == "PUT"]
    assert [r.path for r in puts] == [
        f"/v1/{d['kind'].lower()}/{d['name']}" for d in python_documents()]
    function = puts[1].body
    assert "sourcePath" not in function and "kind" not in function
    assert function["source"] and function["handler"] == "hello.handle"


def test_a_file_is_applied_without_waiting_unless_wait(dispatch, recorder, python_seed):
    # as Dispatch's `create -f`: every document sent, no polling; --wait polls each build
    for doc in python_documents():
        plural = "/v1/function" if doc["kind"] == "Function" else "/v1/secret"
        recorder.answer("POST", plural, (201, {**doc, "status": "INITIALIZED"}))
        recorder.answer("GET", f"{plural}/{doc['name']}",
                        (200, {**doc, "status": "ERROR", "reason": ["broke"]}))

    created = dispatch("create", "-f", python_seed, "-w", EXAMPLES)
    assert {r.method for r in recorder.requests} == {"POST"}
    assert created.stdout.splitlines()[0] == "Created Secret: open-sesame"

    del recorder.requests[:]
    result = dispatch("create", "-f", python_seed, "-w", EXAMPLES, "--wait", expect=1)
    functions = [d["name"] for d in python_documents() if d["kind"] == "Function"]
    assert [r.path for r in recorder.requests if r.method == "GET"] == [
        f"/v1/function/{name}" for name in functions]
    assert f"function {functions[0]} failed: broke" in result.stderr


def test_a_refused_file_sends_nothing(dispatch, recorder, tmp_path):
    seed = write_seed(tmp_path / "seed.yaml",
                      python_documents() + [{"kind": "Subscription", "name": "s"}])
    for verb in ("create", "update", "delete"):
        dispatch(verb, "-f", seed, "-w", EXAMPLES, expect=1)
    assert recorder.requests == []


def test_file_and_subcommand_do_not_mix(dispatch, recorder, python_seed, tmp_path):
    result = dispatch("create", "-f", python_seed, "secret", "x", python_seed, expect=2)
    assert "without `secret`" in result.stderr
    result = dispatch("delete", "-w", tmp_path, expect=2)
    assert "-w/--work-dir needs -f/--file" in result.stderr
    assert recorder.requests == []
