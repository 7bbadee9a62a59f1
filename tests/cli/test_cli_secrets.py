"""``dispatch create|get|delete secret`` against a real embedded Dispatch, plus what they
put on the wire. The table shows values only with ``--all``; ``get -o json|yaml`` shows
them, as Dispatch's CLI did (its e2e reads ``.secrets.password``)."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

PASSWORD = "OpenSesame-91be07"  # distinctive, so that a search for it cannot match by chance


@pytest.fixture
def values_file(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"username": "admin", "password": PASSWORD}))
    return path


def unique(prefix: str = "door") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_secret(dispatch, values_file) -> str:
    name = unique()
    dispatch("create", "secret", name, values_file)
    return name


def test_create_secret_from_a_json_file(dispatch, at_server, values_file):
    name = unique()
    result = dispatch("create", "secret", name, values_file)
    assert result.stdout == f"Created secret: {name}\n"
    shown = dispatch.json("get", "secret", name, "--all")
    assert shown["secrets"] == {"username": "admin", "password": PASSWORD}


def test_create_secret_as_json_hides_the_values(dispatch, at_server, values_file):
    name = unique()
    result = dispatch("create", "secret", name, values_file, "-o", "json")
    created = json.loads(result.stdout)
    assert created["name"] == name and created["kind"] == "Secret"
    assert "secrets" not in created and PASSWORD not in result.stdout


def test_get_secret_as_a_table_hides_values_unless_all(dispatch, at_server, values_file):
    name = create_secret(dispatch, values_file)
    plain = dispatch("get", "secret", name).stdout
    assert PASSWORD not in plain
    lines = plain.splitlines()
    assert [h.strip() for h in lines[0].split("|")] == ["NAME", "ID", "CREATED DATE"]
    cells = [c.strip() for c in lines[2].split("|")]
    assert cells[0] == name and cells[1] and cells[2]

    revealed = dispatch("get", "secret", name, "--all").stdout
    assert [h.strip() for h in revealed.splitlines()[0].split("|")] == [
        "NAME", "ID", "CREATED DATE", "SECRETS"]
    assert f"password={PASSWORD}" in revealed and "username=admin" in revealed


def test_get_secrets_as_a_table_lists_them_without_values(dispatch, at_server, values_file):
    first, second = create_secret(dispatch, values_file), create_secret(dispatch, values_file)
    table = dispatch("get", "secrets").stdout
    names = {line.split("|")[0].strip() for line in table.splitlines()[2:]}
    assert {first, second} <= names
    assert PASSWORD not in table

    revealed = dispatch("get", "secrets", "--all").stdout
    assert f"password={PASSWORD}" in revealed


def test_get_secret_as_json_or_yaml_shows_the_values_as_dispatch_did(
        dispatch, at_server, values_file):
    name = create_secret(dispatch, values_file)
    # Dispatch's e2e: dispatch get secret NAME --json | jq -r .secrets.password
    assert dispatch.json("get", "secret", name)["secrets"]["password"] == PASSWORD
    assert dispatch.json("get", "secret", name, "--all")["secrets"]["password"] == PASSWORD
    legacy = json.loads(dispatch("get", "secret", name, "--json").stdout)
    assert legacy["secrets"] == {"username": "admin", "password": PASSWORD}
    shown = yaml.safe_load(dispatch("get", "secret", name, "-o", "yaml").stdout)
    assert shown["secrets"]["password"] == PASSWORD

    listed = dispatch.json("get", "secrets")
    assert next(s for s in listed if s["name"] == name)["secrets"]["password"] == PASSWORD


def test_delete_secret(dispatch, at_server, values_file):
    name = create_secret(dispatch, values_file)
    assert dispatch("delete", "secret", name).stdout == f"Deleted secret: {name}\n"
    result = dispatch("get", "secret", name, expect=1)
    assert result.stderr == f"Error: Secret {name} not found\n"
    assert name not in {s["name"] for s in dispatch.json("get", "secrets")}
    assert "not found" in dispatch("delete", "secret", name, expect=1).stderr


def test_creating_a_secret_twice_is_an_error(dispatch, at_server, values_file):
    name = create_secret(dispatch, values_file)
    result = dispatch("create", "secret", name, values_file, expect=1)
    assert result.stderr == f"Error: Secret {name} already exists\n"


def test_another_organization_does_not_see_the_secret(dispatch, at_server, values_file):
    name = create_secret(dispatch, values_file)
    assert dispatch.json("get", "secrets", "--organization", "elsewhere") == []
    dispatch("get", "secret", name, "--organization", "elsewhere", expect=1)


@pytest.mark.parametrize("content, says", [
    ('{"password": 31337}', "value of 'password' must be a string"),
    ('["31337"]', "must hold a JSON object"),
    ("{'password': '31337'}", "is not valid JSON"),
])
def test_a_bad_file_is_refused_before_any_request(dispatch, recorder, tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = dispatch("create", "secret", "door", path, expect=2)
    assert says in result.stderr
    assert "31337" not in result.stderr
    assert recorder.requests == []


def test_a_file_that_is_not_text_is_refused_without_quoting_it(dispatch, recorder, tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"password": "\xff\xfe"}')
    result = dispatch("create", "secret", "door", path, expect=2)
    assert "is not UTF-8 text" in result.stderr and "xff" not in result.stderr
    assert recorder.requests == []


def test_the_wire_paths_and_bodies(dispatch, recorder, values_file):
    secret = {"name": "door", "kind": "Secret", "id": "i-1", "createdTime": 1700000000,
              "secrets": {"password": PASSWORD}}
    recorder.answer("POST", "/v1/secret", (201, secret))
    recorder.answer("GET", "/v1/secret", (200, [secret]))
    recorder.answer("GET", "/v1/secret/door", (200, secret))
    recorder.answer("DELETE", "/v1/secret/door", (204, None))

    dispatch("create", "secret", "door", values_file)
    dispatch("get", "secrets")
    dispatch("get", "secret", "door")
    assert json.loads(dispatch("delete", "secret", "door", "-o", "json").stdout) == {"name": "door"}

    assert [(r.method, r.path) for r in recorder.requests] == [
        ("POST", "/v1/secret"), ("GET", "/v1/secret"), ("GET", "/v1/secret/door"),
        ("DELETE", "/v1/secret/door")]
    assert recorder.requests[0].body == {
        "name": "door", "secrets": {"username": "admin", "password": PASSWORD}, "tags": []}
    assert recorder.requests[0].headers["Content-Type"] == "application/json"
