"""Identity wired into the API of an embedded Dispatch with auth on (the default): 401
for every kind of missing or bad credential, 403 for an unknown organization or a
policy that does not allow the action, the bootstrap admin managing organizations,
service accounts and policies through /v1/iam, policy changes applied without a
restart, and refusals logged with subject, resource and action but never the token."""

from __future__ import annotations

import logging
import os
import stat
import time
import uuid
from pathlib import Path

import pytest
import requests

from api.embedded import start_embedded
from engine.errors import InvalidInput
from engine.identity.principal import Principal
from tests.unit.identity_keys import (
    ec_key, hmac_token, private_pem, public_pem, rsa_key, unsigned_token,
)

from .conftest import wait_until
from .identity_client import Bearer, Client, account_client, admin_client, public_key_b64, sign


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(server):
    return admin_client(server)


@pytest.fixture
def tenant(admin):
    """A fresh organization with service account ``ci`` that may read secrets only."""
    org = "t" + uuid.uuid4().hex[:8]
    assert admin.post("/v1/iam/organization", json={"name": org}).status_code == 201
    ci = account_client(admin, org, "ci", rsa_key(2048, 1))
    r = admin.post("/v1/iam/policy", org=org, json={"name": "readers", "rules": [
        {"subjects": ["ci"], "resources": ["secret"], "actions": ["get"]}]})
    assert r.status_code == 201, r.text
    wait_until(lambda: ci.get("/v1/secret").status_code == 200, 10, what="policy applied")
    return org, ci


def admin_key(server) -> bytes:
    return Path(server.admin_key_path).read_bytes()


# ---- 401 ----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Cookie": "unset"},
                                     {"Cookie": "unset", "X-Dispatch-Org": "default"}])
def test_no_credentials_is_401_asking_for_a_bearer_token(server, headers):
    r = requests.get(f"{server.url}/v1/function", headers=headers)
    assert r.status_code == 401, r.text
    assert r.json() == {"code": 401, "message": "authentication required: send "
                                                "Authorization: Bearer <token>"}
    assert r.headers["WWW-Authenticate"] == "Bearer"


def bad_tokens(server):
    """(Authorization header, what the 401's message says) for every kind of bad token."""
    key, now = admin_key(server), int(time.time())
    other = private_pem(rsa_key(2048, 7))
    claims = {"iss": "default/admin", "iat": now - 60, "exp": now + 600}
    return [
        ("Basic YWRtaW46YWRtaW4=", "only Authorization: Bearer <token> is accepted"),
        ("Bearer not-a-jwt", "token is not a JWT"),
        (f"Bearer {unsigned_token(claims)}", "token algorithm 'none' is not accepted"),
        # the classic key confusion: HMAC keyed with the account's public key
        (f"Bearer {hmac_token(claims, public_pem(rsa_key(2048, 7)))}",
         "token algorithm 'HS256' is not accepted"),
        (f"Bearer {sign(other, 'default', 'admin')}",
         "token signature does not verify with the key of default/admin"),
        (f"Bearer {sign(key, 'default', 'admin', iat=now - 7200, exp=now - 3600)}",
         "token of default/admin has expired"),
        (f"Bearer {sign(key, 'default', 'admin', iat=now + 3600, exp=now + 4000)}",
         "token of default/admin is not valid yet"),
        (f"Bearer {sign(key, 'default', 'admin', exp=None)}",
         "token of default/admin has no exp claim"),
        (f"Bearer {sign(key, 'default', 'admin', exp=now + 86400)}",
         "at most 3600 s are accepted"),
        (f"Bearer {sign(key, 'default', 'nobody')}",
         "token issuer 'default/nobody' is no service account"),
        (f"Bearer {sign(key, 'nowhere', 'admin')}",
         "token issuer 'nowhere/admin' is no service account"),
    ]


