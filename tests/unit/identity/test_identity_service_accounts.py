"""Service accounts: key validation, and RS256 tokens verified locally — every way a
token can be wrong is refused with its own error, whose message never holds the token."""

from __future__ import annotations

import base64
import logging
import time

import jwt
import pytest

from engine.errors import Conflict, InvalidInput, NotFound
from engine.identity.errors import (
    BadSignature, LifetimeTooLong, MalformedToken, MissingClaim, TokenExpired,
    TokenNotYetValid, Unauthenticated, UnknownIssuer, UnsupportedAlgorithm,
)
from engine.identity.principal import Principal
from engine.identity.service_accounts import ServiceAccountService, issue_token

from tests.waiting import raises, settles

from ..identity_keys import (  # store: the fixture
    ec_key, hmac_token, private_pem, public_b64, public_pem, rsa_key, store, unsigned_token,
)

ORG = "acme"


@pytest.fixture
def accounts(store):
    service = ServiceAccountService(store)
    service.create(ORG, {"name": "ci", "publicKey": public_b64(rsa_key())})
    yield service
    service.close()


def claims(**overrides):
    now = int(time.time())
    values = {"iss": f"{ORG}/ci", "iat": now, "exp": now + 600}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def signed(key=None, algorithm="RS256", **overrides) -> str:
    return jwt.encode(claims(**overrides), private_pem(key or rsa_key()), algorithm=algorithm)


# ---- keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("value, message", [
    (None, "publicKey is required"),
    ("", "publicKey is required"),
    ("not base64 at all!", "publicKey is not base64 encoded"),
    (base64.b64encode(b"hello world").decode(), "publicKey is not a public key in PEM format"),
])
def test_malformed_public_keys_are_refused_naming_the_field(store, value, message):
    with pytest.raises(InvalidInput, match=message):
        ServiceAccountService(store).create(ORG, {"name": "x", "publicKey": value})


def test_a_bare_pem_is_refused_with_a_hint_to_encode_it(store):
    with pytest.raises(InvalidInput, match="not base64 encoded.*base64-encode it"):
        ServiceAccountService(store).create(
            ORG, {"name": "x", "publicKey": public_pem(rsa_key()).decode()})


def test_a_key_that_is_not_rsa_is_refused(store):
    with pytest.raises(InvalidInput, match="publicKey is not an RSA key"):
        ServiceAccountService(store).create(ORG, {"name": "x", "publicKey": public_b64(ec_key())})


def test_an_rsa_key_under_2048_bits_is_refused(store):
    with pytest.raises(InvalidInput, match="1024-bit RSA key; at least 2048"):
        ServiceAccountService(store).create(
            ORG, {"name": "x", "publicKey": public_b64(rsa_key(1024))})


def test_nothing_is_stored_for_a_refused_key(store):
    with pytest.raises(InvalidInput):
        ServiceAccountService(store).create(ORG, {"name": "x", "publicKey": "###"})
    with pytest.raises(NotFound):
        ServiceAccountService(store).get(ORG, "x")


def test_create_get_list_update_delete(store):
    service = ServiceAccountService(store)
    created = service.create(ORG, {"name": "ci", "publicKey": public_b64(rsa_key())})
    assert created["status"] == "READY" and created["kind"] == "ServiceAccount"
    assert created["domain"] == "svc.dispatch.local" and created["jwtAlgorithm"] == "RS256"
    with pytest.raises(Conflict, match="service account ci already exists"):
        service.create(ORG, {"name": "ci", "publicKey": public_b64(rsa_key())})
    assert [a["name"] for a in service.list(ORG)] == ["ci"]
    assert service.list("other") == []
    updated = service.update(ORG, "ci", {"publicKey": public_b64(rsa_key(2048, 1))})
    assert updated["publicKey"] == public_b64(rsa_key(2048, 1))
    service.delete(ORG, "ci")
    with pytest.raises(NotFound, match="service account ci not found"):
        service.get(ORG, "ci")


# ---- tokens ----------------------------------------------------------------------------


def test_a_token_signed_by_the_accounts_key_names_it(accounts):
    assert accounts.verify(signed()) == Principal(ORG, "ci", "serviceaccount")


def test_the_token_dispatchs_cli_issues_is_accepted(accounts):
    # iat a minute back, exp an hour ahead: 61 minutes of lifetime
    token = issue_token(private_pem(rsa_key()), ORG, "ci")
    assert accounts.verify(token).subject == "ci"


def bad_tokens():
    now = int(time.time())
    other = rsa_key(2048, 1)
    return {
        "alg none": (lambda: unsigned_token(claims()), UnsupportedAlgorithm, "'none'"),
        "HS256 keyed with the public key": (
            lambda: hmac_token(claims(), public_pem(rsa_key())), UnsupportedAlgorithm, "'HS256'"),
        "RS512 (not RS256)": (lambda: signed(algorithm="RS512"), UnsupportedAlgorithm, "'RS512'"),
        "another key": (lambda: signed(other), BadSignature, "does not verify with the key of acme/ci"),
        "expired": (lambda: signed(iat=now - 1200, exp=now - 600), TokenExpired, "has expired"),
        "iat in the future": (lambda: signed(iat=now + 600, exp=now + 1200), TokenNotYetValid,
                              "not valid yet"),
        "nbf in the future": (lambda: signed(nbf=now + 600), TokenNotYetValid, "not valid yet"),
        "no exp": (lambda: signed(exp=None), MissingClaim, "no exp claim"),
        "no iat": (lambda: signed(iat=None), MissingClaim, "no iat claim"),
        "no iss": (lambda: signed(iss=None), MissingClaim, "no iss claim"),
        "lifetime of two hours": (lambda: signed(exp=now + 7200), LifetimeTooLong,
                                  "lives 7200 s; at most 3600"),
        "unknown account": (lambda: signed(iss=f"{ORG}/nobody"), UnknownIssuer,
                            "'acme/nobody' is no service account"),
        "account of another org": (lambda: signed(iss="other/ci"), UnknownIssuer,
                                   "'other/ci' is no service account"),
        "issuer without org": (lambda: signed(iss="ci"), UnknownIssuer, "'ci' is no service"),
        "issuer with a path": (lambda: signed(iss="acme/../ci"), UnknownIssuer, "no service"),
        "not a JWT": (lambda: "definitely-not-a-token", MalformedToken, "not a JWT"),
        "three garbage parts": (lambda: "abc.def.ghi", MalformedToken, "not a JWT"),
    }


