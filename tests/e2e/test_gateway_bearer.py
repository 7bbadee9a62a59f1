"""Gateway APIs with ``authentication: bearer`` on an embedded Dispatch with
authentication on: who may call them (service accounts of the API's organization, or of
another one a global policy lets in), what the others get (401 / 403, logged without
the token), and that public APIs stay public."""

from __future__ import annotations

import base64
import logging
import uuid

import pytest
import requests

from api.embedded import start_embedded
from engine.sources import pack
from tests.unit.identity_keys import private_pem, rsa_key

from .conftest import wait_for_status, wait_until
from .identity_client import account_client, admin_client, public_key_b64, sign

ECHO = '''\
def handle(ctx, payload):
    return {"input": payload, "headers": sorted(ctx["httpContext"]["headers"])}
'''


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(secure, tmp_path_factory):
    """Organization ``team`` with function ``echo`` behind a bearer API (``/secure``,
    with CORS) and a public one (``/open``); service accounts ``team/robot`` and
    ``default/outsider``."""
    admin = admin_client(secure)
    team = unique("team")
    assert admin.post("/v1/iam/organization", json={"name": team}).status_code == 201
    robot = account_client(admin, team, "robot", rsa_key(2048, 1))
    outsider = account_client(admin, "default", "outsider", rsa_key(2048, 2))
    source = tmp_path_factory.mktemp("echo") / "fn.py"
    source.write_text(ECHO)
    r = admin.post("/v1/function", org=team, json={
        "name": "echo", "image": "python3", "handler": "fn.handle",
        "source": base64.b64encode(pack(str(source))).decode()})
    assert r.status_code == 201, r.text
    wait_until(lambda: admin.get("/v1/function/echo", org=team).json().get("status")
               in ("READY", "ERROR"), 60, what="function echo built")
    assert admin.get("/v1/function/echo", org=team).json()["status"] == "READY"
    for name, uri, auth in (("secure", "/secure", "bearer"), ("open", "/open", "public")):
        r = admin.post("/v1/api", org=team, json={
            "name": name, "function": "echo", "uris": [uri], "methods": ["GET", "POST"],
            "authentication": auth, "cors": True})
        assert r.status_code == 200, r.text
        assert r.json()["authentication"] == auth
        wait_until(lambda: secure.system.routes.match(None, f"/{team}{uri}", "GET"),
                   10, what=f"api {name} routed")
    return {"admin": admin, "team": team, "robot": robot, "outsider": outsider,
            "url": f"{secure.url}/{team}"}


def bearer(client) -> dict:
    auth = client.session.auth
    return {"Authorization": f"Bearer {sign(auth.key, auth.org, auth.account)}"}


