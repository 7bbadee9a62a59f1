"""`dispatch login` through the browser, end to end: a real OIDC provider (panva's
``oidc-provider`` on Node.js, tests/oidc), an embedded Dispatch with browser login
configured, and a scripted browser (tests/oidc_browser.py) as ``$BROWSER``.

``dispatch login`` runs as a process of its own here, as a user runs it: Python's
``webbrowser`` reads ``$BROWSER`` once per process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from api.embedded import start_embedded
from cli import config
from tests import oidc_provider

ROOT = Path(__file__).resolve().parents[2]
BROWSER = f"{sys.executable} {ROOT / 'tests' / 'oidc_browser.py'} %s"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def oidc_server(tmp_path_factory):
    """An embedded Dispatch whose browser login goes to a provider of its own."""
    port = _free_port()
    process, provider = oidc_provider.start(
        redirect_uris=(f"http://127.0.0.1:{port}/oidc/authorize",),
        log_path=tmp_path_factory.mktemp("oidc") / "provider.log")
    client_id, secret = oidc_provider.CLIENT
    server = start_embedded(
        str(tmp_path_factory.mktemp("home")), port=port,
        oidc_client=json.dumps({"issuer": provider.issuer, "client_id": client_id,
                                "client_secret": secret, "organization": "default"}))
    yield server
    server.stop()
    oidc_provider.stop(process)


@pytest.fixture
def at_oidc_server(oidc_server, monkeypatch):
    monkeypatch.setenv("DISPATCH_PORT", str(oidc_server.port))
    return oidc_server


def login_process(*args: str, login: str = "alice", browser: str = BROWSER,
                  log: Path | None = None) -> subprocess.CompletedProcess:
    """``dispatch login ARGS…`` in a process of its own, with the scripted browser."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BROWSER": browser,
           "OIDC_TEST_LOGIN": login}
    if log is not None:
        env["OIDC_TEST_BROWSER_LOG"] = str(log)
    return subprocess.run([sys.executable, "-m", "cli.main", "login", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def as_admin(server) -> tuple[str, ...]:
    return ("--service-account", "admin", "--jwt-private-key", server.admin_key_path)


def test_browser_login_stores_the_session_and_later_commands_are_that_user(
        dispatch, at_oidc_server, tmp_path):
    user = f"u{uuid.uuid4().hex[:8]}"
    email = f"{user}@example.test"  # what the test provider says a login's email is
    dispatch("iam", "create", "policy", f"read-{user}", "-s", email, "-r", "function",
             "-a", "get", *as_admin(at_oidc_server))

    done = login_process("--timeout", "60", login=user, log=tmp_path / "browser.log")

    assert done.returncode == 0, (done.stdout, done.stderr,
                                  (tmp_path / "browser.log").read_text()
                                  if (tmp_path / "browser.log").exists() else "")
    assert "Logged in through the browser" in done.stdout
    stored = config.current_context(config.read_file(os.environ["DISPATCH_CONFIG"]))
    assert stored["cookie"].startswith("dispatch_session=")
    assert "serviceAccount" not in stored and "jwtPrivateKey" not in stored

    assert dispatch.json("get", "functions") == []  # the cookie, and the user's policy
    refused = dispatch("get", "secrets", expect=1)  # no policy allows secrets
    assert email in refused.stderr

    dispatch("logout")
    assert "dispatch login" in dispatch("get", "functions", expect=1).stderr


def test_browser_login_replaces_a_service_account_login(dispatch, at_oidc_server):
    dispatch("login", *as_admin(at_oidc_server))

    done = login_process("--timeout", "60")

    assert done.returncode == 0, done.stderr
    stored = config.current_context(config.read_file(os.environ["DISPATCH_CONFIG"]))
    assert "serviceAccount" not in stored and stored["cookie"]


def test_a_browser_that_never_comes_back_times_out_and_stores_nothing(
        dispatch, at_oidc_server):
    done = login_process("--timeout", "1", browser="true")  # opens nothing

    assert done.returncode == 1
    assert "no login within 1 s" in done.stderr
    assert config.read_file(os.environ["DISPATCH_CONFIG"]) == {}


def test_no_browser_prints_the_address_of_the_login(dispatch, at_oidc_server):
    done = login_process("--no-browser", "--timeout", "1")

    assert done.returncode == 1
    address = f"{at_oidc_server.url}/oidc/login?next=%2Fv1%2Fiam%2Fredirect%3Fredirect%3D"
    assert address in done.stderr
    assert "http%253A%252F%252F127.0.0.1%253A" in done.stderr  # the catcher, encoded twice


def test_a_server_without_browser_login_says_so_at_once(dispatch, monkeypatch,
                                                        tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0)
    try:
        monkeypatch.setenv("DISPATCH_PORT", str(server.port))
        result = dispatch("login", "--no-browser", "--timeout", "600", expect=1)
    finally:
        server.stop()
    assert "offers no browser login" in result.stderr
    assert "not configured" in result.stderr
