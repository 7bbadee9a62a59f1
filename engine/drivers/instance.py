"""One warm function-server process of the ``local`` driver: start it, call it, kill it.

An instance owns a private directory holding its unix socket, the files its server
captures each invocation's output into, and the server's own log. The driver talks to
it over one persistent HTTP/1.1 connection.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import select
import shutil
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import Executor

from ..errors import FunctionBuildError
from . import sandbox

#: the runtime server, bound read-only into every sandbox
SERVER_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "runtimes", "python", "server.py")
#: the server's exit code for a handler that cannot be imported
EXIT_HANDLER_ERROR = 3
HANDLER_ERROR_MARK = "dispatch-runtime: handler error: "
#: largest file a function may write (RLIMIT_FSIZE)
FILE_LIMIT_MB = 64
LOG_CAP_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """How to start instances of one version."""

    handler: str
    interpreter: str
    src_dir: str
    memory_limit_mb: int
    #: the ``bwrap`` executable, or None to run without a sandbox
    bwrap: str | None
    start_timeout_s: float


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Instance:
    """A started, healthy function server. Not thread-safe: one caller at a time."""

    def __init__(self, iid: str, directory: str, proc: subprocess.Popen, lifeline: int,
                 conn: _UnixHTTPConnection, cold_start_ms: float):
        self.iid = iid
        self.directory = directory
        self.proc = proc
        self._lifeline = lifeline
        self._conn = conn
        self.cold_start_ms = cold_start_ms
        #: a cold start that the run which caused it has not yet reported
        self.unreported_cold_ms: float | None = None
        self.last_used = time.monotonic()

    def call(self, body: bytes, timeout_s: float) -> tuple[int, bytes]:
        """POST one invocation; raises ``TimeoutError`` or ``OSError``/``HTTPException``."""
        conn = self._conn
        if conn.timeout != timeout_s:
            conn.timeout = timeout_s
            if conn.sock is not None:
                conn.sock.settimeout(timeout_s)
        conn.request("POST", "/", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_code(self, wait_s: float) -> int | None:
        """The process's exit code, waiting up to ``wait_s`` for it to end."""
        try:
            return self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Kill the process group (with a sandbox, bwrap's death takes its PID namespace)."""
        _kill(self.proc)

    def captured_logs(self) -> dict[str, list[str]]:
        """What the current (interrupted) invocation had written so far."""
        return {name: _tail_lines(os.path.join(self.directory, name)) for name in ("stdout", "stderr")}

    def stop(self) -> None:
        """Kill the process and remove its files."""
        self.kill()
        self._conn.close()
        try:
            os.close(self._lifeline)
        except OSError:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)


