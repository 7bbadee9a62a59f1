"""OIDC bearer tokens: real access tokens from a real provider (oidc-provider on
Node.js), verified locally against its JWKS; wrong issuer, audience, expiry, signature
and algorithm refused with their own errors; the issuer configuration checked."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from engine.errors import InvalidInput, Unavailable
from engine.identity.authenticator import Authenticator
from engine.identity.authorizer import Authorizer
from engine.identity.errors import (
    BadSignature, MissingCredentials, TokenExpired, UnknownIssuer, UnsupportedAlgorithm,
    WrongAudience,
)
from engine.identity.oidc import OidcIssuer, OidcVerifier, parse_issuers
from engine.identity.policies import PolicyService
from engine.identity.principal import Principal
from engine.identity.service_accounts import ServiceAccountService, issue_token
from engine.store import open_store
from tests.oidc_provider import AUDIENCE, SHORT_LIVED_CLIENT, oidc_provider  # noqa: F401

from ..identity_keys import hmac_token, private_pem, public_b64, rsa_key, unsigned_token


@pytest.fixture
def verifier(oidc_provider):
    return OidcVerifier([OidcIssuer(oidc_provider.issuer, AUDIENCE, "acme")], leeway=0)


def tampered(token: str, **changes) -> str:
    """The token with claims changed and its original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


def test_a_users_access_token_from_the_authorization_code_flow_names_the_user(
        oidc_provider, verifier):
    tokens = oidc_provider.login("alice")
    principal = verifier.verify(tokens["access_token"])
    assert principal == Principal("acme", "alice@example.test", "user")


def test_an_address_the_provider_has_not_verified_is_not_the_subject(oidc_provider, verifier):
    principal = verifier.verify(oidc_provider.login("unverified-eve")["access_token"])
    assert principal == Principal("acme", "unverified-eve", "user")
    assert principal.policy_subject == "user:unverified-eve"


def test_a_policy_naming_the_users_email_lets_the_user_in(oidc_provider, verifier, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'dispatch.db'}")
    authorizer = Authorizer(store)
    try:
        PolicyService(store).create("acme", {"name": "dev", "rules": [
            {"subjects": ["alice@example.test"], "resources": ["function"], "actions": ["*"]}]})
        alice = verifier.verify(oidc_provider.login("alice")["access_token"])
        bob = verifier.verify(oidc_provider.login("bob")["access_token"])
        assert authorizer.wait_until(lambda: authorizer.check(alice, "function", "create").allowed, 10)
        assert not authorizer.check(bob, "function", "create").allowed
        assert not authorizer.check(alice, "function", "create", org="other").allowed
    finally:
        authorizer.close()
        store.close()


def test_a_client_credentials_token_names_the_client_by_its_sub(oidc_provider, verifier):
    principal = verifier.verify(oidc_provider.client_credentials_token())
    assert principal == Principal("acme", "dispatch-test", "user")


def test_keys_are_discovered_from_the_issuer_when_no_jwks_uri_is_configured(
        oidc_provider, verifier):
    verifier.verify(oidc_provider.client_credentials_token())
    assert verifier._clients[oidc_provider.issuer].uri == oidc_provider.discovery["jwks_uri"]


def test_a_configured_jwks_uri_is_used_as_it_is(oidc_provider):
    jwks_uri = oidc_provider.discovery["jwks_uri"]
    verifier = OidcVerifier([OidcIssuer(oidc_provider.issuer, AUDIENCE, "acme", jwks_uri)])
    assert verifier.verify(oidc_provider.client_credentials_token()).org == "acme"


def test_a_tampered_token_fails_its_signature(oidc_provider, verifier):
    token = tampered(oidc_provider.login("alice")["access_token"], email="admin@example.test")
    with pytest.raises(BadSignature, match="does not verify"):
        verifier.verify(token)


def test_an_expired_token_is_refused(oidc_provider, verifier):
    token = oidc_provider.client_credentials_token(SHORT_LIVED_CLIENT)  # lives one second
    time.sleep(2.1)
    with pytest.raises(TokenExpired, match="has expired"):
        verifier.verify(token)


def test_a_token_for_another_audience_is_refused(oidc_provider):
    verifier = OidcVerifier([OidcIssuer(oidc_provider.issuer, "urn:someone:else", "acme")])
    with pytest.raises(WrongAudience, match="not meant for this API"):
        verifier.verify(oidc_provider.client_credentials_token())