def test_every_kind_of_bad_token_is_401_saying_why(server):
    for header, message in bad_tokens(server):
        r = requests.get(f"{server.url}/v1/secret", headers={"Authorization": header})
        assert r.status_code == 401, (header, r.text)
        assert message in r.json()["message"], (header, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_public_paths_need_no_token(server):
    assert requests.get(f"{server.url}/healthz").status_code == 200
    assert requests.get(f"{server.url}/openapi.json").status_code == 200
    # ingest is authenticated by the driver's own token
    r = requests.post(f"{server.url}/v1/event/ingest/nosuch", data=b"x")
    assert r.status_code == 401 and "token not recognized" in r.json()["message"]


# ---- 403 ----------------------------------------------------------------------------

def test_an_unknown_organization_is_403_even_for_the_admin(admin):
    r = admin.get("/v1/function", org="nosuchorg")
    assert r.status_code == 403, r.text
    assert r.json()["message"] == "organization 'nosuchorg' does not exist"


def test_the_version_needs_a_token_but_no_policy(server, tenant):
    _, ci = tenant
    assert ci.get("/v1/version").status_code == 200
    assert requests.get(f"{server.url}/v1/version").status_code == 401


def test_home_needs_a_valid_token_but_no_policy_as_dispatchs_identity_manager(
        server, admin, tenant):
    # the original CLI's `login --service-account` calls it to prove the key
    org, ci = tenant
    nobody = account_client(admin, org, "nobody", rsa_key(2048, 2))  # no policy at all
    for client in (admin, ci, nobody):
        r = client.get("/home")
        assert r.status_code == 200, r.text
        assert r.json() == {"message": "Home Page, You have already logged in"}
    r = requests.get(f"{server.url}/home", headers={"Cookie": "unset"})
    assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
    r = requests.get(f"{server.url}/home", headers={
        "Authorization": f"Bearer {sign(private_pem(rsa_key(2048, 9)), org, 'nobody')}"})
    assert r.status_code == 401
    assert admin.get("/home", org="nosuchorg").status_code == 403
    # only the exact path: /home/... is a gateway path (of an organization "home")
    assert requests.get(f"{server.url}/home/x").json()["message"] == \
        "no API found with those values"


# ---- the admin and /v1/iam -----------------------------------------------------------

def test_the_bootstrap_admin_key_is_private_to_its_owner(server):
    mode = stat.S_IMODE(os.stat(server.admin_key_path).st_mode)
    assert mode == 0o600
    assert server.admin_account == "admin" and server.admin_org == "default"
    assert stat.S_IMODE(os.stat(Path(server.settings.home) / "session.key").st_mode) == 0o600


def test_the_admin_manages_organizations_accounts_and_policies(admin):
    org = "m" + uuid.uuid4().hex[:8]
    r = admin.post("/v1/iam/organization", json={"name": org})
    assert r.status_code == 201 and r.json()["kind"] == "Organization", r.text
    assert admin.post("/v1/iam/organization", json={"name": org}).status_code == 409
    assert org in [o["name"] for o in admin.get("/v1/iam/organization").json()]
    assert admin.get(f"/v1/iam/organization/{org}").json()["name"] == org

    key = rsa_key(2048, 2)
    r = admin.post("/v1/iam/serviceaccount", org=org,
                   json={"name": "deployer", "publicKey": public_key_b64(key)})
    assert r.status_code == 201, r.text
    account = r.json()
    assert (account["kind"], account["organizationId"], account["jwtAlgorithm"]) == (
        "ServiceAccount", org, "RS256")
    assert [a["name"] for a in admin.get("/v1/iam/serviceaccount", org=org).json()] == [
        "deployer"]
    # key rotation: the new key works, the old one stops
    new_key = rsa_key(2048, 3)
    r = admin.put("/v1/iam/serviceaccount/deployer", org=org,
                  json={"publicKey": public_key_b64(new_key)})
    assert r.status_code == 200, r.text

    rules = [{"subjects": ["deployer"], "resources": ["function", "runs"],
              "actions": ["get", "create"]}]
    r = admin.post("/v1/iam/policy", org=org, json={"name": "deploy", "rules": rules})
    assert r.status_code == 201, r.text
    assert r.json()["rules"][0]["resources"] == ["function", "run"]  # canonical spelling
    assert r.json()["global"] is False
    deployer = Client(admin.base, Bearer(private_pem(new_key), org, "deployer"))
    wait_until(lambda: deployer.get("/v1/function").status_code == 200, 10,
               what="deployer allowed")
    old = Client(admin.base, Bearer(private_pem(key), org, "deployer"))
    assert old.get("/v1/function").status_code == 401

    r = admin.delete("/v1/iam/policy/deploy", org=org)
    assert r.status_code == 200 and r.json()["name"] == "deploy"
    r = admin.delete("/v1/iam/serviceaccount/deployer", org=org)
    assert r.status_code == 200 and r.json()["name"] == "deployer"
    assert deployer.get("/v1/function").status_code == 401
    r = admin.delete(f"/v1/iam/organization/{org}")
    assert r.status_code == 200 and r.json()["name"] == org
    assert admin.get("/v1/function", org=org).status_code == 403


@pytest.mark.parametrize("body, named", [
    ({"name": "k", "publicKey": "!!!"}, "publicKey is not base64 encoded"),
    ({"name": "k", "publicKey": public_pem(rsa_key()).decode()},
     "it looks like a PEM: base64-encode it"),
    ({"name": "k", "publicKey": "aGVsbG8="}, "publicKey is not a public key in PEM format"),
    ({"name": "k"}, "publicKey is required"),
    ({"name": "k", "publicKey": "EC"}, "publicKey is not an RSA key"),
    ({"name": "bad name", "publicKey": "x"}, "name"),
])
def test_bad_service_accounts_are_400_naming_the_field(admin, body, named):
    if body.get("publicKey") == "EC":
        body = dict(body, publicKey=public_key_b64(ec_key()))
    r = admin.post("/v1/iam/serviceaccount", json=body)
    assert r.status_code == 400, r.text
    assert named in r.json()["message"]
    assert "k" not in [a["name"] for a in admin.get("/v1/iam/serviceaccount").json()]


@pytest.mark.parametrize("rules, named", [
    (None, "rules is required"),
    ([{"subjects": ["a"], "resources": ["function"], "actions": ["fly"]}],
     "rules[0].actions: 'fly'"),
    ([{"subjects": ["a"], "resources": ["spaceship"], "actions": ["get"]}],
     "rules[0].resources: 'spaceship'"),
    ([{"subjects": [], "resources": ["function"], "actions": ["get"]}], "rules[0].subjects"),
    ([{"subjects": ["a b"], "resources": ["function"], "actions": ["get"]}],
     "rules[0].subjects: 'a b'"),
])
def test_bad_policies_are_400_naming_the_rule(admin, rules, named):
    r = admin.post("/v1/iam/policy", json={"name": "bad", "rules": rules})
    assert r.status_code == 400, r.text
    assert named in r.json()["message"]
    r = admin.post("/v1/iam/policy", json={"name": "bad", "global": "yes", "rules": [
        {"subjects": ["a"], "resources": ["*"], "actions": ["*"]}]})
    assert r.status_code == 400 and "global must be true or false" in r.json()["message"]
    assert admin.get("/v1/iam/policy/bad").status_code == 404


def test_reserved_organization_names_are_refused(admin):
    r = admin.post("/v1/iam/organization", json={"name": "v1"})
    assert r.status_code == 400 and "reserved" in r.json()["message"]


# ---- an account's rights follow its policy ---------------------------------------------

def test_an_account_may_do_what_its_policy_allows_and_nothing_else(tenant):
    org, ci = tenant
    assert ci.get("/v1/secret").status_code == 200
    r = ci.post("/v1/secret", json={"name": "s", "secrets": {"k": "v"}})
    assert r.status_code == 403, r.text
    assert r.json()["message"] == f"serviceaccount {org}/ci may not create secret in " \
                                  f"organization {org}"
    r = ci.get("/v1/function")
    assert r.status_code == 403 and "may not get function" in r.json()["message"]
    # identity itself is a resource too
    assert ci.get("/v1/iam/serviceaccount").status_code == 403


def test_an_org_admin_cannot_reach_beyond_its_organization(admin, tenant):
    org, ci = tenant
    r = admin.put("/v1/iam/policy/readers", org=org, json={"rules": [
        {"subjects": ["ci"], "resources": ["*"], "actions": ["*"]}]})
    assert r.status_code == 200, r.text
    wait_until(lambda: ci.get("/v1/iam/policy").status_code == 200, 10, what="ci is org admin")
    # no organization creation, no global policy, no other organization
    r = ci.post("/v1/iam/organization", json={"name": "mine" + uuid.uuid4().hex[:6]})
    assert r.status_code == 403 and "may not create iam in every organization" in r.text
    r = ci.post("/v1/iam/policy", json={"name": "everywhere", "global": True, "rules": [
        {"subjects": ["ci"], "resources": ["*"], "actions": ["*"]}]})
    assert r.status_code == 403, r.text
    r = ci.put("/v1/iam/policy/readers", json={"global": True})
    assert r.status_code == 403, r.text
    assert ci.get("/v1/iam/policy/everywhere").status_code == 404
    assert [o["name"] for o in ci.get("/v1/iam/organization").json()] == [org]
    assert ci.get("/v1/iam/organization/default").status_code == 404
    assert ci.delete(f"/v1/iam/organization/{org}").status_code == 403
    assert ci.get("/v1/secret", org="default").status_code == 403
    assert ci.get("/v1/iam/serviceaccount", org="default").status_code == 403


def test_a_policy_change_applies_without_a_restart(admin, tenant):
    org, ci = tenant
    assert ci.post("/v1/secret", json={"name": "s", "secrets": {"k": "v"}}).status_code == 403
    r = admin.put("/v1/iam/policy/readers", org=org, json={"rules": [
        {"subjects": ["ci"], "resources": ["secret"], "actions": ["get", "create"]}]})
    assert r.status_code == 200, r.text
    wait_until(lambda: ci.post("/v1/secret", json={"name": "s", "secrets": {"k": "v"}})
               .status_code == 201, 10, what="create allowed")
    assert admin.delete("/v1/iam/policy/readers", org=org).status_code == 200
    wait_until(lambda: ci.get("/v1/secret").status_code == 403, 10, what="read revoked")


def test_a_browser_session_principal_is_gated_like_a_token(server, tenant):
    org, _ = tenant
    identity = server.system.identity
    access = identity.check_principal(Principal(org, "ci"), "GET", "/v1/secret")
    assert (access.principal.subject, access.org) == ("ci", org)
    with pytest.raises(Exception, match="may not create secret"):
        identity.check_principal(Principal(org, "ci"), "POST", "/v1/secret")
    with pytest.raises(Exception, match="does not exist"):
        identity.check_principal(Principal(org, "ci"), "GET", "/v1/secret", "nosuchorg")


# ---- logs ---------------------------------------------------------------------------

def test_refusals_are_logged_with_subject_resource_action_and_never_the_token(
        server, tenant, caplog):
    org, _ = tenant
    caplog.set_level(logging.INFO)
    token = sign(private_pem(rsa_key(2048, 1)), org, "ci")
    r = requests.post(f"{server.url}/v1/secret", json={"name": "x", "secrets": {}},
                      headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    bad = sign(private_pem(rsa_key(2048, 7)), org, "ci")
    r = requests.get(f"{server.url}/v1/function", headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 401
    denied = [m for m in caplog.messages if m.startswith("access.denied")]
    assert any("error=PermissionDenied" in m and "subject=ci" in m and f"subject_org={org}" in m
               and "resource=secret" in m and "action=create" in m for m in denied), denied
    assert any("error=BadSignature" in m and "resource=function" in m and "action=get" in m
               and "does not verify" in m for m in denied), denied
    for text in (caplog.text, *caplog.messages):
        assert token not in text and bad not in text
        assert token.split(".")[2] not in text and bad.split(".")[2] not in text


# ---- bootstrap and settings ------------------------------------------------------------

def test_the_admin_key_survives_a_restart_and_a_lost_or_foreign_key_is_replaced(tmp_path):
    home = str(tmp_path / "home")
    first = start_embedded(home, port=0)
    try:
        key = admin_key(first)
        assert admin_client(first).get("/v1/iam/organization").status_code == 200
    finally:
        first.stop()
    second = start_embedded(home, port=0)
    try:
        assert admin_key(second) == key  # the same admin: nothing new was made
        assert admin_client(second).get("/v1/iam/organization").status_code == 200
    finally:
        second.stop()
    os.remove(Path(home) / "admin.key")
    third = start_embedded(home, port=0)
    try:
        assert admin_key(third) != key
        assert admin_client(third).get("/v1/iam/organization").status_code == 200
        old = Client(third.url, Bearer(key, "default", "admin"))
        assert old.get("/v1/iam/organization").status_code == 401  # the lost key is void
    finally:
        third.stop()
    # a key file of another installation is replaced too (the admin would be locked out)
    foreign = private_pem(rsa_key(2048, 9))
    (Path(home) / "admin.key").write_bytes(foreign)
    fourth = start_embedded(home, port=0)
    try:
        assert admin_key(fourth) != foreign
        assert admin_client(fourth).get("/v1/iam/organization").status_code == 200
    finally:
        fourth.stop()


def test_auth_off_is_explicit_and_makes_no_admin(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    server = start_embedded(str(tmp_path / "home"), port=0, auth="off")
    try:
        assert server.admin_key_path is None
        assert not (tmp_path / "home" / "admin.key").exists()
        assert requests.get(f"{server.url}/v1/function",
                            headers={"Cookie": "unset"}).status_code == 200
        assert "auth.DISABLED" in caplog.text
    finally:
        server.stop()


def test_bad_auth_settings_stop_start_up(tmp_path):
    with pytest.raises(ValueError, match="DISPATCH_AUTH must be one of on, off, not 'of'"):
        start_embedded(str(tmp_path / "a"), port=0, auth="of")
    with pytest.raises(InvalidInput, match="OIDC issuers are not valid JSON"):
        start_embedded(str(tmp_path / "b"), port=0, oidc_issuers="[{")
    with pytest.raises(InvalidInput, match=r"OIDC issuers\[0\].audience is required"):
        start_embedded(str(tmp_path / "c"), port=0,
                       oidc_issuers='[{"issuer": "https://x", "organization": "default"}]')
