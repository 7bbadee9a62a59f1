"""Key pairs, hand-made tokens and the store fixture shared by the identity tests (keys
are generated once: RSA key generation is the slow part)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from engine.store import open_store


@functools.lru_cache(maxsize=None)
def rsa_key(bits: int = 2048, which: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def public_b64(key) -> str:
    return base64.b64encode(public_pem(key)).decode()


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_token(claims: dict, secret: bytes) -> str:
    """An HS256 token keyed with ``secret`` (PyJWT itself refuses a PEM as HMAC key: this
    is the attacker's hand-made version of the classic key-confusion attack)."""
    signing_input = ".".join(_b64url(json.dumps(part).encode()) for part in
                             ({"alg": "HS256", "typ": "JWT"}, claims))
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def unsigned_token(claims: dict) -> str:
    """An ``alg: none`` token."""
    header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}."


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    """The identity services' store: memory and SQLite."""
    store = open_store("memory://" if request.param == "memory"
                       else f"sqlite:///{tmp_path / 'dispatch.db'}")
    yield store
    store.close()
