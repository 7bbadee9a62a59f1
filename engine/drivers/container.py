"""One function server in a container, started through the Docker Engine API.

The layout of function images (made by :mod:`engine.builders.docker`, run by
:mod:`.docker`): the function's source in ``/function``, its language's server from
``engine/runtimes/`` in ``/dispatch``; the image's own command serves on port 8080.

The ``docker`` driver runs the server on a unix socket instead, in a host directory
bind-mounted at ``/run/dispatch``: so a container needs no network at all (with
``--network none`` no port can be published), and the server's per-invocation capture
files lie beside the socket, where the driver reads what a function that crashed or timed
out had written — as the ``local`` driver does. A :class:`ContainerInstance` has the
interface of :class:`~.instance.Instance` that :func:`~.invocation.invoke` uses.
"""

from __future__ import annotations

import dataclasses
import os
import select
import shutil
import time
import uuid
from typing import Any

import docker
import docker.errors
import requests.exceptions

from ..errors import BuildError, Unavailable
from .instance import FILE_LIMIT_MB, FunctionServer, UnixHTTPConnection, startup_failure
from .languages import RUNTIMES, LanguageRuntime

#: the default Docker Engine API here: podman's service (see deploy/container-services.sh)
PODMAN_SOCKET = "unix:///run/podman/podman.sock"
FUNCTION_DIR = "/function"
SERVER_DIR = "/dispatch"
#: where the instance's host directory is mounted in its container
INSTANCE_DIR = "/run/dispatch"
#: the port of the image's own command (Dispatch's function protocol: ``PORT``, 8080)
PORT = 8080
#: language -> (interpreter on the image's PATH, server file in SERVER_DIR)
SERVERS = {"python3": ("python3", "server.py"), "nodejs": ("node", "server.js")}
#: the user functions run as: nobody
USER = "65534:65534"
#: how long a crashed server's container may take to be seen stopped
EXIT_WAIT_S = 10.0
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def docker_client(docker_host: str | None = None, *, timeout: float = 60, pool_size: int = 10) -> docker.DockerClient:
    """A client of ``docker_host``, else ``$DOCKER_HOST``, else podman's socket here.

    The API version is pinned (podman answers to 1.41), so that making a client does
    not need the engine to be up.
    """
    base_url = docker_host or os.environ.get("DOCKER_HOST") or PODMAN_SOCKET
    return docker.DockerClient(base_url=base_url, version="1.41", timeout=timeout, max_pool_size=pool_size)


def server_command(language: str, handler: str, *, socket: str | None = None, memory_mb: int | None = None) -> list[str]:
    """The command line of a function server in a function image: on ``socket`` if given,
    else on :data:`PORT`."""
    if language not in SERVERS:
        raise BuildError(f"containers cannot run {language!r} functions (known: {', '.join(SERVERS)})")
    interpreter, server = SERVERS[language]
    options = RUNTIMES[language].interpreter_options(memory_mb) if memory_mb else (
        ["-I"] if language == "python3" else [])
    cmd = [interpreter, *options, f"{SERVER_DIR}/{server}", "--handler", handler, "--dir", FUNCTION_DIR]
    if socket:
        return cmd + ["--socket", socket]
    return cmd + ["--port", str(PORT)]


class ImageMissing(BuildError):
    """The function image is not on the engine (removed since the version was prepared)."""


@dataclasses.dataclass(frozen=True)
class ContainerSpec:
    """How to start containers of one version."""

    image: str
    language: str
    handler: str
    memory_limit_mb: int
    max_processes: int
    cpus: float
    network: bool
    start_timeout_s: float
    name: str
    labels: dict[str, str]