def start_instance(spec: LaunchSpec, run_dir: str, launcher: Executor) -> Instance:
    """Start a server for ``spec`` and wait until it answers ``/healthz``.

    Raises :class:`FunctionBuildError` with the server's reason if it exits during
    start-up (e.g. the handler cannot be imported) or does not start in time.
    """
    iid = uuid.uuid4().hex[:12]
    directory = os.path.join(run_dir, iid)
    os.mkdir(directory, 0o700)
    ready_r, ready_w = os.pipe()
    life_r, life_w = os.pipe()
    log_fd = os.open(os.path.join(directory, "server.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    cmd = _command(spec, directory) + [
        "--ready-fd", str(ready_w), "--lifeline-fd", str(life_r),
        "--memory-mb", str(spec.memory_limit_mb), "--file-mb", str(FILE_LIMIT_MB),
    ]
    started = time.perf_counter()
    proc = None
    try:
        # Popen runs on the driver's long-lived launcher thread: bwrap's --die-with-parent
        # is tied to the *thread* that forked it, and callers' threads may come and go.
        proc = launcher.submit(
            subprocess.Popen, cmd, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            env=_environment(spec.interpreter), cwd=spec.src_dir, pass_fds=(ready_w, life_r),
            start_new_session=True,
        ).result()
    except OSError as exc:
        raise FunctionBuildError(f"cannot start the function server: {exc}") from None
    finally:
        for fd in (ready_w, life_r, log_fd):
            os.close(fd)
        if proc is None:
            os.close(ready_r)
            os.close(life_w)
            shutil.rmtree(directory, ignore_errors=True)
    try:
        _wait_ready(proc, ready_r, directory, spec.start_timeout_s)
        conn = _UnixHTTPConnection(os.path.join(directory, "sock"), spec.start_timeout_s)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise FunctionBuildError(f"function server answered /healthz with {resp.status}")
    except BaseException as exc:
        _kill(proc)
        os.close(life_w)
        shutil.rmtree(directory, ignore_errors=True)
        if isinstance(exc, (OSError, http.client.HTTPException)):
            raise FunctionBuildError(f"function server is not healthy: {exc}") from None
        raise
    cold_ms = (time.perf_counter() - started) * 1000
    return Instance(iid, directory, proc, life_w, conn, cold_ms)


def _command(spec: LaunchSpec, directory: str) -> list[str]:
    if spec.bwrap is None:
        return [spec.interpreter, "-I", SERVER_FILE, "--handler", spec.handler,
                "--dir", spec.src_dir, "--socket", os.path.join(directory, "sock")]
    prefix = sandbox.bwrap_command(
        bwrap=spec.bwrap, interpreter=spec.interpreter, src_dir=spec.src_dir,
        server_file=SERVER_FILE, instance_dir=directory,
    )
    return prefix + [spec.interpreter, "-I", sandbox.SERVER_FILE, "--handler", spec.handler,
                     "--dir", sandbox.FUNCTION_DIR, "--socket", sandbox.INSTANCE_DIR + "/sock"]


def _environment(interpreter: str) -> dict[str, str]:
    """A minimal environment: never the driver's own, which may hold secrets."""
    path = "/usr/local/bin:/usr/bin:/bin"
    bindir = os.path.dirname(interpreter)
    if bindir and bindir not in path.split(":"):
        path = f"{bindir}:{path}"  # `python3` in a function's subprocess is its own interpreter
    return {
        "PATH": path,
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _wait_ready(proc: subprocess.Popen, ready_r: int, directory: str, timeout_s: float) -> None:
    """Block until the server says it is ready or exits; the pipe's EOF means it exited."""
    try:
        readable, _, _ = select.select([ready_r], [], [], timeout_s)
        line = os.read(ready_r, 64) if readable else None
    finally:
        os.close(ready_r)
    if line is None:
        raise FunctionBuildError(f"function server did not start within {timeout_s:g} s")
    if line:
        return
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        code = None
    raise FunctionBuildError(_startup_failure(code, os.path.join(directory, "server.log")))


def _startup_failure(code: int | None, log_path: str) -> str:
    lines = _tail_lines(log_path)
    for line in reversed(lines):
        if HANDLER_ERROR_MARK in line:
            return line.split(HANDLER_ERROR_MARK, 1)[1]
    last = next((line for line in reversed(lines) if line.strip()), "")
    return f"function server exited with code {code} during start-up" + (f": {last}" if last else "")


def _tail_lines(path: str, cap: int = LOG_CAP_BYTES) -> list[str]:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - cap))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return (["... [truncated]"] + lines[1:]) if size > cap else lines


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def describe_exit(code: int | None) -> str:
    """``exited with code 7``, with the signal's name when it was killed by one."""
    if code is None:
        return "closed its connection"
    signum = -code if code < 0 else code - 128 if code > 128 else 0
    try:
        name = f" ({signal.Signals(signum).name})" if signum else ""
    except ValueError:
        name = ""
    return f"exited with code {code}{name}"


__all__ = ["Instance", "LaunchSpec", "SERVER_FILE", "describe_exit", "start_instance"]
