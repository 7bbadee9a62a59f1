"""HTTP clients that authenticate as Dispatch's CLI does: a fresh RS256 JWT per request,
signed with PyJWT by a service account's private key (``iss = <org>/<account>``)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import jwt
import requests

from tests.unit.identity_keys import private_pem, public_pem


def sign(private_key_pem: bytes, org: str, account: str, **claims) -> str:
    """A token as Dispatch's CLI made them (iat a minute back, one hour), claims
    overridable (``exp=…``; ``iss=None`` drops the claim)."""
    now = int(time.time())
    body = {"iss": f"{org}/{account}", "iat": now - 60, "exp": now + 3600, **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, private_key_pem, algorithm="RS256")


class Bearer(requests.auth.AuthBase):
    def __init__(self, private_key_pem: bytes, org: str, account: str):
        self.key, self.org, self.account = private_key_pem, org, account

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {sign(self.key, self.org, self.account)}"
        return request


class Client:
    """One principal's view of the API: ``client.get("/v1/function", org="acme")``
    (``org`` sets ``X-Dispatch-Org``; left out, the principal's own org applies)."""

    def __init__(self, base: str, auth: requests.auth.AuthBase | None = None):
        self.base = base
        self.session = requests.Session()
        self.session.auth = auth

    def request(self, method: str, path: str, org: str | None = None, **kwargs):
        headers = dict(kwargs.pop("headers", None) or {})
        if org is not None:
            headers["X-Dispatch-Org"] = org
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.base + path, headers=headers, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def admin_client(server) -> Client:
    """The embedded server's bootstrap admin, from the key ``dispatch up`` wrote."""
    key = Path(server.admin_key_path).read_bytes()
    return Client(server.url, Bearer(key, server.admin_org, server.admin_account))


def public_key_b64(key) -> str:
    return base64.b64encode(public_pem(key)).decode()


def account_client(admin: Client, org: str, account: str, key) -> Client:
    """Create service account ``org/account`` with ``key``'s public half (as the admin)
    and return a client signing with ``key``."""
    r = admin.post("/v1/iam/serviceaccount", org=org,
                   json={"name": account, "publicKey": public_key_b64(key)})
    assert r.status_code == 201, r.text
    return Client(admin.base, Bearer(private_pem(key), org, account))
