"""`dispatch login` / `logout` and the credentials the CLI sends, against a real embedded
Dispatch with authentication on (its own server: the shared one runs with auth off), and
on the wire (RecordingServer)."""

from __future__ import annotations

import json
import os
import stat
import time

import jwt
import pytest

from cli import config
from engine.identity.service_accounts import issue_token
from tests.unit.identity_keys import ec_key, private_pem, public_pem, rsa_key

HINT = "dispatch login"


@pytest.fixture
def at_secure(secure, monkeypatch):
    monkeypatch.setenv("DISPATCH_PORT", str(secure.port))
    return secure


def stored() -> dict:
    return config.current_context(config.read_file(os.environ["DISPATCH_CONFIG"]))


def write_key(path, key) -> str:
    path.write_bytes(private_pem(key))
    return str(path)


def test_login_as_a_service_account_stores_it_and_signs_every_command(dispatch, at_secure,
                                                                      monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    os.symlink(at_secure.admin_key_path, tmp_path / "admin.key")

    result = dispatch("login", "--service-account", "admin", "--jwt-private-key", "admin.key")

    assert "Logged in as service account default/admin" in result.stdout
    context = stored()
    # the account is stored as one of the organization it logged in under; the path
    # absolute (the context works from any directory), never the key
    assert context["serviceAccount"] == "default/admin"
    assert context["jwtPrivateKey"] == str(tmp_path / "admin.key")
    assert "PRIVATE KEY" not in open(os.environ["DISPATCH_CONFIG"]).read()
    assert stat.S_IMODE(os.stat(os.environ["DISPATCH_CONFIG"]).st_mode) == 0o600
    assert isinstance(dispatch.json("get", "functions"), list)
    assert "default" in [o["name"] for o in dispatch.json("iam", "get", "organizations")]


BAD_KEY_FILES = {
    "missing": (None, "cannot read JWT private key file"),
    "not a key": (b"hello\n", "is not a PEM private key"),
    "a public key": (public_pem(rsa_key()), "is a public key, not the private one"),
    "not RSA": (private_pem(ec_key()), "service accounts use RSA keys"),
}


@pytest.mark.parametrize("content, says", BAD_KEY_FILES.values(), ids=BAD_KEY_FILES.keys())
def test_login_with_a_bad_key_file_is_a_clear_error_and_stores_nothing(
        dispatch, at_secure, tmp_path, content, says):
    key = tmp_path / "key.pem"
    if content is not None:
        key.write_bytes(content)

    result = dispatch("login", "--service-account", "admin", "--jwt-private-key", key,
                      expect=1)

    assert says in result.stderr and str(key) in result.stderr
    assert stored() == {}


def test_login_with_a_key_the_server_does_not_know_fails_and_stores_nothing(
        dispatch, at_secure, tmp_path):
    other = write_key(tmp_path / "other.pem", rsa_key(2048, which=1))

    result = dispatch("login", "--service-account", "admin", "--jwt-private-key", other,
                      expect=1)

    assert "login as service account default/admin" in result.stderr
    assert "failed" in result.stderr and "signature" in result.stderr.lower()
    assert stored() == {}


def test_login_needs_both_the_account_and_its_key(dispatch, at_secure, tmp_path):
    result = dispatch("login", "--service-account", "admin", expect=2)
    assert "--jwt-private-key" in result.stderr
    key = write_key(tmp_path / "k.pem", rsa_key())
    result = dispatch("login", "--jwt-private-key", key, expect=2)
    assert "--service-account" in result.stderr


def test_no_credentials_gets_the_servers_401_message_and_a_login_hint(dispatch, at_secure):
    result = dispatch("get", "functions", expect=1)

    assert result.stderr.startswith("Error: ")
    assert "credential" in result.stderr.lower() or "token" in result.stderr.lower()
    assert HINT in result.stderr


def test_logout_forgets_the_credentials_and_the_next_command_is_refused(
        dispatch, at_secure):
    dispatch("login", "--service-account", "admin", "--jwt-private-key",
             at_secure.admin_key_path)
    dispatch("get", "functions")

    assert "Logged out" in dispatch("logout").stdout

    assert not {"serviceAccount", "jwtPrivateKey"} & set(stored()) and not stored()["cookie"]
    assert os.path.exists(at_secure.admin_key_path)  # the key file is the user's
    assert HINT in dispatch("get", "functions", expect=1).stderr


def test_service_account_from_the_environment_and_a_raw_token_flag(
        dispatch, at_secure, monkeypatch):
    monkeypatch.setenv("DISPATCH_SERVICE_ACCOUNT", "admin")
    monkeypatch.setenv("DISPATCH_JWT_PRIVATE_KEY", at_secure.admin_key_path)
    assert isinstance(dispatch.json("get", "functions"), list)
    monkeypatch.delenv("DISPATCH_SERVICE_ACCOUNT")
    monkeypatch.delenv("DISPATCH_JWT_PRIVATE_KEY")
    assert HINT in dispatch("get", "functions", expect=1).stderr

    with open(at_secure.admin_key_path, "rb") as f:
        token = issue_token(f.read(), "default", "admin", lifetime=300)
    assert isinstance(dispatch.json("--token", token, "get", "functions"), list)
    assert HINT in dispatch("--token", token + "x", "get", "functions", expect=1).stderr


def test_an_account_of_another_organization_is_named_org_slash_name(
        dispatch, at_secure, monkeypatch):
    monkeypatch.setenv("DISPATCH_JWT_PRIVATE_KEY", at_secure.admin_key_path)
    dispatch("--service-account", "admin", "iam", "create", "organization", "acme")

    # the admin's global policy reaches into acme; its token still names its own org
    listed = dispatch.json("--organization", "acme", "--service-account", "default/admin",
                           "get", "functions")
    assert listed == []
    refused = dispatch("--organization", "acme", "--service-account", "admin",
                       "get", "functions", expect=1)
    assert "acme/admin" in refused.stderr


# ---- on the wire ------------------------------------------------------------------------

def test_a_service_account_sends_a_fresh_rs256_token_and_no_cookie(dispatch, recorder,
                                                                   monkeypatch, tmp_path):
    key = rsa_key()
    monkeypatch.setenv("DISPATCH_SERVICE_ACCOUNT", "robot")
    monkeypatch.setenv("DISPATCH_JWT_PRIVATE_KEY", write_key(tmp_path / "robot.pem", key))
    monkeypatch.setenv("DISPATCH_ORGANIZATION", "acme")
    recorder.answer("GET", "/v1/function", (200, []))

    before = time.time()
    dispatch("get", "functions")

    headers = recorder.requests[-1].headers
    assert "Cookie" not in headers and headers["X-Dispatch-Org"] == "acme"
    scheme, token = headers["Authorization"].split(" ")
    assert scheme == "Bearer"
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, public_pem(key), algorithms=["RS256"])
    assert claims["iss"] == "acme/robot"
    assert before - 61 <= claims["iat"] <= time.time() - 59  # back-dated a minute
    assert claims["exp"] - claims["iat"] == 600 + 60  # ten minutes from its issue


