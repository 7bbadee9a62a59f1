"""The original Dispatch CLI (v0.1.24, Go, unmodified) against this server, with
authentication on: log in as a service account, then functions, runs, secrets, APIs and
identity, as Dispatch's own e2e scenarios drive it (login.bats, functions.bats,
secrets.bats, apis.bats).

The binary comes from the peers folder beside the checkout
(``../shared/peers/dispatch-original/bin/dispatch.gz``, unpacked here) or from
``$DISPATCH_ORIGINAL_CLI`` (the binary or its ``.gz``); without it these tests are
skipped, saying so.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from api.embedded import start_embedded
from tests.unit.identity_keys import private_pem, public_pem, rsa_key

ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "DISPATCH_ORIGINAL_CLI"
CANDIDATES = (ROOT.parent / "shared" / "peers" / "dispatch-original" / "bin" / "dispatch.gz",)

HELLO = '''\
def handle(ctx, payload):
    return {"myField": "Hello, %s from %s" % (payload.get("name", "Noone"),
                                             payload.get("place", "Nowhere"))}
'''


def original_binary() -> Path | None:
    """The original CLI's binary (or its .gz): ``$DISPATCH_ORIGINAL_CLI``, else the peers
    folder beside the checkout."""
    given = os.environ.get(ENV_VAR)
    if given:
        return Path(given)
    return next((path for path in CANDIDATES if path.exists()), None)


@pytest.fixture(scope="module")
def original_cli(tmp_path_factory) -> Path:
    found = original_binary()
    if found is None:
        pytest.skip(f"the original Dispatch CLI is absent: neither ${ENV_VAR} nor "
                    f"{CANDIDATES[0]} exists")
    if not found.exists():
        pytest.fail(f"${ENV_VAR} names {found}, which does not exist", pytrace=False)
    binary = tmp_path_factory.mktemp("original") / "dispatch"
    if found.suffix == ".gz":
        with gzip.open(found, "rb") as packed, open(binary, "wb") as out:
            shutil.copyfileobj(packed, out)
    else:
        shutil.copyfile(found, binary)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2)
    yield server
    server.stop()


class Original:
    """Runs the original CLI at the server, as a user would: its own HOME, and its config
    in the default place (``~/.dispatch/config.json``, which its login writes)."""

    def __init__(self, binary: Path, server, home: Path):
        self.binary, self.server, self.home = binary, server, home
        (home / ".dispatch").mkdir(parents=True, exist_ok=True)
        self.config = home / ".dispatch" / "config.json"
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}

    def __call__(self, *args, expect: int | None = 0, org: str | None = None):
        flags = ["--host", "127.0.0.1", "--port", str(self.server.port), "--scheme", "http"]
        if org:
            flags += ["--organization", org]
        done = subprocess.run([str(self.binary), *map(str, args), *flags], env=self.env,
                              cwd=self.home, capture_output=True, text=True, timeout=120)
        if expect is not None:
            assert done.returncode == expect, (
                f"original dispatch {' '.join(map(str, args))} exited {done.returncode}, "
                f"expected {expect}\nstdout: {done.stdout}\nstderr: {done.stderr}")
        return done

    def json(self, *args, **kw):
        return json.loads(self(*args, "--json", **kw).stdout)

    def settled(self, kind: str, name: str, timeout: float = 60.0) -> dict:
        """Dispatch's e2e ``run_with_retry "dispatch get KIND NAME --json | jq .status"``."""
        deadline = time.monotonic() + timeout
        while True:
            entity = self.json("get", kind, name)
            if entity.get("status") in ("READY", "ERROR") or time.monotonic() > deadline:
                return entity
            time.sleep(0.2)