def test_a_bearer_api_without_a_token_is_401_with_a_challenge(world):
    r = requests.get(f"{world['url']}/secure")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in r.json()["message"]
    # CORS callers can read the refusal
    assert r.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("header, says", [
    ("Basic dXNlcjpwYXNz", "only Authorization: Bearer"),
    ("Bearer not-a-jwt", "token"),
    ("Bearer ", "Bearer"),
])
def test_a_bearer_api_refuses_malformed_credentials(world, header, says):
    r = requests.post(f"{world['url']}/secure", json={"x": 1},
                      headers={"Authorization": header})
    assert r.status_code == 401 and says in r.json()["message"], r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_signed_with_another_key_is_401_and_never_echoed(world, caplog):
    forged = sign(private_pem(rsa_key(2048, 3)), world["team"], "robot")
    with caplog.at_level(logging.INFO):
        r = requests.get(f"{world['url']}/secure", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401, r.text
    assert forged not in r.text and forged.split(".")[2] not in caplog.text
    assert "gateway.unauthenticated" in caplog.text


def test_an_expired_token_is_401(world):
    auth = world["robot"].session.auth
    expired = sign(auth.key, auth.org, auth.account, iat=1_000_000_000, exp=1_000_000_600)
    r = requests.get(f"{world['url']}/secure", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and "expired" in r.json()["message"], r.text


def test_a_service_account_of_the_apis_organization_is_let_in(world):
    r = requests.post(f"{world['url']}/secure", json={"name": "Jon"},
                      headers=bearer(world["robot"]))
    assert r.status_code == 200, r.text
    assert r.json()["input"] == {"name": "Jon"}
    # the credentials stay at the gateway
    assert "authorization" not in r.json()["headers"]


def test_another_organizations_account_is_403_until_a_global_policy_of_its_own_lets_it(
        world, caplog):
    url, admin, outsider = f"{world['url']}/secure", world["admin"], world["outsider"]
    with caplog.at_level(logging.WARNING):
        r = requests.get(url, headers=bearer(outsider))
    assert r.status_code == 403, r.text
    assert "may not call this api" in r.json()["message"]
    denied = [rec.getMessage() for rec in caplog.records
              if rec.getMessage().startswith("gateway.denied")]
    assert denied and "subject=outsider" in denied[0] and "resource=api" in denied[0] \
        and "action=get" in denied[0]

    # a policy of the API's organization cannot speak for another organization's account
    rule = {"subjects": ["outsider"], "resources": ["api"], "actions": ["get"]}
    r = admin.post("/v1/iam/policy", org=world["team"],
                   json={"name": "team-lets-outsider", "rules": [rule]})
    assert r.status_code == 201, r.text
    # ... a global policy of its own organization can
    r = admin.post("/v1/iam/policy", org="default",
                   json={"name": "outsider-calls-apis", "global": True, "rules": [rule]})
    assert r.status_code == 201, r.text
    wait_until(lambda: requests.get(url, headers=bearer(outsider)).status_code == 200, 10,
               what="the global policy to apply")

    r = admin.delete("/v1/iam/policy/outsider-calls-apis", org="default")
    assert r.status_code == 200, r.text
    wait_until(lambda: requests.get(url, headers=bearer(outsider)).status_code == 403, 10,
               what="the deleted policy to stop applying")


def test_a_cors_preflight_needs_no_token(world):
    r = requests.options(f"{world['url']}/secure", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert r.status_code == 200
    assert "POST" in r.headers["Access-Control-Allow-Methods"]


def test_a_public_api_stays_public(world):
    assert requests.get(f"{world['url']}/open?a=1").json()["input"] == {"a": "1"}
    # whatever credentials come along are not looked at, nor passed on
    r = requests.get(f"{world['url']}/open", headers={"Authorization": "Bearer junk"})
    assert r.status_code == 200 and "authorization" not in r.json()["headers"]


def test_basic_and_oidc_api_authentication_are_refused_with_the_reason(world):
    for scheme in ("basic", "oidc"):
        r = world["admin"].post("/v1/api", org=world["team"], json={
            "name": unique("x"), "function": "echo", "authentication": scheme})
        assert r.status_code == 400
        assert f"authentication {scheme} is not supported" in r.json()["message"]


def test_bearer_is_enforced_even_with_auth_off(tmp_path_factory):
    """DISPATCH_AUTH=off opens the management API, not the APIs asking for a token."""
    server = start_embedded(str(tmp_path_factory.mktemp("open")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2, auth="off")
    try:
        key, base = rsa_key(2048, 1), server.url
        assert requests.post(f"{base}/v1/iam/serviceaccount", json={
            "name": "robot", "publicKey": public_key_b64(key)}).status_code == 201
        source = tmp_path_factory.mktemp("echo-open") / "fn.py"
        source.write_text(ECHO)
        assert requests.post(f"{base}/v1/function", json={
            "name": "echo", "image": "python3", "handler": "fn.handle",
            "source": base64.b64encode(pack(str(source))).decode()}).status_code == 201
        assert wait_for_status(base, "echo")["status"] == "READY"
        assert requests.post(f"{base}/v1/api", json={
            "name": "secure", "function": "echo", "uris": ["/secure"],
            "authentication": "bearer"}).status_code == 200
        wait_until(lambda: server.system.routes.match(None, "/default/secure", "GET"),
                   10, what="api routed")

        assert requests.get(f"{base}/default/secure").status_code == 401
        token = sign(private_pem(key), "default", "robot")
        r = requests.get(f"{base}/default/secure", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    finally:
        server.stop()
