"""``dispatch create|get|update|delete base-image|image``, ``create seed-images`` and
images in seed files: what goes on the wire (against a recording server) and what
happens (against a real embedded Dispatch with the local builder)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.cli.test_cli_e2e import eventually

HELLO = "def handle(ctx, payload):\n    return {'hello': payload.get('name')}\n"
IDNA = "import idna\n\ndef handle(ctx, payload):\n    return {'ascii': idna.encode(payload['host']).decode()}\n"


def names(dispatch, kind: str) -> list[str]:
    return sorted(entity["name"] for entity in dispatch.json("get", kind))


# -- on the wire --------------------------------------------------------------------------

READY_IMAGE = {"kind": "Image", "name": "py", "status": "READY", "baseImageName": "py-base"}


@pytest.mark.parametrize("content, packages", [
    ("curl 7.88.1-10\n# a comment\n\njq\n",
     [{"name": "curl", "version": "7.88.1-10"}, {"name": "jq", "version": None}]),
    ('[{"name": "curl", "version": "7.88.1-10"}, "jq"]',
     [{"name": "curl", "version": "7.88.1-10"}, {"name": "jq", "version": None}]),
])
def test_create_image_sends_the_manifest_and_the_system_packages(dispatch, recorder, tmp_path,
                                                                 content, packages):
    (tmp_path / "requirements.txt").write_text("six==1.17.0\n")
    (tmp_path / "packages").write_text(content)
    recorder.answer("POST", "/v1/image", (201, {**READY_IMAGE, "status": "INITIALIZED"}))
    recorder.answer("GET", "/v1/image/py", (200, READY_IMAGE))

    result = dispatch("create", "image", "--wait", "py", "py-base", "--runtime-deps",
                      tmp_path / "requirements.txt", "--system-deps", tmp_path / "packages")

    assert result.stdout == "Created image: py\n"
    sent = recorder.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v1/image")
    assert sent.body == {"name": "py", "baseImageName": "py-base",
                         "runtimeDependencies": {"manifest": "six==1.17.0\n"},
                         "systemDependencies": {"packages": packages}, "tags": []}


def test_create_base_image_sends_dispatchs_fields(dispatch, recorder):
    recorder.answer("POST", "/v1/baseimage", (201, {"kind": "BaseImage", "name": "b",
                                                    "status": "INITIALIZED"}))
    recorder.answer("GET", "/v1/baseimage/b", (200, {"kind": "BaseImage", "name": "b",
                                                     "status": "READY"}))
    dispatch("create", "base-image", "--wait", "b", "localhost/python3-base", "--language", "python3")
    assert recorder.requests[0].body == {"name": "b", "dockerUrl": "localhost/python3-base",
                                         "language": "python3", "tags": []}


def test_seed_images_follow_the_servers_builder_and_can_be_written_to_a_file(
        dispatch, recorder, tmp_path):
    recorder.answer("GET", "/v1/version", (200, {"version": "0.2.0", "builder": "docker",
                                                 "registry": "10.0.0.1:5000"}))
    out = tmp_path / "images.yaml"

    dispatch("create", "seed-images", "-O", out, "--base-url", "nodejs=registry/node:20")

    documents = list(yaml.safe_load_all(out.read_text()))
    assert documents == [
        {"kind": "BaseImage", "name": "python3-base",
         "dockerUrl": "10.0.0.1:5000/dispatch/python3-base:latest", "language": "python3"},
        {"kind": "BaseImage", "name": "nodejs-base", "dockerUrl": "registry/node:20",
         "language": "nodejs"},
        {"kind": "Image", "name": "python3", "baseImageName": "python3-base"},
        {"kind": "Image", "name": "nodejs", "baseImageName": "nodejs-base"},
    ]


def test_a_bad_system_deps_file_is_refused_before_any_request(dispatch, recorder, tmp_path):
    (tmp_path / "packages").write_text("curl 7.88 extra\n")
    result = dispatch("create", "image", "--wait", "py", "base", "--system-deps", tmp_path / "packages",
                      expect=2)
    assert "line 1: expected 'name [version]'" in result.stderr
    assert recorder.requests == []


# -- against a real server ----------------------------------------------------------------

def test_base_image_then_image_then_a_function_that_imports_its_dependency(
        dispatch, own_org, tmp_path):
    result = dispatch("create", "base-image", "--wait", "py-base", "python3", "--language", "python3")
    assert result.stdout == "Created base image: py-base\n"
    (tmp_path / "requirements.txt").write_text("idna\n")
    result = dispatch("create", "image", "--wait", "py-idna", "py-base",
                      "--runtime-deps", tmp_path / "requirements.txt")
    assert result.stdout == "Created image: py-idna\n"

    table = dispatch("get", "images").stdout
    assert "py-idna" in table and "py-base" in table and "READY" in table
    assert [b["status"] for b in dispatch.json("get", "base-images")] == ["READY"]
    assert dispatch.json("get", "image", "py-idna")["runtimeDependencies"] == {
        "manifest": "idna\n"}

    (tmp_path / "fn.py").write_text(IDNA)
    dispatch("create", "function", "--wait", "punycode", tmp_path / "fn.py", "--image", "py-idna")
    run = json.loads(dispatch("exec", "punycode", "--input", '{"host": "bücher.example"}',
                              "--wait").stdout)
    assert run["status"] == "READY", run
    assert run["output"] == {"ascii": "xn--bcher-kva.example"}

    result = dispatch("delete", "image", "py-idna", expect=1)
    assert "image py-idna is used by functions punycode" in result.stderr
    dispatch("delete", "function", "punycode")
    assert dispatch("delete", "image", "py-idna").stdout == "Deleted image: py-idna\n"
    assert eventually(lambda: names(dispatch, "images") == [])
    dispatch("delete", "base-image", "py-base")
    assert eventually(lambda: names(dispatch, "base-images") == [])


def test_an_image_that_fails_to_build_says_why(dispatch, own_org, tmp_path):
    dispatch("create", "base-image", "--wait", "py-base", "python3", "--language", "python3")
    (tmp_path / "requirements.txt").write_text("no-such-package-dispatch-cli==1.0\n")
    result = dispatch("create", "image", "--wait", "broken", "py-base",
                      "--runtime-deps", tmp_path / "requirements.txt", expect=1)
    assert "Error: image broken failed:" in result.stderr
    assert "No matching distribution found for no-such-package-dispatch-cli==1.0" in result.stderr

    result = dispatch("create", "image", "--wait", "x", "no-base", expect=1)
    assert result.stderr.strip() == "Error: Error fetching base image no-base"


def test_seed_images_make_python3_and_nodejs_and_functions_run_on_them(
        dispatch, own_org, tmp_path):
    result = dispatch("create", "seed-images", "--wait")
    assert result.stdout.splitlines() == [
        "Created BaseImage: python3-base", "Created BaseImage: nodejs-base",
        "Created Image: python3", "Created Image: nodejs"]
    images = {i["name"]: i for i in dispatch.json("get", "images")}
    assert {n: i["status"] for n, i in images.items()} == {"nodejs": "READY", "python3": "READY"}

    again = dispatch("create", "seed-images", "--wait")  # what exists is kept
    assert "BaseImage python3-base exists already: kept as it is" in again.stderr

    (tmp_path / "hello.py").write_text(HELLO)
    dispatch("create", "function", "--wait", "hello", tmp_path / "hello.py", "--image", "python3")
    function = dispatch.json("get", "function", "hello")
    assert function["status"] == "READY"
    run = json.loads(dispatch("exec", "hello", "--input", '{"name": "seed"}', "--wait").stdout)
    assert run["output"] == {"hello": "seed"}


def test_images_in_a_seed_file_are_created_before_the_functions_on_them(
        dispatch, own_org, tmp_path):
    (tmp_path / "deps").mkdir()
    (tmp_path / "deps" / "requirements.txt").write_text("six\n")
    (tmp_path / "fn.py").write_text("import six\n\ndef handle(ctx, payload):\n"
                                    "    return {'six': six.__version__}\n")
    documents = [
        {"kind": "Function", "name": "sixer", "image": "py-six", "handler": "fn.handle",
         "sourcePath": "fn.py"},
        {"kind": "Image", "name": "py-six", "baseImageName": "py-base",
         "runtimeDependencies": {"manifest": "@deps/requirements.txt"}},
        {"kind": "BaseImage", "name": "py-base", "dockerUrl": "python3", "language": "python3"},
    ]
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump_all(documents, sort_keys=False))

    result = dispatch("create", "--wait", "-f", seed)
    assert result.stdout.splitlines() == [
        "Created BaseImage: py-base", "Created Image: py-six", "Created Function: sixer"]
    assert dispatch.json("get", "image", "py-six")["runtimeDependencies"] == {"manifest": "six\n"}
    run = json.loads(dispatch("exec", "sixer", "--wait").stdout)
    assert run["status"] == "READY" and run["output"]["six"]

    result = dispatch("delete", "-f", seed)
    assert result.stdout.splitlines() == [
        "Deleted Function: sixer", "Deleted Image: py-six", "Deleted BaseImage: py-base"]
    assert eventually(lambda: names(dispatch, "base-images") == [], 60)