def test_a_token_of_an_untrusted_issuer_is_refused(oidc_provider):
    verifier = OidcVerifier([OidcIssuer("https://login.example.com", AUDIENCE, "acme")])
    with pytest.raises(UnknownIssuer, match=f"{oidc_provider.issuer}' is not a trusted"):
        verifier.verify(oidc_provider.client_credentials_token())


def test_a_token_made_with_another_key_but_the_providers_kid_is_refused(oidc_provider, verifier):
    real = oidc_provider.client_credentials_token()
    header = jwt.get_unverified_header(real)
    forged = jwt.encode(jwt.decode(real, options={"verify_signature": False}),
                        private_pem(rsa_key()), algorithm="RS256", headers={"kid": header["kid"]})
    with pytest.raises(BadSignature):
        verifier.verify(forged)


def test_an_unknown_kid_is_refused(oidc_provider, verifier):
    claims = jwt.decode(oidc_provider.client_credentials_token(), options={"verify_signature": False})
    forged = jwt.encode(claims, private_pem(rsa_key()), algorithm="RS256", headers={"kid": "mine"})
    with pytest.raises(BadSignature, match="no key of .* matches"):
        verifier.verify(forged)


def test_symmetric_and_unsigned_tokens_are_refused(oidc_provider, verifier):
    claims = jwt.decode(oidc_provider.client_credentials_token(), options={"verify_signature": False})
    for token in (unsigned_token(claims), hmac_token(claims, b"secret")):
        with pytest.raises(UnsupportedAlgorithm):
            verifier.verify(token)


def test_a_provider_that_does_not_answer_is_unavailable_not_unauthenticated(oidc_provider):
    verifier = OidcVerifier([OidcIssuer(oidc_provider.issuer, AUDIENCE, "acme",
                                        "http://127.0.0.1:9/jwks")], timeout=1)
    with pytest.raises(Unavailable, match="cannot be read"):
        verifier.verify(oidc_provider.client_credentials_token())


def test_the_authenticator_routes_tokens_by_issuer(oidc_provider, verifier, tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'dispatch.db'}")
    accounts = ServiceAccountService(store)
    try:
        accounts.create("acme", {"name": "ci", "publicKey": public_b64(rsa_key())})
        authenticator = Authenticator(accounts, verifier)
        user = authenticator.authenticate(f"Bearer {oidc_provider.login('bob@corp.test')['access_token']}")
        assert user == Principal("acme", "bob@corp.test", "user")
        account = authenticator.authenticate(
            "bearer " + issue_token(private_pem(rsa_key()), "acme", "ci"))
        assert account == Principal("acme", "ci", "serviceaccount")
        for header in (None, "", "Basic dXNlcjpwYXNz", "Bearer "):
            with pytest.raises(MissingCredentials):
                authenticator.authenticate(header)
        # without OIDC configured, a provider's token is just an unknown issuer
        with pytest.raises(UnknownIssuer):
            Authenticator(accounts).authenticate(f"Bearer {oidc_provider.client_credentials_token()}")
    finally:
        accounts.close()
        store.close()


# ---- configuration ---------------------------------------------------------------------


def test_issuers_are_read_from_json():
    issuers = parse_issuers('[{"issuer": "https://a.example", "audience": "api", '
                            '"organization": "acme"}, {"issuer": "https://b.example", '
                            '"audience": "api", "organization": "beta", "jwks_uri": "https://b/k"}]')
    assert issuers == [OidcIssuer("https://a.example", "api", "acme"),
                       OidcIssuer("https://b.example", "api", "beta", "https://b/k")]
    assert parse_issuers(None) == [] and parse_issuers("") == []


@pytest.mark.parametrize("config, message", [
    ("{", "not valid JSON"),
    ('{"issuer": "x"}', "must be a list"),
    ('[{"issuer": "https://a", "audience": "api"}]', r"issuers\[0\].organization is required"),
    ('[{"issuer": "a.example", "audience": "api", "organization": "o"}]', "http\\(s\\) URL"),
    ('[{"issuer": "https://a", "audience": "api", "organization": "o", "extra": 1}]',
     "unknown fields: extra"),
    ('[{"issuer": "https://a", "audience": "x", "organization": "o"},'
     ' {"issuer": "https://a", "audience": "y", "organization": "p"}]', "listed twice"),
])
def test_bad_issuer_configuration_is_refused_naming_the_entry(config, message):
    with pytest.raises(InvalidInput, match=message):
        parse_issuers(config)
