"""Helpers for end-to-end tests: free ports, Procfile processes, readiness waits."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from api.embedded import start_embedded

ROOT = Path(__file__).resolve().parents[2]

HELLO = '''\
def handle(ctx, payload):
    print("hello log line")
    return {"myField": "Hello, %s from %s" % (payload.get("name"), payload.get("place"))}
'''

SLOW = '''\
import time

def handle(ctx, payload):
    time.sleep(payload.get("seconds", 1))
    return {"slept": payload.get("seconds", 1)}
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An embedded Dispatch (SQLite, in-process workers, sandboxed local functions) per
    test module, with a quick reconciler; authentication off (the identity tests start
    their own servers with it on)."""
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2, auth="off")
    yield server
    server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_status(base: str, name: str, statuses=("READY", "ERROR"), org: str = "default",
                    timeout: float = 60.0) -> dict:
    def settled():
        fn = requests.get(f"{base}/v1/function/{name}", headers={"X-Dispatch-Org": org}).json()
        return fn if fn.get("status") in statuses else None

    return wait_until(settled, timeout, what=f"function {name} to reach {statuses}")


def procfile_commands() -> dict[str, str]:
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


class Processes:
    """Starts Procfile entries as separate process groups, so one can be killed alone."""

    def __init__(self, env: dict[str, str], logdir: Path):
        # Prometheus samples of this deployment's processes, apart from any other's
        env.setdefault("DISPATCH_METRICS_DIR", str(logdir / "metrics"))
        self.env, self.logdir = env, logdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.commands = procfile_commands()

    def start(self, name: str) -> subprocess.Popen:
        command = os.path.expandvars(self.commands[name].replace("${DISPATCH_API_BIND:-127.0.0.1:8080}", self.env["DISPATCH_API_BIND"]))
        log = open(self.logdir / f"{name}.log", "ab")
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logdir.glob("*.log"))


@pytest.fixture
def hello_file(tmp_path) -> Path:
    path = tmp_path / "src" / "hello.py"
    path.parent.mkdir()
    path.write_text(HELLO)
    return path


@pytest.fixture
def slow_file(tmp_path) -> Path:
    path = tmp_path / "slowsrc" / "slow.py"
    path.parent.mkdir()
    path.write_text(SLOW)
    return path


def dispatch_cli(*args: str, env: dict[str, str] | None = None, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess:
    """The installed ``dispatch`` command, run as a user would."""
    result = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"dispatch {shlex.join(args)} failed: {result.stdout}{result.stderr}")
    return result
