"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

#: set to host:port to run the etcd tests against an etcd you started yourself
ETCD_ENV = "DISPATCH_TEST_ETCD"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(client_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{client_url}/health", timeout=0.5) as response:
            return b'"true"' in response.read()
    except OSError:
        return False


@pytest.fixture(scope="session")
def etcd_endpoint(tmp_path_factory: pytest.TempPathFactory):
    """``host:port`` of a private, single-node etcd, started once for the session."""
    if os.environ.get(ETCD_ENV):
        yield os.environ[ETCD_ENV]
        return
    binary = shutil.which("etcd")
    if binary is None:
        pytest.fail(
            "etcd is not installed: run deploy/dev-services.sh (or apt-get install "
            f"etcd-server), or set {ETCD_ENV}=host:port to use a running etcd",
            pytrace=False,
        )
    client_port, peer_port = _free_port(), _free_port()
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    data_dir = tmp_path_factory.mktemp("etcd")
    log = open(data_dir / "etcd.log", "wb")
    process = subprocess.Popen(
        [
            binary, "--name", "test", "--data-dir", str(data_dir / "data"),
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"test={peer_url}",
            # short raft timers bring etcd's minimum lease TTL down from 2 s to 1 s,
            # which keeps the lock-expiry tests short
            "--heartbeat-interval", "10", "--election-timeout", "100",
            "--log-level", "warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while not _healthy(client_url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"etcd did not become healthy; see {data_dir / 'etcd.log'}", pytrace=False
                )
            time.sleep(0.05)
        yield f"127.0.0.1:{client_port}"
    finally:
        process.kill()
        process.wait()
        log.close()
