"""Keeps one process (a ``command`` type) or one container (an ``image`` type) running for
each READY custom event driver, on the scheduler's leader.

What a driver's program gets: its config as ``--key=value`` arguments; its secrets'
values as environment variables (key upper-cased, ``-`` → ``_``, as Dispatch did); and
``DISPATCH_INGEST_URL``, ``DISPATCH_INGEST_TOKEN`` (also ``AUTH_TOKEN``, Dispatch Solo's
name), ``DISPATCH_ORGANIZATION``, ``DISPATCH_DRIVER_TYPE``, ``DISPATCH_DRIVER`` and
``DISPATCH_API_URL``. It posts events to the ingest URL with the token.

Guarantees:

* a program that exits is restarted with a growing pause (1 s doubling to 30 s); after
  :data:`FAILURES_FOR_ERROR` quick exits in a row its driver turns ERROR with the exit
  code and the tail of its output (or why the image cannot run) as the reason, and is
  still retried; once a program stays up :data:`HEALTHY_SECONDS` the driver is READY again;
* a changed driver or type (config, secrets, image, command) restarts the program; a
  deleted or non-READY driver's program is stopped;
* programs live only while this process leads: processes die with it
  (``PR_SET_PDEATHSIG``), every program stops when the leader's passes stop for longer
  than the lease (:meth:`DriverSupervisor.watchdog`), and containers carry a name fixed
  by the driver, so a new leader replaces what a dead one left.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import entities as E
from ..errors import DispatchError, NotFound, StaleRevision
from ..store import Store

log = logging.getLogger("dispatch.driver_processes")

FAILURES_FOR_ERROR = 3
HEALTHY_SECONDS = 10.0
MAX_BACKOFF = 30.0
TAIL_BYTES = 2000
BUILTIN = ("cron", "webhook")


@dataclass
class Child:
    """One running (or waiting to restart) program of one driver."""

    key: str
    digest: str
    process: subprocess.Popen | None = None
    container: Any = None
    log_path: str = ""
    started: float = 0.0
    failures: int = 0
    restart_at: float = 0.0
    last_error: str = field(default="")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def env_name(key: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", key.upper().replace("-", "_"))


class DriverSupervisor:
    """:meth:`reconcile` (each leader pass) starts, restarts and stops driver programs.

    :param drivers: the :class:`~engine.services.event_drivers.EventDriverService`.
    :param resolve_secrets: ``resolve(org, names) -> {key: value}``.
    :param docker_host: the Docker Engine API for image types (None: the default).
    """

    def __init__(self, store: Store, drivers, resolve_secrets: Callable, home: str,
                 docker_host: str | None = None, clock: Callable[[], float] = time.time):
        self.store, self.drivers, self.resolve_secrets = store, drivers, resolve_secrets
        self.home, self.docker_host, self.clock = home, docker_host, clock
        self.children: dict[str, Child] = {}
        self._docker = None
        self._lock = threading.Lock()
        self._last_pass = 0.0

    # ---- one pass -------------------------------------------------------------------

    def reconcile(self) -> None:
        with self._lock:
            self._last_pass = time.monotonic()
            wanted: dict[str, tuple[E.Entity, E.Entity]] = {}
            for driver in self.store.list(E.DRIVER, None, status=[E.READY, E.ERROR]):
                if driver["type"] in BUILTIN:
                    continue
                try:
                    dtype = self.store.get(E.DRIVER_TYPE, driver["organizationId"],
                                           driver["type"])
                except NotFound:
                    continue
                wanted[E.key_of(driver)] = (driver, dtype)
            for key in list(self.children):
                if key not in wanted:
                    self._stop(self.children.pop(key))
            for key, (driver, dtype) in wanted.items():
                try:
                    self._keep(key, driver, dtype)
                except Exception:
                    log.exception("driver_process.failed key=%s", key)
            self._last_pass = time.monotonic()

    def _keep(self, key: str, driver: E.Entity, dtype: E.Entity) -> None:
        now = self.clock()
        try:
            if dtype.get("command"):  # the operator may have narrowed the allowed ones since
                self.drivers.check_command(dtype["command"])
            spec = self._spec(driver, dtype)
        except DispatchError as exc:  # a missing secret, an undecryptable token
            self._mark(driver, E.ERROR, exc.message)
            return
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
        child = self.children.get(key)
        if child is not None and child.digest != digest:
            log.info("driver_process.changed key=%s", key)
            self._stop(self.children.pop(key))
            child = None
        if child is None:
            child = self.children[key] = Child(key, digest)
        exit_info = self._exited(child)
        if exit_info is not None:
            ran = now - child.started
            child.failures = 1 if ran >= HEALTHY_SECONDS else child.failures + 1
            child.last_error = exit_info
            child.restart_at = now + min(MAX_BACKOFF, 2 ** (child.failures - 1))
            child.process = child.container = None
            log.warning("driver_process.exited key=%s failures=%d %s", key, child.failures,
                        exit_info)
            if child.failures >= FAILURES_FOR_ERROR:
                self._mark(driver, E.ERROR, f"the driver's program keeps failing "
                                            f"({child.failures} times): {exit_info}")
        if child.process is None and child.container is None:
            if now < child.restart_at:
                return
            try:
                self._start(child, driver, spec)
            except DispatchError as exc:
                child.failures += 1
                child.restart_at = now + min(MAX_BACKOFF, 2 ** (child.failures - 1))
                self._mark(driver, E.ERROR, exc.message)
                return
            child.started = now
        elif now - child.started >= HEALTHY_SECONDS and driver["status"] == E.ERROR:
            child.failures = 0
            self._mark(driver, E.READY, None)

    # ---- what to run ----------------------------------------------------------------

    def _spec(self, driver: E.Entity, dtype: E.Entity) -> dict[str, Any]:
        org = driver["organizationId"]
        args = [f"--{c['key']}={c['value']}" for c in driver.get("config") or ()]
        env = {env_name(k): v for k, v in
               self.resolve_secrets(org, driver.get("secrets") or []).items()}
        token = self.drivers.token_of(driver)
        env.update(DISPATCH_INGEST_URL=self.drivers.ingest_url(driver["name"]),
                   DISPATCH_INGEST_TOKEN=token, AUTH_TOKEN=token,
                   DISPATCH_ORGANIZATION=org, DISPATCH_DRIVER_TYPE=driver["type"],
                   DISPATCH_DRIVER=driver["name"], DISPATCH_API_URL=self.drivers.api_url)
        return {"id": driver["id"], "image": dtype.get("image") or "",
                "command": list(dtype.get("command") or []), "args": args, "env": env}

    def _start(self, child: Child, driver: E.Entity, spec: dict[str, Any]) -> None:
        if spec["command"]:
            self._start_process(child, driver, spec)
        else:
            self._start_container(child, driver, spec)
        log.info("driver_process.started key=%s", child.key)

    def _start_process(self, child: Child, driver: E.Entity, spec: dict[str, Any]) -> None:
        logdir = os.path.join(self.home, "event-drivers")
        os.makedirs(logdir, exist_ok=True)
        child.log_path = os.path.join(logdir, f"{driver['organizationId']}-{driver['name']}.log")
        env = {k: os.environ[k] for k in ("PATH", "LANG", "HOME") if k in os.environ}
        env.update(spec["env"])
        with open(child.log_path, "wb") as out:
            try:
                child.process = subprocess.Popen(
                    spec["command"] + spec["args"], env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, cwd=logdir,
                    start_new_session=True, preexec_fn=_die_with_parent)
            except OSError as exc:
                raise DispatchError(f"cannot start {spec['command'][0]}: {exc.strerror}") from None

    def _start_container(self, child: Child, driver: E.Entity, spec: dict[str, Any]) -> None:
        import docker.errors
        import requests

        client = self._client()
        name = container_name(driver)
        self._remove_container(name)  # a dead leader's, or an older config's
        try:
            try:
                client.images.get(spec["image"])
            except docker.errors.ImageNotFound:
                client.images.pull(spec["image"])
            child.container = client.containers.run(
                spec["image"], command=spec["args"] or None, name=name, detach=True,
                environment=spec["env"], network_mode="host",
                labels={"dispatch.event-driver": f"{driver['organizationId']}/{driver['name']}"})
        except docker.errors.APIError as exc:
            raise DispatchError(f"image {spec['image']} cannot run: "
                                f"{exc.explanation or exc}") from None
        except requests.exceptions.RequestException as exc:
            raise DispatchError(f"the container engine cannot be reached: {exc}") from None

    def _exited(self, child: Child) -> str | None:
        """None while running (or never started); else what its end looked like."""
        if child.process is not None:
            code = child.process.poll()
            if code is None:
                return None
            return f"exit code {code}; output: {_tail(child.log_path)!r}"
        if child.container is not None:
            try:
                child.container.reload()
            except Exception as exc:  # noqa: BLE001 - removed, or the engine went away
                return f"its container is gone ({exc})"
            if child.container.status in ("created", "running"):
                return None
            code = child.container.attrs.get("State", {}).get("ExitCode")
            logs = child.container.logs(tail=20).decode("utf-8", "replace")[-TAIL_BYTES:]
            self._remove_container(child.container.name)
            return f"exit code {code}; output: {logs!r}"
        return None

    # ---- stopping -------------------------------------------------------------------

    def _stop(self, child: Child) -> None:
        if child.process is not None and child.process.poll() is None:
            try:
                os.killpg(child.process.pid, signal.SIGTERM)
                child.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
            except ProcessLookupError:
                pass
        if child.container is not None:
            self._remove_container(child.container.name)
        child.process = child.container = None
        log.info("driver_process.stopped key=%s", child.key)

    def stop_all(self) -> None:
        """Stop every program (leadership lost, or shutting down)."""
        with self._lock:
            for key in list(self.children):
                self._stop(self.children.pop(key))

    def watchdog(self, lease: float, stop: threading.Event) -> None:
        """Until ``stop``: stop every program when no pass ran for ``lease`` seconds
        (this process is no longer the leader)."""
        while not stop.wait(min(1.0, lease / 3)):
            if not self._lock.acquire(blocking=False):
                continue  # a pass is running (starting a container may take a while)
            try:
                if self.children and time.monotonic() - self._last_pass > lease:
                    log.warning("driver_process.leadership_lost stopping=%d",
                                len(self.children))
                    for key in list(self.children):
                        self._stop(self.children.pop(key))
            finally:
                self._lock.release()
        self.stop_all()

    # ---- helpers --------------------------------------------------------------------

    def _client(self):
        if self._docker is None:
            from ..drivers.container import docker_client

            self._docker = docker_client(self.docker_host)
        return self._docker

    def _remove_container(self, name: str) -> None:
        import docker.errors

        try:
            self._client().api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - best effort; the next pass retries
            log.warning("driver_process.remove_failed container=%s error=%s", name, exc)

    def _mark(self, driver: E.Entity, status: str, reason: str | None) -> None:
        """Set the driver's status (ERROR with ``reason``, or READY) by compare-and-swap."""
        reasons = [reason] if reason else []
        if driver["status"] == status and driver.get("reason") == reasons:
            return
        try:
            current = self.store.get(E.DRIVER, driver["organizationId"], driver["name"])
            if current["id"] != driver["id"] or current["status"] not in (E.READY, E.ERROR):
                return
            self.store.update(dict(current, status=status, reason=reasons))
            log.info("driver_process.marked key=%s status=%s", E.key_of(driver), status)
        except (StaleRevision, NotFound):
            pass

    def close(self) -> None:
        self.stop_all()
        if self._docker is not None:
            self._docker.close()


def container_name(driver: E.Entity) -> str:
    safe = re.sub(r"[^a-zA-Z0-9_.-]+", "-", f"{driver['organizationId']}-{driver['name']}")
    return f"dispatch-driver-{safe}"[:120]


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - TAIL_BYTES))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
