"""Dispatch's organizations scenario (its e2e ``organizations.bats``) with this CLI, against
a real embedded Dispatch with authentication on.

The admin `dispatch up` left in the CLI's context creates two organizations, then in each
a service account and a policy with ``--organization``; each account logs in under its
organization, sees only what is its own, and creates the same names without clashing.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import requests

from tests.unit.identity_keys import private_pem, public_pem, rsa_key

HELLO = '''\
def handle(ctx, payload):
    return {"myField": "Hello, %s from %s" % (payload.get("name"), payload.get("place"))}
'''


@pytest.fixture
def as_up_admin(secure, dispatch, monkeypatch):
    """The CLI's context exactly as `dispatch up` writes it for this server."""
    monkeypatch.setattr("api.embedded.serve_embedded", lambda **kw: None)
    dispatch("up", "--port", secure.port, "--home", os.path.dirname(secure.admin_key_path))
    return secure


def setup_test_org(dispatch, org: str, keydir) -> None:
    """e2e/tests/helpers.bash ``setup_test_org``, as the admin."""
    key = rsa_key()
    (keydir / "private.key").write_bytes(private_pem(key))
    (keydir / "public.key").write_bytes(public_pem(key))
    dispatch("iam", "create", "organization", org)
    dispatch("iam", "create", "serviceaccount", f"{org}-user",
             "--public-key", keydir / "public.key", "--organization", org)
    dispatch("iam", "create", "policy", f"{org}-policy", "--subject", f"{org}-user",
             "--action", "*", "--resource", "*", "--organization", org)


def delete_test_org(dispatch, org: str) -> None:
    dispatch("iam", "delete", "serviceaccount", f"{org}-user", "--organization", org)
    dispatch("iam", "delete", "policy", f"{org}-policy", "--organization", org)
    dispatch("iam", "delete", "organization", org)


def test_the_admin_sets_up_organizations_whose_accounts_stay_apart(
        dispatch, as_up_admin, monkeypatch, tmp_path):
    admin_config = os.environ["DISPATCH_CONFIG"]
    hello = tmp_path / "hello.py"
    hello.write_text(HELLO)
    for org in ("test-org-a", "test-org-b"):
        (tmp_path / org).mkdir()
        setup_test_org(dispatch, org, tmp_path / org)

    for org, other in (("test-org-a", "test-org-b"), ("test-org-b", "test-org-a")):
        # a config of its own, copied from the admin's, then a login under the org
        own_config = tmp_path / org / "config.json"
        shutil.copy(admin_config, own_config)
        monkeypatch.setenv("DISPATCH_CONFIG", str(own_config))
        dispatch("login", "--service-account", f"{org}-user", "--jwt-private-key",
                 tmp_path / org / "private.key", "--organization", org)

        assert dispatch.json("get", "base-images") == []
        assert dispatch.json("get", "functions") == []
        dispatch("create", "function", "--image=python3", "node-hello-no-schema", hello,
                 "--wait")
        assert dispatch.json("get", "function", "node-hello-no-schema")["status"] == "READY"

        # the other organization's resources are not this account's to see
        refused = dispatch("get", "functions", "--organization", other, expect=1)
        assert "Error:" in refused.stderr

        dispatch("create", "api", "api-test", "node-hello-no-schema", "-m", "POST",
                 "-p", "/hello", "--wait")
        answer = requests.post(f"{as_up_admin.url}/{org}/hello", timeout=30,
                               json={"name": "VMware", "place": org})
        assert answer.json() == {"myField": f"Hello, VMware from {org}"}

        dispatch("logout")
        monkeypatch.setenv("DISPATCH_CONFIG", admin_config)

    # the admin sees into both (its global policy), still signing as default/admin
    for org in ("test-org-a", "test-org-b"):
        names = [f["name"] for f in dispatch.json("get", "functions", "--organization", org)]
        assert names == ["node-hello-no-schema"]
        dispatch("delete", "api", "api-test", "--organization", org)
        dispatch("delete", "function", "node-hello-no-schema", "--organization", org)
    stored = json.loads(open(admin_config).read())
    assert stored["contexts"][stored["current"]]["serviceAccount"] == "default/admin"

    for org in ("test-org-a", "test-org-b"):
        delete_test_org(dispatch, org)
    remaining = [o["name"] for o in dispatch.json("iam", "get", "organizations")]
    assert "test-org-a" not in remaining and "test-org-b" not in remaining
