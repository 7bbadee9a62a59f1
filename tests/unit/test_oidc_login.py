"""The browser login's configuration and its guards against open redirects and token
exfiltration (api/oidc_login.py); the flow itself runs against a real provider in
tests/e2e/test_oidc_login.py."""

from __future__ import annotations

import json

import pytest

from api.oidc_login import (loopback_url, parse_client, principal_of, safe_next,
                            with_query)
from engine.errors import InvalidInput
from engine.identity.principal import Principal

CLIENT = {"issuer": "https://login.example.com", "client_id": "dispatch",
          "client_secret": "s3cret", "organization": "default"}


def test_a_client_is_read_from_json_and_its_secret_never_shown():
    client = parse_client(json.dumps(CLIENT))
    assert (client.issuer, client.client_id, client.organization) == (
        "https://login.example.com", "dispatch", "default")
    assert client.scopes == "openid email"
    assert client.token_endpoint_auth_method == "client_secret_basic"
    assert "s3cret" not in repr(client)


@pytest.mark.parametrize("config", [None, ""])
def test_no_client_is_no_login(config):
    assert parse_client(config) is None


@pytest.mark.parametrize("config, says", [
    ("{not json", "DISPATCH_OIDC_CLIENT is not valid JSON"),
    ("[]", "must be an object"),
    (dict(CLIENT, issuer=""), "DISPATCH_OIDC_CLIENT.issuer is required"),
    ({k: v for k, v in CLIENT.items() if k != "client_secret"},
     "DISPATCH_OIDC_CLIENT.client_secret is required"),
    (dict(CLIENT, organization=7), "DISPATCH_OIDC_CLIENT.organization is required"),
    (dict(CLIENT, issuer="login.example.com"), "issuer must be an http(s) URL"),
    (dict(CLIENT, organization="no/slash"), "DISPATCH_OIDC_CLIENT.organization 'no/slash'"),
    (dict(CLIENT, scopes="email"), "scopes must include openid"),
    (dict(CLIENT, redirect_uri=["x"]), "redirect_uri must be a string"),
    (dict(CLIENT, audience="x"), "unknown fields: audience"),
])
def test_a_bad_client_names_the_field(config, says):
    with pytest.raises(InvalidInput) as exc:
        parse_client(json.dumps(config) if isinstance(config, dict) else config)
    assert says in exc.value.message
    assert "s3cret" not in exc.value.message


@pytest.mark.parametrize("value", ["/", "/v1/function", "/v1/iam/redirect?redirect="
                                   "http://127.0.0.1:5000/catcher", "/a:b"])
def test_next_may_be_any_path_of_this_server(value):
    assert safe_next(value) == value


def test_no_next_is_the_root():
    assert safe_next(None) == "/" and safe_next("") == "/"


@pytest.mark.parametrize("value", ["//evil.example", "///evil.example", "/\\evil.example",
                                   "http://evil.example/", "https:evil.example",
                                   "javascript:alert(1)", "evil.example/x", "/a\nb",
                                   "/a b", "/" + "a" * 3000])
def test_next_may_not_leave_this_server(value):
    with pytest.raises(InvalidInput) as exc:
        safe_next(value)
    assert "next must be a path on this server" in exc.value.message


@pytest.mark.parametrize("value", ["http://127.0.0.1:4567/catcher", "http://localhost:80/x",
                                   "http://127.0.0.1/catcher?state=1"])
def test_the_session_goes_to_loopback_urls(value):
    assert loopback_url(value) == value


@pytest.mark.parametrize("value, says", [
    (None, "redirect is required"),
    ("http://evil.example/catcher", "loopback"),
    ("https://127.0.0.1:4567/catcher", "loopback"),
    ("http://127.0.0.1.evil.example/", "loopback"),
    ("http://user@127.0.0.1/", "loopback"),
    ("http://127.0.0.1:80@evil.example/", "loopback"),
    ("http://127.0.0.1:port/", "malformed port"),
    ("http://[::1]:5000/", "loopback"),
    ("file:///etc/passwd", "loopback"),
])
def test_the_session_never_goes_elsewhere(value, says):
    with pytest.raises(InvalidInput) as exc:
        loopback_url(value)
    assert says in exc.value.message


def test_the_cookie_is_added_to_the_query():
    assert with_query("http://127.0.0.1:1/c?a=1#frag", cookie="s=x y") == \
        "http://127.0.0.1:1/c?a=1&cookie=s%3Dx+y"


def test_a_profile_names_its_user_by_verified_email_else_sub():
    token = {"userinfo": {"sub": "u1"}}
    assert principal_of({"sub": "u1", "email": "a@x.test", "email_verified": True}, token,
                        "acme") == Principal("acme", "a@x.test", "user")
    assert principal_of({"sub": "u1", "email": "a@x.test"}, token, "acme").subject == "a@x.test"
    unverified = principal_of({"sub": "u1", "email": "a@x.test", "email_verified": False},
                              token, "acme")
    assert unverified.subject == "u1" and unverified.policy_subject == "user:u1"


@pytest.mark.parametrize("profile, token", [
    (None, None),
    ({}, {}),
    ({"email_verified": True}, {}),
    # userinfo about someone else than the ID token (OIDC Core §5.3.2)
    ({"sub": "u2", "email": "b@x.test"}, {"userinfo": {"sub": "u1"}}),
])
def test_a_profile_that_names_nobody_gives_no_principal(profile, token):
    assert principal_of(profile, token, "acme") is None


def app_with(tmp_path, **settings):
    from types import SimpleNamespace

    from flask import Flask

    from api.oidc_login import register
    from engine.settings import Settings

    app = Flask("test")
    app.extensions["dispatch"] = SimpleNamespace(
        settings=Settings.from_env({}, home=str(tmp_path), **settings))
    register(app)
    return app


def test_without_a_client_the_login_routes_say_it_is_not_configured(tmp_path):
    client = app_with(tmp_path).test_client()
    for path in ("/oidc/login?next=/", "/oidc/authorize", "/v1/iam/redirect?redirect=x"):
        r = client.get(path)
        assert r.status_code == 404 and "browser login is not configured" in r.json["message"]


def test_a_client_without_a_session_secret_stops_start_up(tmp_path):
    with pytest.raises(InvalidInput) as exc:
        app_with(tmp_path, oidc_client=json.dumps(CLIENT))
    assert "DISPATCH_SESSION_SECRET is required" in exc.value.message