@pytest.fixture
def original(original_cli, server, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return Original(original_cli, server, home)


@pytest.fixture
def logged_in(original, server):
    """The original CLI logged in as the server's admin."""
    done = original("login", "--service-account", "admin", "--jwt-private-key",
                    server.admin_key_path, org="default")
    assert "successfully logged in" in done.stdout
    return original


def test_login_as_a_service_account_then_commands_are_signed(original, server):
    refused = original("get", "functions", expect=1)  # not logged in yet: the server's 401
    assert "authentication required" in refused.stdout + refused.stderr

    done = original("login", "--service-account", "admin", "--jwt-private-key",
                    server.admin_key_path, org="default")

    assert "successfully logged in" in done.stdout
    context = json.loads(original.config.read_text())
    stored = context["contexts"][context["current"]]
    assert stored["serviceaccount"] == "admin" and stored["organization"] == "default"
    assert original.json("get", "functions") == []
    original("logout")
    refused = original("get", "functions", expect=1)
    assert "authentication required" in refused.stdout + refused.stderr


def test_login_with_an_unknown_account_or_a_wrong_key_fails(original, server, tmp_path):
    # login.bats: "Login with invalid service account" / "... with invalid private key"
    original("login", "--service-account", "nobody", "--jwt-private-key",
             server.admin_key_path, org="default", expect=1)
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(private_pem(rsa_key(2048, 3)))
    original("login", "--service-account", "admin", "--jwt-private-key", wrong,
             org="default", expect=1)
    assert not original.config.exists() or "serviceaccount" not in original.config.read_text()


def test_a_new_service_account_with_a_policy_logs_in(logged_in, tmp_path):
    # login.bats with helpers.bash's create_test_svc_account
    name = f"login-{uuid.uuid4().hex[:6]}"
    key = rsa_key(2048, 4)
    (tmp_path / "private.key").write_bytes(private_pem(key))
    (tmp_path / "public.key").write_bytes(public_pem(key))
    logged_in("iam", "create", "serviceaccount", f"{name}-user", "--public-key",
              tmp_path / "public.key")
    logged_in("iam", "create", "policy", f"{name}-policy", "--subject", f"{name}-user",
              "--action", "*", "--resource", "*")

    logged_in("login", "--service-account", f"{name}-user", "--jwt-private-key",
              tmp_path / "private.key", org="default")
    assert isinstance(logged_in.json("get", "functions"), list)

    logged_in("login", "--service-account", "admin", "--jwt-private-key",
              logged_in.server.admin_key_path, org="default")
    logged_in("iam", "delete", "serviceaccount", f"{name}-user")
    logged_in("iam", "delete", "policy", f"{name}-policy")


def test_functions_runs_secrets_and_apis(logged_in, server, tmp_path):
    name = f"hello-{uuid.uuid4().hex[:6]}"
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "hello.py").write_text(HELLO)

    logged_in("create", "function", "--image=python3", name, tmp_path / "fn",
              "--handler=hello.handle")
    assert logged_in.settled("function", name)["status"] == "READY"

    run = logged_in.json("exec", name, "--input", '{"name": "Jon", "place": "Winterfell"}',
                         "--wait")
    assert run["output"]["myField"] == "Hello, Jon from Winterfell"
    assert any(r["name"] == run["name"] for r in logged_in.json("get", "runs", name))

    # secrets.bats: the values come back with --json
    (tmp_path / "secret.json").write_text('{"username": "admin", "password": "OpenSesame"}')
    secret = f"open-sesame-{uuid.uuid4().hex[:6]}"
    logged_in("create", "secret", secret, tmp_path / "secret.json")
    assert logged_in.json("get", "secret", secret)["secrets"]["password"] == "OpenSesame"

    # apis.bats: blocking by default; `x-dispatch-blocking: false` answers an empty body
    api = f"api-{uuid.uuid4().hex[:6]}"
    logged_in("create", "api", api, name, "-m", "PUT", "-p", f"/{api}", "-a", "public")
    assert logged_in.settled("api", api)["status"] == "READY"
    url = f"{server.url}/default/{api}"
    answer = requests.put(url, json={"name": "VMware", "place": "Palo Alto"}, timeout=60)
    assert answer.json()["myField"] == "Hello, VMware from Palo Alto"
    queued = requests.put(url, json={"name": "VMware", "place": "Palo Alto"}, timeout=60,
                          headers={"x-dispatch-blocking": "false"})
    assert queued.status_code == 200 and queued.content == b""
    run_name = queued.headers["X-Dispatch-Run"]
    assert logged_in.json("get", "run", name, run_name)["name"] == run_name

    logged_in("delete", "api", api)
    logged_in("delete", "secret", secret)
    logged_in("delete", "function", name)