@pytest.mark.parametrize("case", list(bad_tokens()))
def test_a_bad_token_is_refused_with_its_reason_and_never_quoted(accounts, case, caplog):
    make, error, message = bad_tokens()[case]
    token = make()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error, match=message) as caught:
        accounts.verify(token)
    assert isinstance(caught.value, Unauthenticated)
    parts = [part for part in token.split(".") if len(part) > 8]
    assert not any(part in caught.value.message or part in caplog.text for part in parts)


def test_a_forged_issuer_cannot_forge_log_lines(accounts, caplog):
    token = signed(iss="acme/x\nauthz.allowed subject=admin" + "y" * 500)
    with pytest.raises(UnknownIssuer) as caught:
        accounts.verify(token)
    assert "\n" not in caught.value.message and len(caught.value.message) < 200


def test_a_small_leeway_forgives_clock_skew(accounts):
    now = int(time.time())
    assert accounts.verify(signed(iat=now + 30, exp=now + 600)).subject == "ci"
    assert accounts.verify(signed(iat=now - 600, exp=now - 30)).subject == "ci"


def test_a_rotated_key_replaces_the_old_one(store):
    ServiceAccountService(store).create(ORG, {"name": "ci", "publicKey": public_b64(rsa_key())})
    ServiceAccountService(store).update(ORG, "ci", {"publicKey": public_b64(rsa_key(2048, 1))})
    service = ServiceAccountService(store)
    try:
        assert service.verify(signed(rsa_key(2048, 1))).subject == "ci"
        with pytest.raises(BadSignature):
            service.verify(signed(rsa_key()))
    finally:
        service.close()


def test_a_deleted_account_stops_verifying(store):
    service = ServiceAccountService(store)
    service.create(ORG, {"name": "ci", "publicKey": public_b64(rsa_key())})
    service.delete(ORG, "ci")
    fresh = ServiceAccountService(store)
    try:
        with pytest.raises(UnknownIssuer):
            fresh.verify(signed())
    finally:
        fresh.close()
        service.close()


def test_verification_reads_the_cache_not_the_store(accounts, store, monkeypatch):
    accounts.verify(signed())  # starts the cache
    settles(lambda: accounts._cache.get(ORG, "ci") is not None,  # the watch catching up
            "the account never reached the cache")

    def unreachable(*args, **kwargs):
        raise AssertionError("verify went to the store")

    monkeypatch.setattr(store, "get", unreachable)
    assert accounts.verify(signed()).subject == "ci"


def test_an_account_created_after_the_cache_loaded_verifies_at_once(accounts):
    accounts.verify(signed())  # the cache is running
    accounts.create(ORG, {"name": "late", "publicKey": public_b64(rsa_key(2048, 1))})
    assert accounts.verify(signed(rsa_key(2048, 1), iss=f"{ORG}/late")).subject == "late"


def test_a_running_verifier_takes_a_new_key_at_once_and_drops_the_old_one(accounts, store):
    accounts.verify(signed())  # the cache holds the first key
    accounts.update(ORG, "ci", {"publicKey": public_b64(rsa_key(2048, 1))})
    # at once, even before the watch brings the change: the store is asked on a mismatch
    assert accounts.verify(signed(rsa_key(2048, 1))).subject == "ci"
    # the old key works at most until the watch delivers the update
    settles(lambda: raises(BadSignature, lambda: accounts.verify(signed())),
            "the old key kept working")


def test_a_running_verifier_drops_a_deleted_account(accounts):
    accounts.verify(signed())
    accounts.delete(ORG, "ci")
    settles(lambda: raises(UnknownIssuer, lambda: accounts.verify(signed())),
            "the deleted account kept verifying")


def test_a_verified_token_is_remembered_only_while_its_key_and_lifetime_hold(accounts,
                                                                             monkeypatch):
    token = signed()
    accounts.verify(token)  # starts the cache
    settles(lambda: accounts._cache.get(ORG, "ci") is not None,
            "the account never reached the cache")
    accounts.verify(token)
    decoded = []
    real = accounts._decode
    monkeypatch.setattr(accounts, "_decode", lambda t, a: decoded.append(t) or real(t, a))
    assert accounts.verify(token).subject == "ci" and decoded == []  # no signature check
    # past its exp (and the leeway), the memory no longer vouches for it
    exp = accounts._verified[token][0]
    monkeypatch.setattr(time, "time", lambda: exp + accounts.leeway + 1)
    assert accounts.remembered(token) is None and token not in accounts._verified
    monkeypatch.undo()
    accounts.verify(token)
    # a new key: the remembered token is checked again, against the new key, and fails
    accounts.update(ORG, "ci", {"publicKey": public_b64(rsa_key(2048, 1))})
    settles(lambda: accounts._cache.get(ORG, "ci")["publicKey"] == public_b64(rsa_key(2048, 1)),
            "the new key never reached the cache")
    with pytest.raises(BadSignature):
        accounts.verify(token)
