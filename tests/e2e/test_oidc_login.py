"""People through OpenID Connect, against a real provider (panva's ``oidc-provider`` on
Node.js, tests/oidc): the browser login (authorization code) whose session cookie
authenticates API calls, ``/v1/iam/redirect`` handing that session to the CLI on this
machine only, logout, and the provider's bearer access tokens verified locally."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from api.embedded import start_embedded
from api.oidc_login import COOKIE_NAME
from cli import config as cli_config
from engine.identity.oidc import LEEWAY_SECONDS
from engine.sources import pack
from tests import oidc_provider
from tests.oidc_browser import browse

from .conftest import ROOT, free_port, wait_until
from .identity_client import admin_client

CATCHER = "http://127.0.0.1:9/catcher"  # nothing listens: redirects to it are not followed


@pytest.fixture(scope="module")
def provider_and_server(tmp_path_factory):
    port = free_port()
    process, provider = oidc_provider.start(
        redirect_uris=(f"http://127.0.0.1:{port}/oidc/authorize",),
        log_path=tmp_path_factory.mktemp("oidc") / "provider.log")
    # taken first: it is past its expiry and the verifier's leeway by the last test
    short_token = provider.client_credentials_token(oidc_provider.SHORT_LIVED_CLIENT)
    client_id, secret = oidc_provider.CLIENT
    server = start_embedded(
        str(tmp_path_factory.mktemp("home")), port=port, reconcile_seconds=0.5,
        oidc_client=json.dumps({"issuer": provider.issuer, "client_id": client_id,
                                "client_secret": secret, "organization": "default"}),
        oidc_issuers=json.dumps([{"issuer": provider.issuer, "audience": provider.audience,
                                  "organization": "default"}]))
    yield provider, server, short_token
    server.stop()
    oidc_provider.stop(process)


@pytest.fixture(scope="module")
def provider(provider_and_server):
    return provider_and_server[0]


@pytest.fixture(scope="module")
def server(provider_and_server):
    return provider_and_server[1]


@pytest.fixture(scope="module")
def admin(server):
    return admin_client(server)


@pytest.fixture(scope="module")
def short_token(provider_and_server):
    """A provider access token living one second, taken when the module starts."""
    return provider_and_server[2]


def allow(admin, name: str, subjects: list[str], resources=("function",), actions=("get",)):
    r = admin.post("/v1/iam/policy", json={"name": name, "rules": [
        {"subjects": subjects, "resources": list(resources), "actions": list(actions)}]})
    assert r.status_code == 201, r.text


def logged_in(server, login: str) -> requests.Session:
    session = requests.Session()
    r = browse(session, f"{server.url}/oidc/login?next=/v1/version", login)
    assert r.status_code == 200 and r.url == f"{server.url}/v1/version", (r.url, r.text)
    return session


def test_the_browser_login_sets_a_hardened_session_cookie(server):
    session = requests.Session()
    r = session.get(f"{server.url}/oidc/login?next=/v1/version", allow_redirects=False)
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    query = parse_qs(location.query)
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{server.url}/oidc/authorize"]
    assert query["state"] and query["nonce"]
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Secure" not in cookie  # plain http here
    # on https the cookie is Secure (Flask's test client, no TLS server needed)
    r = server.app.test_client().get("/oidc/login", base_url="https://127.0.0.1")
    assert "Secure" in r.headers["Set-Cookie"]


@pytest.mark.parametrize("target", ["//evil.example/x", "http://evil.example/",
                                    "https:evil.example", "/\\evil.example", "evil/x"])
def test_login_and_logout_only_return_to_paths_of_this_server(server, target):
    for path in ("/oidc/login", "/oidc/logout"):
        r = requests.get(f"{server.url}{path}", params={"next": target}, allow_redirects=False)
        assert r.status_code == 400, (path, r.text)
        assert "next must be a path on this server" in r.json()["message"]


def test_a_browser_session_authenticates_api_calls_as_its_user(server, admin):
    session = logged_in(server, "alice")
    r = session.get(f"{server.url}/v1/function")
    assert r.status_code == 403
    assert "alice@example.test" in r.json()["message"]  # the user its email names
    allow(admin, "alice-reads-functions", ["alice@example.test"])
    wait_until(lambda: session.get(f"{server.url}/v1/function").status_code == 200, 10,
               what="alice's policy to apply")
    # the policy is about reading: writing stays refused
    r = session.post(f"{server.url}/v1/secret", json={"name": "s", "secrets": {"a": "b"}})
    assert r.status_code == 403


def test_a_tampered_session_cookie_is_401(server):
    session = logged_in(server, "mallory")
    value = session.cookies[COOKIE_NAME]
    forged = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
    r = requests.get(f"{server.url}/v1/version", headers={"Cookie": f"{COOKIE_NAME}={forged}"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_redirect_hands_the_session_to_a_loopback_url(server, admin):
    allow(admin, "carol-reads-functions", ["carol@example.test"])
    session = logged_in(server, "carol")
    r = session.get(f"{server.url}/v1/iam/redirect", params={"redirect": CATCHER},
                    allow_redirects=False)
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert f"http://{location.netloc}{location.path}" == CATCHER
    cookie = parse_qs(location.query)["cookie"][0]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    # what the CLI then sends: the cookie alone, as a header
    wait_until(lambda: requests.get(f"{server.url}/v1/function",
                                    headers={"Cookie": cookie}).status_code == 200, 10,
               what="carol's policy to apply")


@pytest.mark.parametrize("target", [
    "http://evil.example/catcher", "https://127.0.0.1:5000/catcher",
    "http://127.0.0.1.evil.example/", "http://localhost.evil.example:80/",
    "http://127.0.0.1:80@evil.example/", "javascript:alert(1)", "",
])
def test_the_redirect_never_hands_the_session_elsewhere(server, target):
    session = logged_in(server, "dave")
    r = session.get(f"{server.url}/v1/iam/redirect", params={"redirect": target},
                    allow_redirects=False)
    assert r.status_code == 400, r.text
    assert "redirect" in r.json()["message"]
    assert COOKIE_NAME not in r.headers.get("Location", "")


def test_the_clis_browser_login_from_scratch(server):
    """What ``dispatch login`` does: open the login with ``next`` = the redirect to its
    local listener; the user signs in; the listener receives the cookie."""
    session = requests.Session()
    start = f"{server.url}/oidc/login?next=/v1/iam/redirect?redirect={CATCHER}"
    r = browse(session, start, "erin", stop_at=CATCHER)
    assert r.is_redirect, r.text
    cookie = parse_qs(urlsplit(r.headers["Location"]).query)["cookie"][0]
    r = requests.get(f"{server.url}/v1/version", headers={"Cookie": cookie})
    assert r.status_code == 200


def test_the_redirect_without_a_session_goes_through_the_login(server):
    r = requests.get(f"{server.url}/v1/iam/redirect", params={"redirect": CATCHER},
                     allow_redirects=False)
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert location.path == "/oidc/login"
    back = urlsplit(parse_qs(location.query)["next"][0])
    assert back.path == "/v1/iam/redirect" and parse_qs(back.query) == {"redirect": [CATCHER]}


def test_logout_forgets_the_session(server):
    session = logged_in(server, "frank")
    assert session.get(f"{server.url}/v1/version").status_code == 200
    r = session.get(f"{server.url}/oidc/logout?next=/healthz", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/healthz"
    assert session.get(f"{server.url}/v1/version").status_code == 401


def test_a_provider_access_token_is_a_bearer_of_its_mapped_organization(server, admin,
                                                                         provider):
    token = provider.login("grace")["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{server.url}/v1/version", headers=headers).status_code == 200
    r = requests.get(f"{server.url}/v1/function", headers=headers)
    assert r.status_code == 403 and "user default/grace@example.test" in r.json()["message"]
    allow(admin, "grace-reads-functions", ["grace@example.test"])
    wait_until(lambda: requests.get(f"{server.url}/v1/function", headers=headers)
               .status_code == 200, 10, what="grace's policy to apply")


def test_a_tampered_provider_token_is_401_and_not_logged(server, provider, caplog):
    token = provider.login("heidi")["access_token"]
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["email"] = "admin@example.test"
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    forged = f"{header}.{forged_payload}.{signature}"
    with caplog.at_level(logging.INFO):
        r = requests.get(f"{server.url}/v1/version", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert signature not in caplog.text and signature not in r.text


def test_an_expired_provider_token_is_401(server, short_token):
    exp = jwt.decode(short_token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, exp + LEEWAY_SECONDS + 1 - time.time()))
    r = requests.get(f"{server.url}/v1/version",
                     headers={"Authorization": f"Bearer {short_token}"})
    assert r.status_code == 401 and "expired" in r.json()["message"], r.text


def test_an_expired_provider_session_is_401_not_a_redirect(server):
    """A session outlives its provider token (no refresh token here): the API answers
    401, as to anyone without credentials, and the session is dropped."""
    app = server.app
    expired = {"oidc_auth_token": {"access_token": "opaque", "token_type": "Bearer",
                                   "expires_at": int(time.time()) - 3600},
               "oidc_auth_profile": {"sub": "ivan", "email": "ivan@example.test",
                                     "email_verified": True}}
    value = app.session_interface.get_signing_serializer(app).dumps(expired)
    r = requests.get(f"{server.url}/v1/version", headers={"Cookie": f"{COOKIE_NAME}={value}"},
                     allow_redirects=False)
    assert r.status_code == 401, r.text
    # the same session, still valid, is ivan
    valid = dict(expired, oidc_auth_token=dict(expired["oidc_auth_token"],
                                               expires_at=int(time.time()) + 3600))
    value = app.session_interface.get_signing_serializer(app).dumps(valid)
    r = requests.get(f"{server.url}/v1/function", headers={"Cookie": f"{COOKIE_NAME}={value}"})
    assert r.status_code == 403 and "ivan@example.test" in r.json()["message"]


def test_a_bearer_api_takes_provider_tokens_but_not_sessions(server, admin, provider,
                                                            tmp_path_factory):
    source = tmp_path_factory.mktemp("whoami") / "fn.py"
    source.write_text("def handle(ctx, payload):\n    return 'hello'\n")
    r = admin.post("/v1/function", json={
        "name": "hello", "image": "python3", "handler": "fn.handle",
        "source": base64.b64encode(pack(str(source))).decode()})
    assert r.status_code == 201, r.text
    wait_until(lambda: admin.get("/v1/function/hello").json().get("status")
               in ("READY", "ERROR"), 60, what="function hello built")
    r = admin.post("/v1/api", json={"name": "hello", "function": "hello", "uris": ["/hello"],
                                    "authentication": "bearer"})
    assert r.status_code == 200, r.text
    wait_until(lambda: server.system.routes.match(None, "/default/hello", "GET"), 10,
               what="api hello routed")

    token = provider.login("judy")["access_token"]
    r = requests.get(f"{server.url}/default/hello", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == "hello", r.text
    # a browser session is no bearer token
    r = logged_in(server, "judy").get(f"{server.url}/default/hello")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_dispatch_login_through_the_browser(server, admin, tmp_path):
    """``dispatch login`` with ``$BROWSER`` = a script that signs ``kim`` in with
    requests: the CLI catches the session and later commands run as kim."""
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT}/tests/oidc_browser.py" "$1"\n')
    browser.chmod(0o755)
    config_path = tmp_path / "config.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env.update(BROWSER=str(browser), OIDC_TEST_LOGIN="kim", HOME=str(tmp_path),
               OIDC_TEST_BROWSER_LOG=str(tmp_path / "browser.log"),
               DISPATCH_CONFIG=str(config_path), DISPATCH_HOST="127.0.0.1",
               DISPATCH_PORT=str(server.port))

    result = run_cli("login", "--timeout", "60", env=env)
    assert result.returncode == 0, (result.stderr, (tmp_path / "browser.log").read_text()
                                    if (tmp_path / "browser.log").exists() else "")
    assert "Logged in through the browser" in result.stdout
    stored = cli_config.current_context(cli_config.read_file(str(config_path)))
    assert stored["cookie"].startswith(f"{COOKIE_NAME}=")

    result = run_cli("get", "functions", env=env)
    assert result.returncode != 0 and "kim@example.test" in result.stderr
    allow(admin, "kim-reads-functions", ["kim@example.test"])
    wait_until(lambda: run_cli("get", "functions", env=env).returncode == 0, 20,
               what="kim's policy to apply")

    assert run_cli("logout", env=env).returncode == 0
    result = run_cli("get", "functions", env=env)
    assert result.returncode != 0 and "dispatch login" in result.stderr
