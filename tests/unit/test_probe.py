"""``python3 -m tasks.probe``, the worker's and scheduler's exec probe: ready when the
store and broker answer, else exit 1 naming each that does not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def probe(**env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    full.update(env, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "tasks.probe", "--timeout", "3"], env=full,
                          capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ready_when_store_and_broker_answer():
    done = probe(DISPATCH_STORE="memory://", DISPATCH_BROKER="redis://127.0.0.1:6379/11")
    assert (done.returncode, done.stdout.strip()) == (0, "ready"), done.stderr


def test_an_unreachable_store_and_broker_are_each_named():
    port = free_port()
    done = probe(DISPATCH_STORE=f"etcd://127.0.0.1:{free_port()}",
                 DISPATCH_BROKER=f"redis://user:hunter2@127.0.0.1:{port}/0")
    assert done.returncode == 1
    assert "not ready: store etcd://127.0.0.1:" in done.stderr
    assert f"broker redis://127.0.0.1:{port}/0 unavailable" in done.stderr
    assert "hunter2" not in done.stderr  # credentials in the URL are not printed


def test_ready_on_a_real_etcd(etcd_endpoint):
    done = probe(DISPATCH_STORE=f"etcd://{etcd_endpoint}", DISPATCH_BROKER="redis://127.0.0.1:6379/11")
    assert done.returncode == 0, done.stderr


def test_a_bad_setting_is_named():
    done = probe(DISPATCH_STORE="memory://", DISPATCH_AUTH="maybe")
    assert done.returncode == 1
    assert "DISPATCH_AUTH" in done.stderr
