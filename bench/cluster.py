"""Starts Dispatch for benchmarks: embedded (`dispatch up`) or distributed (etcd + the
Procfile's processes on Redis), each in its own processes so that the client measuring
it does not share its interpreter."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str = "/readyz", timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port}{path} within {timeout}s")


class Cluster:
    """A running Dispatch; ``port`` is its API's."""

    def __init__(self, mode: str, redis_url: str = "redis://127.0.0.1:6379/14",
                 auth: bool = True, root: Path = ROOT):
        self.mode, self.redis_url, self.auth = mode, redis_url, auth
        #: the checkout whose code runs (its processes start there: ``python -m`` and
        #: the Procfile's commands import from their working directory first)
        self.root = Path(root)
        self.tmp = tempfile.mkdtemp(prefix="dispatch-bench-")
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []
        # auth is on by default, as a user runs it: every request carries an admin token
        self.env = dict(os.environ, DISPATCH_HOME=f"{self.tmp}/home",
                        DISPATCH_API_BIND=f"127.0.0.1:{self.port}",
                        DISPATCH_AUTH="on" if auth else "off",
                        DISPATCH_METRICS_DIR=f"{self.tmp}/metrics")
        self._key = None

    def _spawn(self, command: str) -> subprocess.Popen:
        log = open(f"{self.tmp}/{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.root, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> "Cluster":
        if self.mode == "embedded":
            self.store_url = f"sqlite:///{self.tmp}/home/dispatch.db"
            self._spawn(f"{sys.executable} -m cli.main up --port {self.port} "
                        f"--home {self.tmp}/home")
        else:
            etcd_port, peer_port = free_port(), free_port()
            self._spawn(f"etcd --data-dir {self.tmp}/etcd --listen-client-urls "
                        f"http://127.0.0.1:{etcd_port} --advertise-client-urls "
                        f"http://127.0.0.1:{etcd_port} --listen-peer-urls "
                        f"http://127.0.0.1:{peer_port} --initial-advertise-peer-urls "
                        f"http://127.0.0.1:{peer_port} --initial-cluster "
                        f"default=http://127.0.0.1:{peer_port}")
            wait_http(etcd_port, "/health")
            import redis

            redis.Redis.from_url(self.redis_url).flushdb()
            self.store_url = f"etcd://127.0.0.1:{etcd_port}"
            from cryptography.fernet import Fernet

            if self.auth:  # the distributed admin comes from a public key file
                from cryptography.hazmat.primitives import serialization
                from cryptography.hazmat.primitives.asymmetric import rsa

                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                Path(f"{self.tmp}/admin.pub").write_bytes(self._key.public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo))
                self.env["DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE"] = f"{self.tmp}/admin.pub"
            self.env.update(DISPATCH_SECRET_KEY=Fernet.generate_key().decode(),
                            DISPATCH_STORE=self.store_url,
                            DISPATCH_BROKER=self.redis_url)
            for line in (self.root / "Procfile").read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    self._spawn(os.path.expandvars(line.partition(":")[2].strip().replace(
                        "${DISPATCH_API_BIND:-127.0.0.1:8080}", self.env["DISPATCH_API_BIND"])))
        wait_http(self.port)
        if self.auth and self._key is None:  # embedded: `dispatch up` wrote the admin's key
            from cryptography.hazmat.primitives import serialization

            self._key = serialization.load_pem_private_key(
                Path(f"{self.tmp}/home/admin.key").read_bytes(), password=None)
        return self

    def token(self) -> str | None:
        """A fresh admin token (RS256, ``iss=default/admin``, valid for the next hour)."""
        if not self.auth:
            return None
        import jwt

        now = int(time.time())
        return jwt.encode({"iss": "default/admin", "iat": now - 60, "exp": now + 3500},
                          self._key, algorithm="RS256")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Client:
    """A keep-alive ``http.client`` connection: the figure measured is the server's."""

    def __init__(self, port: int, org: str = "default", token: str | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.headers = {"Content-Type": "application/json", "X-Dispatch-Org": org}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body=None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body)
        try:
            self.conn.request(method, path, data, self.headers)
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # the server had closed the idle keep-alive connection (gunicorn after 2 s,
            # the original Dispatch after a while): the request was not served, send it again
            self.conn.close()
            self.conn.request(method, path, data, self.headers)
            response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
