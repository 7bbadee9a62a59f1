"""What the chaos scenarios share: the processes of a Dispatch installation (etcd members,
the Procfile's processes or `dispatch up`), a load of non-blocking runs posted the way a
careful client posts them (an Idempotency-Key, sent again after a failure), and the count
at the end: ``N ok, M lost, K stuck, D executed twice``.

The function appends its run's id to a file (functions run unsandboxed here, for that
side channel alone), so executions are counted outside Dispatch's own records.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.sources import pack  # noqa: E402

#: a Redis database of the chaos suite's own (the tests use 0 and 11-15): it is flushed
REDIS_URL = os.environ.get("DISPATCH_CHAOS_REDIS", "redis://127.0.0.1:6379/7")
FUNCTION = "chaos"
SOURCE = '''\
import os
import time


def handle(ctx, payload):
    time.sleep(payload.get("sleep", 0))
    fd = os.open(payload["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (payload["id"] + "\\n").encode())
    finally:
        os.close(fd)
    return {"id": payload["id"]}
'''
#: the reconciler's pace and the function's limits: quick, so a scenario settles in
#: seconds after its fault
ENV = {
    "DISPATCH_AUTH": "off", "DISPATCH_SANDBOX": "off", "DISPATCH_RECONCILE_SECONDS": "1",
    "DISPATCH_STUCK_SECONDS": "3", "DISPATCH_CLAIM_GRACE_SECONDS": "3",
    "DISPATCH_RUN_ATTEMPTS": "10", "PYTHONUNBUFFERED": "1",
}
RETRY = {"attempts": 10, "backoff": "exponential", "delayMs": 200, "maxDelayMs": 2000,
         "jitter": 0.2, "on": ["SystemError"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


class Processes:
    """Named processes, each in its own process group (a kill takes its children)."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir, self.env = workdir, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, list[str]] = {}

    def start(self, name: str, argv: list[str] | None = None) -> None:
        argv = argv or self.commands[name]
        self.commands[name] = argv
        log = open(self.workdir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.kill(name, signal.SIGTERM)


class Etcd:
    """One etcd member or a cluster of them, on private ports and data directories."""

    def __init__(self, procs: Processes, workdir: Path, members: int = 1):
        self.procs = procs
        self.names = [f"etcd{i}" for i in range(members)]
        self.client = {n: free_port() for n in self.names}
        self.peer = {n: free_port() for n in self.names}
        cluster = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.names)
        for n in self.names:
            procs.commands[n] = [
                "etcd", "--name", n, "--data-dir", str(workdir / n),
                "--listen-client-urls", f"http://127.0.0.1:{self.client[n]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.client[n]}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer[n]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[n]}",
                "--initial-cluster", cluster, "--initial-cluster-token", "chaos",
                "--initial-cluster-state", "new"]

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(f"127.0.0.1:{self.client[n]}" for n in self.names)

    def start(self, name: str | None = None) -> None:
        for n in [name] if name else self.names:
            self.procs.start(n)
        for n in [name] if name else self.names:
            wait_for(lambda n=n: requests.get(f"http://127.0.0.1:{self.client[n]}/health",
                                              timeout=1).json().get("health") == "true",
                     60, f"{n} to be healthy")

    def leader(self) -> str:
        """The member that leads now."""
        for n in self.names:
            if n not in self.procs.procs:
                continue
            status = requests.post(f"http://127.0.0.1:{self.client[n]}/v3/maintenance/status",
                                   json={}, timeout=2).json()
            if status["header"]["member_id"] == status["leader"]:
                return n
        raise RuntimeError("no etcd member says it leads")


@dataclasses.dataclass
class Tally:
    """The outcome of one scenario."""

    scenario: str
    posted: int
    accepted: int
    ok: int
    lost: int
    stuck: int
    twice: int
    seconds: float
    notes: str = ""

    def line(self) -> str:
        return (f"{self.scenario}: {self.ok} ok, {self.lost} lost, {self.stuck} stuck, "
                f"{self.twice} executed twice ({self.accepted} of {self.posted} accepted, "
                f"{self.seconds:.0f} s){' - ' + self.notes if self.notes else ''}")


