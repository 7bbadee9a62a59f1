"""``/v1/secret`` of an embedded Dispatch over HTTP: Dispatch's paths and codes, bad
input, organizations kept apart, and nothing stored in clear."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest
import requests

from engine.crypto import KEY_FILE

# What the original Dispatch CLI sends with every request.
CLI_HEADERS = {"Accept": "application/json", "X-Dispatch-Org": "default", "Cookie": "unset"}
PASSWORD = "OpenSesame-7d2a41"  # distinctive, so that a search for it cannot match by chance


@pytest.fixture
def api(server):
    session = requests.Session()
    session.headers.update(CLI_HEADERS)
    session.base = f"{server.url}/v1/secret"
    return session


@pytest.fixture
def name():
    return f"door-{uuid.uuid4().hex[:8]}"


def create(api, name, values=None, **extra):
    body = {"name": name, "secrets": values if values is not None else {"password": PASSWORD},
            "tags": [], **extra}
    return api.post(api.base, json=body)


def test_create_answers_201_with_the_secret(api, name):
    r = create(api, name, reason=None, kind=None)  # read-only fields are ignored
    assert r.status_code == 201, r.text
    secret = r.json()
    assert secret["name"] == name and secret["kind"] == "Secret"
    assert secret["secrets"] == {"password": PASSWORD}
    assert secret["id"] and secret["createdTime"] and secret["organizationId"] == "default"
    assert "encrypted" not in secret
    assert r.headers["Cache-Control"] == "no-store"


def test_creating_twice_is_a_409_in_dispatchs_words(api, name):
    assert create(api, name).status_code == 201
    r = create(api, name, {"other": "value"})
    assert r.status_code == 409
    assert r.json() == {"code": 409, "message": f"Secret {name} already exists"}


def test_list_and_create_answer_with_and_without_the_trailing_slash(api, name):
    r = api.post(api.base + "/", json={"name": name, "secrets": {"k": "v"}})
    assert r.status_code == 201, r.text
    for path in (api.base, api.base + "/"):
        r = api.get(path)
        assert r.status_code == 200, r.text  # no redirect: the original CLI would not follow
        assert {"name": name, "secrets": {"k": "v"}}.items() <= next(
            s for s in r.json() if s["name"] == name).items()


def test_get_one_secret(api, name):
    create(api, name)
    r = api.get(f"{api.base}/{name}")
    assert r.status_code == 200
    assert r.json()["secrets"] == {"password": PASSWORD}
    r = api.get(f"{api.base}/no-such-secret")
    assert r.status_code == 404
    assert r.json() == {"code": 404, "message": "Secret no-such-secret not found"}


def test_put_answers_201_and_replaces_the_values(api, name):
    create(api, name)
    r = api.put(f"{api.base}/{name}", json={"name": name, "secrets": {"password": "new"}})
    assert r.status_code == 201, r.text
    assert r.json()["secrets"] == {"password": "new"}
    assert api.get(f"{api.base}/{name}").json()["secrets"] == {"password": "new"}
    assert api.put(f"{api.base}/no-such-secret", json={"secrets": {}}).status_code == 404


def test_delete_answers_204_with_no_body(api, name):
    create(api, name)
    r = api.delete(f"{api.base}/{name}")
    assert r.status_code == 204
    assert r.content == b""
    assert api.get(f"{api.base}/{name}").status_code == 404
    assert api.delete(f"{api.base}/{name}").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"name": "bad name", "secrets": {}}, "name"),
    ({"secrets": {}}, "name"),
    ({"name": "ok", "secrets": {"pin": 31337}}, "secrets.pin"),
    ({"name": "ok", "secrets": ["31337"]}, "secrets"),
    ({"name": "ok", "secrets": "31337"}, "secrets"),
    ({"name": "ok", "tags": "31337"}, "tags"),
])
def test_bad_input_is_a_400_naming_the_field_and_not_the_value(api, body, field):
    r = api.post(api.base, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(field)
    assert "31337" not in r.text
    assert "ok" not in {s["name"] for s in api.get(api.base).json()}


def test_a_put_naming_another_secret_is_a_400(api, name):
    create(api, name)
    r = api.put(f"{api.base}/{name}", json={"name": "other", "secrets": {}})
    assert r.status_code == 400 and "does not match" in r.json()["message"]


def test_another_organization_cannot_see_or_touch_the_secret(api, name):
    create(api, name)
    other = {"X-Dispatch-Org": f"other-{uuid.uuid4().hex[:6]}"}
    assert api.get(api.base, headers=other).json() == []
    assert api.get(f"{api.base}/{name}", headers=other).status_code == 404
    assert api.put(f"{api.base}/{name}", json={"secrets": {}}, headers=other).status_code == 404
    assert api.delete(f"{api.base}/{name}", headers=other).status_code == 404
    # the same name is free in the other organization, and stays apart
    assert create(api, name, {"password": "theirs"}).status_code == 409
    r = api.post(api.base, json={"name": name, "secrets": {"password": "theirs"}}, headers=other)
    assert r.status_code == 201
    assert api.get(f"{api.base}/{name}").json()["secrets"] == {"password": PASSWORD}


def test_nothing_is_stored_in_clear_and_the_key_file_is_private(server, api, name):
    create(api, name)
    home = Path(server.settings.home)
    stored = b"".join(p.read_bytes() for p in home.glob("dispatch.db*"))
    assert name.encode() in stored  # the search does see what is stored in clear
    assert PASSWORD.encode() not in stored
    assert stat.S_IMODE(os.stat(home / KEY_FILE).st_mode) == 0o600


def test_the_secret_store_is_in_the_openapi_document(server):
    paths = requests.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/v1/secret/"])
    assert {"get", "put", "delete"} <= set(paths["/v1/secret/{secret_name}"])
