"""`dispatch iam …` against a real embedded Dispatch with authentication on: organizations,
service accounts and policies, and what a policy lets a service account do."""

from __future__ import annotations

import base64
import os
import stat
import uuid

import pytest
import yaml

from cli import config
from tests.unit.identity_keys import ec_key, private_pem, public_pem, rsa_key


@pytest.fixture
def as_admin(secure, dispatch, monkeypatch):
    """The CLI logged in as the server's admin (what `dispatch up` writes)."""
    monkeypatch.setenv("DISPATCH_PORT", str(secure.port))
    dispatch("login", "--service-account", "admin", "--jwt-private-key",
             secure.admin_key_path)
    return secure


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_organizations_create_get_delete(dispatch, as_admin):
    name = unique("org")

    assert dispatch("iam", "create", "organization", name).stdout.strip() == \
        f"Created organization: {name}"

    assert dispatch.json("iam", "get", "organization", name)["name"] == name
    table = dispatch("iam", "get", "organizations").stdout
    assert "NAME" in table.splitlines()[0] and name in table and "default" in table
    assert dispatch("iam", "create", "organization", name, expect=1).stderr  # 409
    dispatch("iam", "delete", "organization", name)
    assert name not in [o["name"] for o in dispatch.json("iam", "get", "organizations")]
    assert "not found" in dispatch("iam", "get", "organization", name, expect=1).stderr


def test_service_account_from_a_public_key_file(dispatch, as_admin, tmp_path):
    name = unique("robot")
    key = rsa_key()
    (tmp_path / "robot.pub").write_bytes(public_pem(key))

    created = dispatch.json("iam", "create", "serviceaccount", name,
                            "--public-key", tmp_path / "robot.pub")

    assert created["name"] == name
    assert base64.b64decode(created["publicKey"]).strip() == public_pem(key).strip()
    table = dispatch("iam", "get", "serviceaccounts").stdout
    assert name in table and "DOMAIN" in table.splitlines()[0]
    assert dispatch.json("iam", "get", "serviceaccount", name)["name"] == name
    assert dispatch("iam", "delete", "serviceaccount", name).stdout.strip() == \
        f"Deleted service account: {name}"
    dispatch("iam", "get", "serviceaccount", name, expect=1)


BAD_PUBLIC_KEYS = {
    "missing": (None, "cannot read public key file"),
    "a private key": (private_pem(rsa_key()), "holds a private key: give its public half"),
    "not a key": (b"ssh-rsa AAAA nope\n", "is not a PEM public key"),
    "not RSA": (public_pem(ec_key()), "is not an RSA public key"),
}


@pytest.mark.parametrize("content, says", BAD_PUBLIC_KEYS.values(), ids=BAD_PUBLIC_KEYS.keys())
def test_a_bad_public_key_file_is_refused_before_anything_is_sent(
        dispatch, as_admin, tmp_path, content, says):
    name = unique("robot")
    path = tmp_path / "robot.pub"
    if content is not None:
        path.write_bytes(content)

    result = dispatch("iam", "create", "serviceaccount", name, "--public-key", path,
                      expect=1)

    assert says in result.stderr and str(path) in result.stderr
    assert name not in [a["name"] for a in dispatch.json("iam", "get", "serviceaccounts")]


def test_a_key_too_small_for_the_server_is_its_400_message(dispatch, as_admin, tmp_path):
    path = tmp_path / "small.pub"
    path.write_bytes(public_pem(rsa_key(1024)))
    result = dispatch("iam", "create", "serviceaccount", unique("small"), "--public-key",
                      path, expect=1)
    assert "2048" in result.stderr


def test_policies_from_repeated_and_comma_separated_flags(dispatch, as_admin):
    name = unique("pol")

    dispatch("iam", "create", "policy", name, "-s", "alice,bob", "-s", "carol",
             "-r", "function", "-r", "runs,secret", "-a", "get,create")

    policy = dispatch.json("iam", "get", "policy", name)
    assert policy["rules"] == [{"subjects": ["alice", "bob", "carol"],
                                "resources": ["function", "run", "secret"],  # canonical
                                "actions": ["get", "create"]}]
    assert policy["global"] is False
    narrow = dispatch("iam", "get", "policies").stdout
    assert name in narrow and "alice" not in narrow
    wide = dispatch("iam", "get", "policy", name, "-w").stdout
    assert "RULES" in wide and "subjects: alice,bob,carol" in wide
    assert "actions: get,create" in wide
    assert name in dispatch("iam", "get", "policies", "-o", "yaml").stdout
    dispatch("iam", "delete", "policy", name)
    dispatch("iam", "get", "policy", name, expect=1)