class ContainerInstance(FunctionServer):
    """A started, healthy function server in a container."""

    def __init__(self, client: docker.DockerClient, container_id: str, directory: str,
                 conn: UnixHTTPConnection, cold_start_ms: float, runtime: LanguageRuntime):
        self.iid = container_id[:12]
        self.container_id = container_id
        self.directory = directory
        self._client = client
        self._conn = conn
        self.cold_start_ms = cold_start_ms
        self.runtime = runtime
        self.unreported_cold_ms: float | None = None
        self.last_used = time.monotonic()
        self._cgroups = _cgroup_files(client, container_id)

    def alive(self) -> bool:
        """Whether the server still holds its end of the connection: a server that died
        while idle left it readable (at EOF). No call to the engine: this is on every run."""
        sock = self._conn.sock
        if sock is None:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def exit_code(self, wait_s: float) -> int | None:
        """The server's exit code, waiting for its container to stop: up to ``wait_s``,
        or longer, as podman learns of an exit only when its clean-up process has
        started (0.5–1 s after it, more on a busy host)."""
        try:
            return self._client.api.wait(self.container_id, timeout=max(wait_s, EXIT_WAIT_S))["StatusCode"]
        except (requests.exceptions.RequestException, docker.errors.APIError, KeyError):
            return None

    def kill(self) -> None:
        """Kill the container: every process of the function goes with it."""
        try:
            self._client.api.kill(self.container_id)
        except docker.errors.APIError:
            pass  # already stopped, or gone

    def reached_task_limit(self) -> bool:
        """Whether the container ever hit its process limit (read from its cgroup, where
        the engine runs on this host)."""
        events = _read(self._cgroups.get("pids.events"))
        return bool(events) and any(line.startswith("max ") and line.split()[1] != "0" for line in events.splitlines())

    def ran_out_of_memory(self, stderr: list[str]) -> bool:
        """Whether the kernel's OOM killer struck in the container, or the runtime said its
        heap was exhausted (``stderr``: its last lines)."""
        marks = self.runtime.out_of_memory_marks
        if any(mark in line for line in stderr[-50:] for mark in marks):
            return True
        oom = _read(self._cgroups.get("oom"))
        if oom and any(line.split()[0] == "oom_kill" and line.split()[1] != "0" for line in oom.splitlines()):
            return True
        try:
            return bool(self._client.api.inspect_container(self.container_id)["State"].get("OOMKilled"))
        except (docker.errors.APIError, requests.exceptions.RequestException, KeyError):
            return False

    def stop(self) -> None:
        """Remove the container (killing it) and the instance's directory."""
        self._conn.close()
        remove_container(self._client, self.container_id)
        shutil.rmtree(self.directory, ignore_errors=True)


def remove_container(client: docker.DockerClient, container_id: str) -> None:
    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: its removal is already in progress
            raise


def start_container(client: docker.DockerClient, spec: ContainerSpec, run_dir: str) -> ContainerInstance:
    """Start a container for ``spec`` and wait until its server answers ``/healthz``.

    Raises :class:`BuildError` with the server's reason if it exits during
    start-up (e.g. the handler cannot be imported) or does not start in time.
    """
    runtime = RUNTIMES[spec.language]
    directory = os.path.join(run_dir, uuid.uuid4().hex[:12])
    os.mkdir(directory, 0o700)
    if os.geteuid() == 0:
        os.chown(directory, 65534, 65534)  # the function's user creates its socket there
    else:
        os.chmod(directory, 0o777)
    started = time.perf_counter()
    try:
        container = client.api.create_container(
            spec.image, command=_command(spec, runtime), name=spec.name, labels=spec.labels,
            user=USER, working_dir=FUNCTION_DIR, network_disabled=False,
            host_config=_host_config(client, spec, directory))
        container_id = container["Id"]
    except docker.errors.ImageNotFound:
        shutil.rmtree(directory, ignore_errors=True)
        raise ImageMissing(f"function image {spec.image} is not on the container engine") from None
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise Unavailable(f"the container engine cannot create the function's container: {exc}") from None
    try:
        client.api.start(container_id)
        conn = _wait_healthy(client, container_id, directory, spec)
    except BaseException as exc:
        try:
            remove_container(client, container_id)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass
        shutil.rmtree(directory, ignore_errors=True)
        if isinstance(exc, (docker.errors.APIError, requests.exceptions.RequestException)):
            raise Unavailable(f"the container engine cannot start the function's container: {exc}") from None
        raise
    cold_ms = (time.perf_counter() - started) * 1000
    return ContainerInstance(client, container_id, directory, conn, cold_ms, runtime)