def test_without_credentials_the_cli_sends_cookie_unset_or_the_stored_cookie(
        dispatch, recorder):
    recorder.answer("GET", "/v1/function", (200, []))
    dispatch("get", "functions")
    assert recorder.requests[-1].headers["Cookie"] == "unset"
    assert "Authorization" not in recorder.requests[-1].headers

    config.write_context(os.environ["DISPATCH_CONFIG"],
                         config.Context(port=recorder.port, cookie="session=abc"))
    dispatch("get", "functions")
    assert recorder.requests[-1].headers["Cookie"] == "session=abc"


def test_a_401_shows_the_message_and_the_hint(dispatch, recorder):
    recorder.answer("GET", "/v1/function", (401, {"code": 401, "message": "token expired"}))
    result = dispatch("get", "functions", expect=1)
    assert result.stderr.splitlines()[0] == "Error: token expired"
    assert HINT in result.stderr


def test_a_token_is_signed_again_before_it_expires():
    from cli.auth import RENEW_SECONDS, ServiceAccountAuth

    auth = ServiceAccountAuth("acme/robot", private_pem(rsa_key()))
    assert auth.token() == auth.token()  # cached while fresh
    short = ServiceAccountAuth("acme/robot", private_pem(rsa_key()), lifetime=RENEW_SECONDS)
    first = short.token()
    time.sleep(1.1)  # iat has a one-second resolution
    assert short.token() != first


# ---- dispatch up ------------------------------------------------------------------------