def test_a_bad_policy_is_the_servers_400_naming_the_field(dispatch, as_admin):
    result = dispatch("iam", "create", "policy", unique("pol"), "-s", "x", "-r", "function",
                      "-a", "fly", expect=1)
    assert "actions" in result.stderr and "fly" in result.stderr
    result = dispatch("iam", "create", "policy", unique("pol"), "-s", "x", "-r", "function",
                      expect=2)
    assert "--action" in result.stderr


def test_a_read_only_service_account_can_get_but_not_create(dispatch, as_admin, tmp_path):
    reader = unique("reader")
    key = tmp_path / "reader.pem"
    dispatch("iam", "create", "serviceaccount", reader, "--generate-key", key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    dispatch("iam", "create", "policy", unique("read-only"), "-s", reader, "-r", "*",
             "-a", "get")
    dispatch("create", "secret", unique("s"), _secret_file(tmp_path))

    dispatch("login", "--service-account", reader, "--jwt-private-key", key)

    assert dispatch.json("get", "secrets") != []
    refused = dispatch("create", "secret", unique("s"), _secret_file(tmp_path), expect=1)
    assert refused.stderr.startswith("Error: ")
    assert reader in refused.stderr and "create" in refused.stderr
    assert "dispatch login" not in refused.stderr  # logging in again would not help
    refused = dispatch("iam", "create", "organization", unique("org"), expect=1)
    assert "create" in refused.stderr


def test_generate_key_never_overwrites_a_file_and_keeps_no_key_of_a_refused_account(
        dispatch, as_admin, tmp_path):
    existing = tmp_path / "mine.pem"
    existing.write_text("precious")
    result = dispatch("iam", "create", "serviceaccount", unique("r"), "--generate-key",
                      existing, expect=1)
    assert "exists already" in result.stderr and existing.read_text() == "precious"

    fresh = tmp_path / "fresh.pem"
    result = dispatch("iam", "create", "serviceaccount", "Not A Name!", "--generate-key",
                      fresh, expect=1)
    assert result.stderr.startswith("Error: ") and not fresh.exists()


def test_create_serviceaccount_needs_exactly_one_key_option(dispatch, as_admin, tmp_path):
    result = dispatch("iam", "create", "serviceaccount", unique("r"), expect=2)
    assert "--public-key" in result.stderr and "--generate-key" in result.stderr


def test_the_context_written_by_login_is_what_later_commands_use(dispatch, as_admin):
    context = config.current_context(config.read_file(os.environ["DISPATCH_CONFIG"]))
    assert context["jwtPrivateKey"] == as_admin.admin_key_path
    assert isinstance(dispatch.json("iam", "get", "policies"), list)


def _secret_file(tmp_path) -> str:
    path = tmp_path / f"{uuid.uuid4().hex}.json"
    path.write_text('{"password": "x"}')
    return str(path)


def test_a_seed_file_creates_and_deletes_identity_kinds(dispatch, as_admin, tmp_path):
    org, account, policy = unique("org"), unique("robot"), unique("pol")
    public_key = base64.b64encode(public_pem(rsa_key())).decode()
    seed = tmp_path / "identity.yaml"
    seed.write_text(yaml.safe_dump_all([
        {"kind": "Policy", "name": policy,
         "rules": [{"subjects": [account], "resources": ["function"], "actions": ["get"]}]},
        {"kind": "ServiceAccount", "name": account, "publicKey": public_key},
        {"kind": "Organization", "name": org},
    ]))

    created = dispatch("create", "-f", seed).stdout.splitlines()

    # organizations first, then who, then what they may do
    assert created == [f"Created Organization: {org}", f"Created ServiceAccount: {account}",
                       f"Created Policy: {policy}"]
    assert dispatch.json("iam", "get", "policy", policy)["rules"][0]["subjects"] == [account]
    assert dispatch.json("iam", "get", "serviceaccount", account)["publicKey"] == public_key
    dispatch("delete", "-f", seed)
    for kind, name in (("organization", org), ("serviceaccount", account),
                       ("policy", policy)):
        dispatch("iam", "get", kind, name, expect=1)
