"""One warm function-server process of the ``local`` driver: start it, call it, kill it.

An instance owns a private directory holding its unix socket, the files its server
captures each invocation's output into, and the server's own log, and (where the host
allows) its cgroups. The driver talks to it over one persistent HTTP/1.1 connection.

Start-up goes through a gate: ``/bin/sh`` waits on a pipe while the driver moves it
into the instance's cgroups and sets its rlimits, then execs bwrap (or the server). So
nothing of the function's — not even its module's top level — runs outside its limits,
without running Python code between fork and exec in the driver (``preexec_fn``).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import Executor

from ..errors import BuildError
from ..sockets import time_by_kernel
from . import sandbox
from .cgroups import Cgroups, InstanceCgroup
from .languages import RUNTIMES, LanguageRuntime

#: the Python runtime server (each language's is in :mod:`.languages`)
SERVER_FILE = RUNTIMES["python3"].server_file
#: the server's exit code for a handler that cannot be imported
EXIT_HANDLER_ERROR = 3
HANDLER_ERROR_MARK = "dispatch-runtime: handler error: "
#: largest file a function may write (RLIMIT_FSIZE)
FILE_LIMIT_MB = 64
LOG_CAP_BYTES = 64 * 1024
#: the largest reply read from a server: a 1 MB result plus escaped logs, with room to
#: spare (the server enforces the result's cap; this bounds a server the function subverted)
MAX_REPLY_BYTES = 4 << 20
#: waits for one line on stdin (the driver's go-ahead), then becomes the command
GATE = ["/bin/sh", "-c", 'read -r _ && exec "$@" </dev/null', "dispatch-gate"]


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    """How to start instances of one version."""

    handler: str
    runtime: LanguageRuntime
    interpreter: str
    src_dir: str
    memory_limit_mb: int
    #: the ``bwrap`` executable, or None to run without a sandbox
    bwrap: str | None
    start_timeout_s: float
    #: whether the function may use the host's network (inside the sandbox)
    network: bool = False
    #: where the instance's cgroups are made; None where the host allows none
    cgroups: Cgroups | None = None
    #: the instance's ``pids.max``: processes and threads, the sandbox's own included
    max_tasks: int = 64
    #: host directories of the function's image, readable inside the sandbox
    image_paths: tuple[str, ...] = ()
    #: the image's additions to the server's environment (e.g. ``NODE_PATH``)
    image_environment: tuple[tuple[str, str], ...] = ()


class ReplyTooLarge(Exception):
    """The server's reply is larger than :data:`MAX_REPLY_BYTES`."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


#: the largest status line and headers read from a server
MAX_REPLY_HEAD_BYTES = 64 * 1024