@pytest.mark.parametrize("auth", ["on", "off"])
def test_up_writes_the_admin_into_the_context_unless_auth_is_off(
        dispatch, monkeypatch, tmp_path, auth):
    served = {}
    monkeypatch.setattr("api.embedded.serve_embedded", lambda **kw: served.update(kw))
    monkeypatch.setenv("DISPATCH_AUTH", auth)
    config.write_credentials(os.environ["DISPATCH_CONFIG"], config.Context(),
                             cookie="stale", service_account="old", jwt_private_key="/old")

    dispatch("up", "--port", "8123", "--home", tmp_path / "home")

    context = stored()
    assert context["port"] == 8123 and context["organization"] == "default"
    assert served["home"] == str(tmp_path / "home")
    if auth == "on":
        assert context["serviceAccount"] == "default/admin"
        assert context["jwtPrivateKey"] == str(tmp_path / "home" / "admin.key")
    else:
        assert "serviceAccount" not in context and "jwtPrivateKey" not in context
    assert context["cookie"] == ""


def test_up_refuses_a_misspelt_auth_setting(dispatch, monkeypatch, tmp_path):
    monkeypatch.setattr("api.embedded.serve_embedded", lambda **kw: None)
    monkeypatch.setenv("DISPATCH_AUTH", "of")
    result = dispatch("up", "--home", tmp_path / "home", expect=1)
    assert "DISPATCH_AUTH" in result.stderr or "auth" in result.stderr
    assert stored() == {}


def test_a_stored_account_signs_as_its_own_organization_under_organization_other(
        dispatch, recorder, monkeypatch, tmp_path):
    key = rsa_key()
    path = os.environ["DISPATCH_CONFIG"]
    # as the original CLI's login leaves it: NAME, and the organization logged in under
    config.write_context(path, config.Context(port=recorder.port, organization="acme"))
    config.write_credentials(path, config.Context(), service_account="robot",
                             jwt_private_key=write_key(tmp_path / "robot.pem", key))
    recorder.answer("GET", "/v1/function", (200, []))

    dispatch("get", "functions")
    dispatch("get", "functions", "--organization", "other")
    monkeypatch.setenv("DISPATCH_ORGANIZATION", "elsewhere")
    dispatch("get", "functions")

    def signer(request):
        token = request.headers["Authorization"].split(" ")[1]
        return jwt.decode(token, public_pem(key), algorithms=["RS256"])["iss"]

    sent = [(r.headers["X-Dispatch-Org"], signer(r)) for r in recorder.requests]
    assert sent == [("acme", "acme/robot"), ("other", "acme/robot"),
                    ("elsewhere", "acme/robot")]


def test_up_context_keeps_the_admin_signing_as_default_admin(dispatch, recorder, monkeypatch,
                                                            tmp_path):
    monkeypatch.setattr("api.embedded.serve_embedded", lambda **kw: None)
    home = tmp_path / "home"
    home.mkdir()
    key = rsa_key()
    (home / "admin.key").write_bytes(private_pem(key))
    dispatch("up", "--port", recorder.port, "--home", home)
    recorder.answer("POST", "/v1/iam/serviceaccount", (201, {"name": "robot"}))

    dispatch("iam", "create", "serviceaccount", "robot", "--public-key",
             _public_key_file(tmp_path), "--organization", "acme")

    request = recorder.requests[-1]
    token = request.headers["Authorization"].split(" ")[1]
    assert request.headers["X-Dispatch-Org"] == "acme"
    assert jwt.decode(token, public_pem(key), algorithms=["RS256"])["iss"] == "default/admin"


def _public_key_file(tmp_path) -> str:
    path = tmp_path / "robot.pub"
    path.write_bytes(public_pem(rsa_key()))
    return str(path)


def test_the_stored_key_file_can_be_the_originals_lowercase_spelling(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"current": "c", "contexts": {"c": {
        "serviceaccount": "robot", "jwtprivatekey": "/keys/robot.pem"}}}))
    context = config.resolve({}, {}, str(path))
    # an unqualified account is one of the context's organization (here the default)
    assert (context.service_account, context.jwt_private_key) == ("default/robot",
                                                                  "/keys/robot.pem")
    config.write_credentials(str(path), config.Context(), service_account="",
                             jwt_private_key="")
    assert config.resolve({}, {}, str(path)).service_account == ""