class Installation:
    """Dispatch under test: ``mode`` ``procfile`` (etcd + Redis, the Procfile's api,
    worker and scheduler) or ``embedded`` (`dispatch up`)."""

    def __init__(self, mode: str, etcd_members: int = 1):
        self.mode = mode
        self.workdir = Path(tempfile.mkdtemp(prefix=f"dispatch-chaos-{mode}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sidechannel = self.workdir / "executions.log"
        env = dict(os.environ, **ENV, DISPATCH_HOME=str(self.workdir / "home"),
                   DISPATCH_API_BIND=f"127.0.0.1:{self.port}",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.procs = Processes(self.workdir, env)
        self.etcd = Etcd(self.procs, self.workdir, etcd_members) if mode == "procfile" else None

    def start(self) -> "Installation":
        env = self.procs.env
        if self.mode == "embedded":
            self.procs.start("up", [sys.executable, "-m", "cli.main", "up", "--port",
                                    str(self.port), "--home", str(self.workdir / "home")])
        else:
            import redis
            from cryptography.fernet import Fernet

            redis.Redis.from_url(REDIS_URL).flushdb()
            self.etcd.start()
            env.update(DISPATCH_STORE=self.etcd.url, DISPATCH_BROKER=REDIS_URL,
                       DISPATCH_SECRET_KEY=Fernet.generate_key().decode())
            self.procs.start("api", ["gunicorn", "--bind", f"127.0.0.1:{self.port}",
                                     "--worker-class", "gthread", "--threads", "16",
                                     "--workers", "2", "api.wsgi:app"])
            self.procs.start("worker", ["dramatiq", "tasks.worker", "--processes", "2",
                                        "--threads", "16", "--queues", "runs", "functions",
                                        "images", "events"])
            self.procs.start("scheduler", [sys.executable, "-m", "tasks.scheduler"])
        self.wait_api()
        self.create_function()
        return self

    def wait_api(self, timeout: float = 90) -> None:
        wait_for(lambda: requests.get(f"{self.url}/healthz", timeout=2).status_code == 200,
                 timeout, "the API")

    def create_function(self) -> None:
        path = self.workdir / "chaos.py"
        path.write_text(SOURCE)
        body = {"name": FUNCTION, "image": "python3", "handler": "chaos.handle",
                "source": base64.b64encode(pack(str(path))).decode(), "timeout": 5000,
                "retry": RETRY, "concurrency": 32}
        r = requests.post(f"{self.url}/v1/function", json=body, timeout=30)
        r.raise_for_status()
        wait_for(lambda: requests.get(f"{self.url}/v1/function/{FUNCTION}",
                                      timeout=5).json()["status"] == "READY",
                 120, "the function to be READY")

    def stop(self) -> None:
        self.procs.stop_all()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the load and its count ----------------------------------------------------------

    def post_runs(self, count: int, on_progress: Callable[[int], None] | None = None,
                  give_up_after: float = 180.0, sleep: float = 0.02) -> list[str]:
        """Post ``count`` non-blocking runs from 8 clients; each is sent again (same key)
        after a connection failure or a 5xx, until accepted. Returns the accepted ids."""
        accepted: list[str] = []
        lock = threading.Lock()

        def post(_: int) -> None:
            run_id = str(uuid.uuid4())
            body = {"name": run_id, "input": {"id": run_id, "log": str(self.sidechannel),
                                               "sleep": sleep}}
            deadline = time.monotonic() + give_up_after
            with requests.Session() as session:
                while time.monotonic() < deadline:
                    try:
                        r = session.post(f"{self.url}/v1/runs", params={"functionName": FUNCTION},
                                         headers={"Idempotency-Key": run_id}, json=body,
                                         timeout=15)
                    except requests.RequestException:
                        time.sleep(0.5)
                        continue
                    if r.status_code == 202:
                        with lock:
                            accepted.append(run_id)
                            done = len(accepted)
                        if on_progress:
                            on_progress(done)
                        return
                    if r.status_code < 500:
                        raise RuntimeError(f"run refused: {r.status_code} {r.text}")
                    time.sleep(0.5)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(post, range(count)))
        return accepted

    def statuses(self) -> dict[str, str]:
        """Every run of the function and its status, through the API's pages."""
        found: dict[str, str] = {}
        token = None
        while True:
            params = {"functionName": FUNCTION, "limit": 1000}
            if token:
                params["continue"] = token
            r = requests.get(f"{self.url}/v1/runs", params=params, timeout=30)
            r.raise_for_status()
            found.update({run["name"]: run["status"] for run in r.json()})
            token = r.headers.get("X-Dispatch-Continue")
            if not token:
                return found

    def tally(self, scenario: str, posted: int, accepted: list[str], began: float,
              settle_timeout: float = 180.0, notes: str = "") -> Tally:
        """Wait until every accepted run settled (or the timeout), then count."""
        deadline = time.monotonic() + settle_timeout
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                statuses = self.statuses()
            except (requests.RequestException, OSError):
                time.sleep(1)
                continue
            if all(statuses.get(i) in ("READY", "ERROR") for i in accepted):
                break
            time.sleep(1)
        executions: dict[str, int] = {}
        if self.sidechannel.exists():
            for line in self.sidechannel.read_text().split():
                executions[line] = executions.get(line, 0) + 1
        ok = sum(1 for i in accepted if statuses.get(i) == "READY" and executions.get(i))
        stuck = sum(1 for i in accepted if statuses.get(i) in ("INITIALIZED", "CREATING"))
        return Tally(scenario, posted, len(accepted), ok, len(accepted) - ok - stuck, stuck,
                     sum(1 for n in executions.values() if n > 1),
                     time.monotonic() - began, notes)
