"""A real OpenID Connect provider for tests: panva's ``oidc-provider`` on Node.js.

Use the session fixture ``oidc_provider`` (import it into a test module or a
conftest: ``from tests.oidc_provider import oidc_provider  # noqa: F401``). It installs
the npm package into ``tests/oidc/node_modules`` when missing (``npm ci``, idempotent),
starts ``tests/oidc/provider.js`` on a free port, waits for its discovery document and
yields an :class:`OidcProvider` whose ``issuer`` is the provider's URL.

The provider's clients and behaviour are described in ``tests/oidc/provider.js``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests

DIRECTORY = Path(__file__).parent / "oidc"
AUDIENCE = "urn:dispatch:api"
CLIENT = ("dispatch-test", "dispatch-test-secret")
#: a client whose access tokens live one second
SHORT_LIVED_CLIENT = ("dispatch-short", "dispatch-short-secret")
REDIRECT_URI = "http://127.0.0.1/callback"


def install() -> None:
    """``npm ci`` into tests/oidc/node_modules unless oidc-provider is there already."""
    if (DIRECTORY / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("Node.js 20+ and npm are needed for the OIDC provider tests "
                    "(apt-get install nodejs npm)", pytrace=False)
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=DIRECTORY,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"npm ci in {DIRECTORY} failed:\n{result.stderr[-2000:]}", pytrace=False)


@dataclasses.dataclass
class OidcProvider:
    """A running provider and the ways tests get tokens from it."""

    issuer: str
    audience: str = AUDIENCE

    @property
    def discovery(self) -> dict:
        return requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5).json()

    def client_credentials_token(self, client: tuple[str, str] = CLIENT) -> str:
        """An access token (a JWT for ``audience``) for the client itself (sub = client id)."""
        response = requests.post(f"{self.issuer}/token", auth=client, timeout=5, data={
            "grant_type": "client_credentials", "resource": self.audience, "scope": "dispatch"})
        response.raise_for_status()
        return response.json()["access_token"]

    def login(self, login: str, redirect_uri: str = REDIRECT_URI) -> dict:
        """The token response of a full authorization-code flow (with PKCE) in which the
        user ``login`` signs in on the provider's login page and consents: its
        ``access_token`` is a JWT for ``audience`` carrying the user's email, and its
        ``id_token`` names the user."""
        session = requests.Session()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        response = session.get(f"{self.issuer}/auth", allow_redirects=False, timeout=5, params={
            "client_id": CLIENT[0], "response_type": "code", "redirect_uri": redirect_uri,
            "scope": "openid email dispatch", "resource": self.audience, "state": state,
            "code_challenge": challenge, "code_challenge_method": "S256"})
        # the provider's pages: log in, then consent; each POST redirects back to /auth
        for prompt in ("login", "consent"):
            page = _follow(session, response, redirect_uri)
            action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
            assert action, f"no {prompt} form on the provider's page: {page.text[:500]}"
            form = {"prompt": prompt}
            if prompt == "login":
                form.update(login=login, password="any")
            response = session.post(urljoin(page.url, action.group(1)), data=form,
                                    allow_redirects=False, timeout=5)
            if _at_redirect_uri(response, redirect_uri):
                break
        callback = _follow(session, response, redirect_uri, final=True)
        query = parse_qs(urlparse(callback).query)
        assert query.get("state") == [state], f"unexpected callback {callback}"
        token = requests.post(f"{self.issuer}/token", auth=CLIENT, timeout=5, data={
            "grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": redirect_uri, "code_verifier": verifier,
            "resource": self.audience})
        token.raise_for_status()
        return token.json()


def _at_redirect_uri(response: requests.Response, redirect_uri: str) -> bool:
    return response.is_redirect and response.headers["Location"].startswith(redirect_uri)


def _follow(session: requests.Session, response: requests.Response, redirect_uri: str,
            final: bool = False):
    """Follow the provider's redirects; stop at a page (a form), or — with ``final`` —
    return the URL it redirects to at ``redirect_uri`` (which nothing serves)."""
    for _ in range(10):
        if not response.is_redirect:
            assert not final, f"the flow ended on a page, not at the client: {response.text[:500]}"
            return response
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(redirect_uri):
            assert final, f"the provider redirected to the client early: {location}"
            return location
        response = session.get(location, allow_redirects=False, timeout=5)
    raise AssertionError("too many redirects in the authorization flow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int | None = None, redirect_uris: tuple[str, ...] = (),
          log_path: Path | None = None):
    """Start the provider; return ``(process, OidcProvider)`` once it serves discovery."""
    install()
    port = port or _free_port()
    command = ["node", str(DIRECTORY / "provider.js"), "--port", str(port),
               "--audience", AUDIENCE]
    for uri in redirect_uris:
        command += ["--redirect-uri", uri]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log,
                               env={**os.environ, "NODE_ENV": "test"})
    issuer = json.loads(process.stdout.readline() or "{}").get("issuer")
    deadline = time.monotonic() + 20
    while True:
        if issuer and process.poll() is None:
            try:
                if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1).ok:
                    return process, OidcProvider(issuer)
            except requests.RequestException:
                pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the OIDC provider did not start (see {log_path})", pytrace=False)
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory):
    """A running OIDC provider for the session (:class:`OidcProvider`)."""
    log_path = tmp_path_factory.mktemp("oidc") / "provider.log"
    process, provider = start(log_path=log_path)
    try:
        yield provider
    finally:
        stop(process)
