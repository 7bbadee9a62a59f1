"""Identity in the distributed deployment: the Procfile's ``api`` process (gunicorn, two
workers) on a real etcd and Redis, with auth on and the admin's public key from
``DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE``. Several api processes bootstrapping at once, and
restarts, leave one admin; a new key in the file rotates the admin's key; a file
without a key keeps the process unready, saying why."""

from __future__ import annotations

import os

import pytest
import redis
import requests
from cryptography.fernet import Fernet

from tests.unit.identity_keys import private_pem, public_pem, rsa_key

from .conftest import Processes, free_port, wait_until
from .identity_client import Bearer, Client

REDIS_DB = 15


def api_env(etcd_endpoint, tmp_path, key_file, port) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env.update(DISPATCH_STORE=f"etcd://{etcd_endpoint}",
               DISPATCH_BROKER=f"redis://127.0.0.1:6379/{REDIS_DB}",
               DISPATCH_HOME=str(tmp_path / "home"),
               DISPATCH_API_BIND=f"127.0.0.1:{port}",
               DISPATCH_SECRET_KEY=Fernet.generate_key().decode(),
               DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE=str(key_file))
    return env


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def cluster(etcd_endpoint, tmp_path):
    """Starts api processes; ``start(port)`` → the URL; all stopped at the end."""
    redis.Redis(db=REDIS_DB).flushdb()
    key_file = tmp_path / "admin.pub"
    started: list[Processes] = []

    def start(port: int | None = None, wait: bool = True) -> str:
        port = port or free_port()
        logdir = tmp_path / f"logs-{port}-{len(started)}"
        logdir.mkdir()
        processes = Processes(api_env(etcd_endpoint, tmp_path, key_file, port), logdir)
        processes.start("api")
        started.append(processes)
        url = f"http://127.0.0.1:{port}"
        if wait:
            wait_until(lambda: healthy(url), 60, what=f"api at {url}\n{processes.logs()}")
        return url

    def stop_all():
        while started:
            started.pop().stop_all()

    start.key_file, start.stop_all, start.started = key_file, stop_all, started
    yield start
    stop_all()


def admin(url: str, key) -> Client:
    return Client(url, Bearer(private_pem(key), "default", "admin"))


def names(client: Client, path: str, org: str = "default") -> list[str]:
    r = client.get(path, org=org)
    assert r.status_code == 200, r.text
    return [e["name"] for e in r.json()]


def test_the_admin_comes_from_the_key_file_once_and_rotates_with_it(cluster):
    key = rsa_key(2048, 21)
    cluster.key_file.write_bytes(public_pem(key))
    # two api processes (of two gunicorn workers each) bootstrap at once
    first, second = cluster(), cluster()
    for url in (first, second):
        assert requests.get(f"{url}/v1/function").status_code == 401
        r = requests.get(f"{url}/v1/function", headers={"Cookie": "unset"})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        client = admin(url, key)
        assert client.get("/v1/function").status_code == 200
        assert names(client, "/v1/iam/serviceaccount") == ["admin"]
        assert names(client, "/v1/iam/policy") == ["admin"]
        assert names(client, "/v1/iam/organization").count("default") == 1
    # the admin's work is shared: an org made through one process is known to the other
    assert admin(first, key).post("/v1/iam/organization", json={"name": "shared"}
                                  ).status_code in (201, 409)
    assert admin(second, key).get("/v1/function", org="shared").status_code == 200

    # a restart with a new key in the file: the old key is void, still one admin
    cluster.stop_all()
    new_key = rsa_key(2048, 22)
    cluster.key_file.write_bytes(public_pem(new_key))
    url = cluster()
    assert admin(url, new_key).get("/v1/function").status_code == 200
    r = admin(url, key).get("/v1/function")
    assert r.status_code == 401 and "does not verify" in r.json()["message"]
    assert names(admin(url, new_key), "/v1/iam/serviceaccount") == ["admin"]
    assert names(admin(url, new_key), "/v1/iam/policy") == ["admin"]


def test_a_key_file_without_a_key_fails_readiness_naming_it(cluster):
    """No crash loop: the process stays up, unready, says why once (per gunicorn
    worker) and answers every request but its health with 503 and the reason."""
    cluster.key_file.write_text("not a key")
    url = cluster(wait=False)
    processes = cluster.started[-1]
    reason = f"bootstrap public key file {cluster.key_file}"

    def problems():
        try:
            answer = requests.get(f"{url}/readyz", timeout=5)
        except requests.RequestException:
            return None
        return answer.json()["problems"] if answer.status_code == 503 else None

    found = wait_until(problems, 60, what=f"the api's /readyz\n{processes.logs()}")
    assert any(p.startswith(f"startup: {reason}") for p in found), found
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200  # live
    refused = requests.get(f"{url}/v1/function", timeout=5)
    assert refused.status_code == 503 and reason in refused.json()["message"]
    assert processes.procs["api"].poll() is None  # up, not crash-looping
    logged = processes.logs().count(f"startup.failed role=api engine: {reason}")
    assert 1 <= logged <= 2  # once per gunicorn worker, not at every probe