def _command(spec: ContainerSpec, runtime: LanguageRuntime) -> list[str]:
    """``env -i`` (the container's environment is the engine's and the image's; the
    function sees only this) and the server, its output sent to files beside its socket."""
    env = [f"PATH={_PATH}", "HOME=/tmp", "LANG=C.UTF-8", *(f"{k}={v}" for k, v in runtime.environment.items())]
    # the Python server captures each invocation itself; Node's captures fds 1 and 2 only
    # when they are the files `stdout` and `stderr` beside its socket, opened for appending
    redirect = (f">>{INSTANCE_DIR}/stdout 2>>{INSTANCE_DIR}/stderr" if runtime.stdio_is_capture
                else f">>{INSTANCE_DIR}/server.log 2>&1")
    server = server_command(spec.language, spec.handler, socket=f"{INSTANCE_DIR}/sock",
                            memory_mb=spec.memory_limit_mb)
    server += ["--memory-mb", str(spec.memory_limit_mb), "--file-mb", str(FILE_LIMIT_MB)]
    return ["/usr/bin/env", "-i", *env, "/bin/sh", "-c", f'exec "$@" </dev/null {redirect}', "dispatch-server", *server]


def _host_config(client: docker.DockerClient, spec: ContainerSpec, directory: str) -> dict[str, Any]:
    memory = f"{spec.memory_limit_mb}m"
    fsize = FILE_LIMIT_MB << 20
    return client.api.create_host_config(
        binds={directory: {"bind": INSTANCE_DIR, "mode": "rw"}},
        # no network unless the function asked for it: the driver talks over the socket
        network_mode="bridge" if spec.network else "none",
        mem_limit=memory, memswap_limit=memory, pids_limit=spec.max_processes,
        nano_cpus=int(spec.cpus * 1e9), read_only=True,
        tmpfs={"/tmp": f"size={memory},mode=1777"},
        cap_drop=["ALL"], security_opt=["no-new-privileges"],
        # podman fills the limits not given with its own defaults, which may exceed the
        # engine's own hard limits (and then the container cannot start): give them all.
        # nproc counts the user's processes in every container (all run as nobody); the
        # pids limit is what bounds one container.
        ulimits=[docker.types.Ulimit(name="core", soft=0, hard=0),
                 docker.types.Ulimit(name="fsize", soft=fsize, hard=fsize),
                 docker.types.Ulimit(name="nofile", soft=4096, hard=4096),
                 docker.types.Ulimit(name="nproc", soft=4096, hard=4096)],
    )


def _wait_healthy(client: docker.DockerClient, container_id: str, directory: str,
                  spec: ContainerSpec) -> UnixHTTPConnection:
    """Poll ``GET /healthz`` on the socket with a short backoff; look at the container
    every 100 ms, so a server that exits (a broken handler) is reported at once."""
    path = os.path.join(directory, "sock")
    deadline = time.monotonic() + spec.start_timeout_s
    delay, next_look = 0.002, time.monotonic() + 0.1
    while True:
        if os.path.exists(path):
            conn = UnixHTTPConnection(path, spec.start_timeout_s)
            try:
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    return conn
                raise BuildError(f"function server answered /healthz with {resp.status}")
            except OSError:
                conn.close()
        now = time.monotonic()
        if now >= next_look:
            next_look = now + 0.1
            state = client.api.inspect_container(container_id)["State"]
            if not state.get("Running") and state.get("Status") not in ("created", "configured", "initialized"):
                if state.get("OOMKilled"):
                    raise BuildError(
                        f"function ran out of memory while loading (limit {spec.memory_limit_mb} MB)")
                raise BuildError(startup_failure(state.get("ExitCode"), directory))
        if now >= deadline:
            raise BuildError(f"function server did not start within {spec.start_timeout_s:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.025)


def _cgroup_files(client: docker.DockerClient, container_id: str) -> dict[str, str]:
    """The container's pids and OOM counters, where its engine runs on this host and the
    files can be read (cgroups v1 or v2); empty otherwise."""
    try:
        pid = client.api.inspect_container(container_id)["State"]["Pid"]
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except (OSError, KeyError, docker.errors.APIError, requests.exceptions.RequestException):
        return {}
    files = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one hierarchy
            files.setdefault("pids.events", f"/sys/fs/cgroup{path}/pids.events")
            files.setdefault("oom", f"/sys/fs/cgroup{path}/memory.events")
        elif "pids" in controllers.split(","):
            files["pids.events"] = f"/sys/fs/cgroup/pids{path}/pids.events"
        elif "memory" in controllers.split(","):
            files["oom"] = f"/sys/fs/cgroup/memory{path}/memory.oom_control"
    return {name: path for name, path in files.items() if os.path.exists(path)}


def _read(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


__all__ = ["ContainerInstance", "ContainerSpec", "ImageMissing", "FUNCTION_DIR", "INSTANCE_DIR", "PORT", "SERVERS", "SERVER_DIR",
           "docker_client", "remove_container", "server_command", "start_container"]