def _read_reply(sock: socket.socket) -> tuple[int, bytes, bool]:
    """``(status, body, whether the server closes)`` of one reply read from ``sock``."""
    buf = b""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > MAX_REPLY_HEAD_BYTES:
            raise http.client.HTTPException("the function server's reply head is too large")
        chunk = sock.recv(65536)
        if not chunk:
            raise http.client.RemoteDisconnected("the function server closed the connection")
        buf += chunk
    lines = buf[:end].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    try:
        if not version.startswith("HTTP/1."):
            raise ValueError(version)
        status = int(rest[:3])
        headers = {name.strip().lower(): value.strip()
                   for name, _, value in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
    except (ValueError, KeyError):
        raise http.client.HTTPException(f"the function server answered badly: {lines[0]!r}") from None
    if length > MAX_REPLY_BYTES:
        raise ReplyTooLarge(length)
    data = bytearray(buf[end + 4:])
    while len(data) < length:
        chunk = sock.recv(min(length - len(data), 1 << 20))
        if not chunk:
            raise http.client.IncompleteRead(bytes(data), length - len(data))
        data += chunk
    if len(data) > length:  # nothing was asked for beyond this reply
        raise http.client.HTTPException("the function server answered more than it was asked")
    return status, bytes(data), headers.get("connection", "").lower() == "close"


class FunctionServer:
    """What every warm function server shares, whatever runs it (a process here, a
    container in :mod:`.container`): one keep-alive HTTP connection over its unix socket,
    and capture files for its output in ``directory``. Not thread-safe: one caller at a
    time."""

    _conn: UnixHTTPConnection
    directory: str
    #: the kernel-kept timeout set on the connection's socket (None: a Python one)
    _kernel_timeout: float | None = None

    def call(self, body: bytes, timeout_s: float, path: str = "/") -> tuple[int, bytes]:
        """POST one invocation; raises ``TimeoutError``, :class:`ReplyTooLarge` or
        ``OSError``/``HTTPException``.

        One HTTP/1.1 exchange written and read on the connection's socket directly: the
        servers are Dispatch's own (each answers with a ``Content-Length``, in order), so
        ``http.client``'s general response parsing (an email parser for the headers) is
        not needed on the path every run takes."""
        conn = self._conn
        if conn.sock is None:
            conn.timeout = timeout_s
            conn.connect()
        sock = conn.sock
        if sock.gettimeout() is not None or self._kernel_timeout != timeout_s:
            # each send and receive a system call, not a wait in poll before each too
            time_by_kernel(sock, timeout_s)
            self._kernel_timeout = timeout_s
        try:
            sock.sendall(b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                         b"\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
            status, data, close = _read_reply(sock)
        except BlockingIOError:  # the kernel's timeout
            conn.close()
            raise TimeoutError(f"the function server did not answer within {timeout_s:g} s") from None
        except BaseException:
            conn.close()  # whatever was half read is not the next reply's
            raise
        if close:
            conn.close()
        return status, data

    def captured_logs(self) -> dict[str, list[str]]:
        """What the current (interrupted) invocation had written so far."""
        return {name: tail_lines(os.path.join(self.directory, name)) for name in ("stdout", "stderr")}


class Instance(FunctionServer):
    """A started, healthy function server process."""

    def __init__(self, iid: str, directory: str, proc: subprocess.Popen, lifeline: int,
                 conn: UnixHTTPConnection, cold_start_ms: float, *, runtime: LanguageRuntime,
                 cgroup: InstanceCgroup | None = None, stem_dir: str | None = None,
                 memory_limit_mb: int = 0):
        self.iid = iid
        self.memory_limit_mb = memory_limit_mb
        #: a stem cell's function directory (seen as its ``/function``), until it becomes
        #: a function's: then it holds that function's files, and goes when it stops
        self.stem_dir = stem_dir
        self.stem = stem_dir is not None
        self.directory = directory
        self.proc = proc
        self._lifeline = lifeline
        self._conn = conn
        self.cold_start_ms = cold_start_ms
        self.runtime = runtime
        self.cgroup = cgroup
        #: a cold start that the run which caused it has not yet reported
        self.unreported_cold_ms: float | None = None
        self.last_used = time.monotonic()

    def reached_task_limit(self) -> bool:
        """Whether the instance ever hit its process limit (a fork bomb, say)."""
        return self.cgroup is not None and self.cgroup.reached_task_limit()

    def ran_out_of_memory(self, stderr: list[str]) -> bool:
        """Whether the instance's memory ran out: the kernel's OOM killer struck in its
        cgroup, or the runtime said its heap was exhausted (``stderr``: its last lines)."""
        if self.cgroup is not None and self.cgroup.oom_killed():
            return True
        marks = self.runtime.out_of_memory_marks
        return any(mark in line for line in stderr[-50:] for mark in marks)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_code(self, wait_s: float) -> int | None:
        """The process's exit code, waiting up to ``wait_s`` for it to end."""
        try:
            return self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Kill the process group (with a sandbox, bwrap's death takes its PID namespace)
        and whatever else is in the instance's cgroup."""
        _kill(self.proc)
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def stop(self) -> None:
        """Kill the process and remove its files."""
        self.kill()
        self._conn.close()
        try:
            os.close(self._lifeline)
        except OSError:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)
        if self.stem_dir is not None:
            shutil.rmtree(self.stem_dir, ignore_errors=True)
        if self.cgroup is not None:
            self.cgroup.remove()

    def become(self, src_dir: str, handler: str, timeout_s: float) -> None:
        """Make a stem cell one version's instance, once: its files appear in the cell's
        function directory (hard links where the file system allows), and its ``/init``
        loads the handler. Raises :class:`BuildError` as a failed start would (the cell
        is then stopped); ``cold_start_ms`` becomes the time this took."""
        if not self.stem:
            raise RuntimeError("only a stem cell becomes a function's instance")
        self.stem = False  # used once, whatever happens
        started = time.perf_counter()
        status, data, failure = 0, b"", None
        try:
            shutil.copytree(src_dir, self.stem_dir, symlinks=True, dirs_exist_ok=True,
                            copy_function=_link_or_copy)
            status, data = self.call(json.dumps({"value": {"main": handler}}).encode(),
                                     timeout_s, path="/init")
        except (OSError, http.client.HTTPException, ReplyTooLarge, shutil.Error) as exc:
            failure = exc
        if failure is None and status == 200:
            self.cold_start_ms = (time.perf_counter() - started) * 1000
            return
        reason = None
        if failure is None:
            try:
                reason = json.loads(data).get("error")
            except (ValueError, AttributeError):
                pass
        code = self.exit_code(0.5) if reason is None else None
        out_of_memory = self.cgroup is not None and self.cgroup.oom_killed()
        self.stop()
        if out_of_memory:
            raise BuildError(f"function ran out of memory while loading (limit {self.memory_limit_mb} MB)")
        if reason:
            raise BuildError(str(reason))
        if isinstance(failure, TimeoutError):
            raise BuildError(f"function server did not load its handler within {timeout_s:g} s")
        raise BuildError(startup_failure(code, self.directory) if code is not None
                         else f"function server is not healthy: {failure or status}")


def start_instance(spec: LaunchSpec, run_dir: str, launcher: Executor, *,
                   stem: bool = False) -> Instance:
    """Start a server for ``spec`` and wait until it answers ``/healthz``.

    Raises :class:`BuildError` with the server's reason if it exits during
    start-up (e.g. the handler cannot be imported) or does not start in time.

    ``stem``: start a stem cell instead, with the sandbox and limits of ``spec`` but an
    empty function directory of its own and no handler (``spec``'s are ignored); it
    becomes one version's instance with :meth:`Instance.become`.
    """
    iid = uuid.uuid4().hex[:12]
    directory = os.path.join(run_dir, iid)
    stem_dir = None
    if stem:
        stem_dir = directory + ".function"
        os.mkdir(stem_dir, 0o755)
        spec = dataclasses.replace(spec, handler="", src_dir=stem_dir)
    os.mkdir(directory, 0o700)
    cgroup = None
    if spec.cgroups is not None:
        try:
            cgroup = spec.cgroups.create(iid, max_tasks=spec.max_tasks, memory_mb=spec.memory_limit_mb)
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            if stem_dir:
                shutil.rmtree(stem_dir, ignore_errors=True)
            raise BuildError(f"cannot create the function's cgroups: {exc}") from None
    ready_r, ready_w = os.pipe()
    life_r, life_w = os.pipe()
    gate_r, gate_w = os.pipe()
    log_fd = _open_log(directory, "server.log", truncate=False)
    # a server that cannot redirect its own descriptors gets its capture files as them
    out_fd, err_fd = ((_open_log(directory, "stdout"), _open_log(directory, "stderr"))
                      if spec.runtime.stdio_is_capture else (log_fd, log_fd))
    cmd = GATE + _command(spec, directory) + [
        "--ready-fd", str(ready_w), "--lifeline-fd", str(life_r),
        "--memory-mb", str(spec.memory_limit_mb), "--file-mb", str(FILE_LIMIT_MB),
    ]
    started = time.perf_counter()
    proc = None
    try:
        # Popen runs on the driver's long-lived launcher thread: bwrap's --die-with-parent
        # is tied to the *thread* that forked it, and callers' threads may come and go.
        proc = launcher.submit(
            subprocess.Popen, cmd, stdin=gate_r, stdout=out_fd, stderr=err_fd,
            env=_environment(spec), cwd=spec.src_dir,
            pass_fds=(ready_w, life_r), start_new_session=True,
        ).result()
        if cgroup is not None:
            cgroup.add(proc.pid)
        resource.prlimit(proc.pid, resource.RLIMIT_CORE, (0, 0))
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (FILE_LIMIT_MB << 20, FILE_LIMIT_MB << 20))
        os.write(gate_w, b"go\n")
    except OSError as exc:
        if proc is not None:
            _kill(proc)
        os.close(ready_r)
        os.close(life_w)
        _remove(directory, cgroup, stem_dir)
        raise BuildError(f"cannot start the function server: {exc}") from None
    finally:
        for fd in {ready_w, life_r, gate_r, gate_w, log_fd, out_fd, err_fd}:
            os.close(fd)
    try:
        _wait_ready(proc, ready_r, directory, spec.start_timeout_s)
        conn = UnixHTTPConnection(os.path.join(directory, "sock"), spec.start_timeout_s)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise BuildError(f"function server answered /healthz with {resp.status}")
    except BaseException as exc:
        _kill(proc)
        os.close(life_w)
        out_of_memory = cgroup is not None and cgroup.oom_killed()
        _remove(directory, cgroup, stem_dir)
        if out_of_memory:  # the module's own top level took it all
            raise BuildError(
                f"function ran out of memory while loading (limit {spec.memory_limit_mb} MB)") from None
        if isinstance(exc, (OSError, http.client.HTTPException)):
            raise BuildError(f"function server is not healthy: {exc}") from None
        raise
    cold_ms = (time.perf_counter() - started) * 1000
    return Instance(iid, directory, proc, life_w, conn, cold_ms, runtime=spec.runtime, cgroup=cgroup,
                    stem_dir=stem_dir, memory_limit_mb=spec.memory_limit_mb)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (a function's files are never written through it: they are bound
    read-only), or a copy across file systems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _open_log(directory: str, name: str, truncate: bool = True) -> int:
    # O_APPEND: after a server truncates its capture file, writes go to the new end
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
    return os.open(os.path.join(directory, name), flags, 0o600)


def _remove(directory: str, cgroup: InstanceCgroup | None, stem_dir: str | None = None) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    if stem_dir:
        shutil.rmtree(stem_dir, ignore_errors=True)
    if cgroup is not None:
        cgroup.remove()


def _command(spec: LaunchSpec, directory: str) -> list[str]:
    runtime = spec.runtime
    interpreter = [spec.interpreter, *runtime.interpreter_options(spec.memory_limit_mb)]
    handler = ["--handler", spec.handler] if spec.handler else ["--stem"]
    if spec.bwrap is None:
        return interpreter + [runtime.server_file, *handler,
                              "--dir", spec.src_dir, "--socket", os.path.join(directory, "sock")]
    prefix = sandbox.bwrap_command(
        bwrap=spec.bwrap, interpreter=spec.interpreter, src_dir=spec.src_dir,
        server_file=runtime.server_file, instance_dir=directory, network=spec.network,
        # /tmp is memory: no larger than the instance's memory, even without cgroups
        tmp_size_mb=spec.memory_limit_mb, disable_userns=sandbox.can_disable_userns(spec.bwrap),
        ro_paths=spec.image_paths,
    )
    return prefix + interpreter + [sandbox.server_path(runtime.server_file), *handler,
                                   "--dir", sandbox.FUNCTION_DIR, "--socket", sandbox.INSTANCE_DIR + "/sock"]


def _environment(spec: LaunchSpec) -> dict[str, str]:
    """A minimal environment: never the driver's own, which may hold secrets."""
    path = "/usr/local/bin:/usr/bin:/bin"
    bindir = os.path.dirname(spec.interpreter)
    if bindir and bindir not in path.split(":"):
        path = f"{bindir}:{path}"  # `python3` or `node` in a function's subprocess is its own
    return {"PATH": path, "HOME": "/tmp", "LANG": "C.UTF-8", **spec.runtime.environment,
            **dict(spec.image_environment)}


def _wait_ready(proc: subprocess.Popen, ready_r: int, directory: str, timeout_s: float) -> None:
    """Block until the server says it is ready or exits; the pipe's EOF means it exited."""
    try:
        readable, _, _ = select.select([ready_r], [], [], timeout_s)
        line = os.read(ready_r, 64) if readable else None
    finally:
        os.close(ready_r)
    if line is None:
        raise BuildError(f"function server did not start within {timeout_s:g} s")
    if line:
        return
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        code = None
    raise BuildError(startup_failure(code, directory))


def startup_failure(code: int | None, directory: str) -> str:
    # the server's own log, or its stderr capture file when that is its fd 2
    lines = tail_lines(os.path.join(directory, "server.log")) + tail_lines(os.path.join(directory, "stderr"))
    for line in reversed(lines):
        if HANDLER_ERROR_MARK in line:
            return line.split(HANDLER_ERROR_MARK, 1)[1]
    last = next((line for line in reversed(lines) if line.strip()), "")
    return f"function server exited with code {code} during start-up" + (f": {last}" if last else "")


def tail_lines(path: str, cap: int = LOG_CAP_BYTES) -> list[str]:
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


__all__ = ["Instance", "LaunchSpec", "ReplyTooLarge", "SERVER_FILE", "describe_exit", "start_instance"]
