"""The ``docker`` driver: function versions as warm containers, through the Docker Engine
API (the ``docker`` package; podman's compatible service here).

A version runs from its *function image*, ``deployment.image_config["functionImage"]``,
which the ``docker`` builder makes (:mod:`engine.builders.docker`); a version without one
fails to prepare, saying so. Each version has a warm pool (:mod:`.pool`) of up to
``concurrency`` (or ``max_instances_per_version``) containers, each serving one
invocation at a time over a unix socket in a bind-mounted host directory
(:mod:`.container`): containers get no network unless the function asked for it.

Run semantics are the ``local`` driver's (:func:`.invocation.invoke` is shared): a
timeout kills the container and reports ``function timed out after N ms``; a crash is a
``FunctionError`` naming the exit; a container that timed out, crashed or reached a limit
is never reused. Limits per container: memory (``memory_limit_mb``, no swap; Python gets
a ``MemoryError``, Node.js a heap limit below it), processes (``max_processes``), CPUs
(``cpus``), a read-only root with a private ``/tmp``, no capabilities, user ``nobody``.

Containers are named ``dispatch-<org>-<name>-<version>-<n>`` and labelled
``dispatch.function`` (org/name), ``dispatch.version``, ``dispatch.driver`` (this
driver) and ``dispatch.owner`` (host:pid:start of this process): a driver removes, when it
starts, the containers that a process on its host which is gone left behind.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import socket
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker.errors
import requests.exceptions

from ..errors import BuildError, Unavailable
from .base import Deployment, Driver, Outcome
from .container import INSTANCE_DIR, ContainerInstance, ContainerSpec, ImageMissing, docker_client, \
    remove_container, start_container
from .invocation import Limits, run_pooled
from .pool import WarmPools

log = logging.getLogger("dispatch.driver.docker")

#: sun_path holds 108 bytes; longer instance paths fall back to a directory under /tmp
_MAX_SOCKET_PATH = 100


class DockerDriver(Driver):
    """Runs function versions as warm containers.

    :param home: the driver's directory (``$DISPATCH_HOME``): instance sockets live under
        ``<home>/containers``
    :param docker_host: the engine's URL; default ``$DOCKER_HOST``, else podman's socket
    :param max_instances_per_version: concurrent invocations of one version beyond this
        wait for a free container, unless its deployment sets ``concurrency``
    :param memory_limit_mb: each container's memory (and its ``/tmp``'s size)
    :param max_processes: the processes and threads one container may have
    :param cpus: the CPUs one container may use
    :param idle_seconds: containers unused for this long are removed
    :param start_timeout: seconds a container may take to answer ``/healthz``
    :param sandbox: ignored: containers are the sandbox (accepted so that the same
        settings open any driver)
    """

    def __init__(self, home: str, *, docker_host: str | None = None, max_instances_per_version: int = 4,
                 memory_limit_mb: int = 256, max_processes: int = 64, cpus: float = 1.0,
                 idle_seconds: float = 600, start_timeout: float = 30.0, sandbox: bool | None = None):
        self._client = docker_client(docker_host, pool_size=32)
        self._limits = Limits(memory_mb=memory_limit_mb, max_processes=max_processes)
        self._cpus = cpus
        self._start_timeout = start_timeout
        self._id = uuid.uuid4().hex[:12]
        self._owner = _owner_label()
        self._names = itertools.count(1)
        self._run_dir, self._own_run_dir = _make_run_dir(home)
        # removing a container takes a few hundred ms: never on a run's path
        self._remover = ThreadPoolExecutor(4, thread_name_prefix="dispatch-docker-remover")
        self._remove_orphans()
        self._pools: WarmPools[ContainerInstance] = WarmPools(
            setup=self._ensure_image, start=self._start, dispose=self._dispose_later,
            max_per_version=max_instances_per_version, idle_seconds=idle_seconds, log=log,
            driver="docker")

    # -- the port ---------------------------------------------------------------------

    def prepare(self, deployment: Deployment) -> None:
        """Make sure the function image is here, and start one container to check that the
        handler loads."""
        self._pools.prepared(deployment, for_run=False)

    def run(self, deployment: Deployment, context: dict[str, Any], payload: Any) -> Outcome:
        """Invoke once on a warm container, starting one if needed (see :class:`Driver`)."""
        return run_pooled(self._pools, deployment, context, payload, limits=self._limits)

    def warm_here(self, deployment: Deployment) -> bool:
        return self._pools.warm_here(deployment)

    def retire(self, deployment: Deployment) -> None:
        """Remove the version's containers (busy ones when their call ends)."""
        victims = self._pools.retire(deployment)
        self._remove_now(victims)
        log.info("version.retired function=%s containers=%d", deployment.id, len(victims))

    def close(self) -> None:
        """Remove every container of this driver. A call still in flight ends in an
        error: its container goes too (a container left running would outlive us)."""
        victims = self._pools.close()
        self._remove_now(victims)
        self._remover.shutdown(wait=True)
        # what is still there: busy containers, and starts that raced with close
        for container in self._containers({"dispatch.driver": self._id}):
            self._remove_quietly(container["Id"])
        self._client.close()
        if self._own_run_dir:
            shutil.rmtree(self._run_dir, ignore_errors=True)

    # -- containers -------------------------------------------------------------------

    def _ensure_image(self, deployment: Deployment) -> None:
        """The pool's setup: the function image is on the engine, pulled if it was not."""
        ref = deployment.image_config.get("functionImage")
        if not ref:
            raise BuildError(
                f"function {deployment.org}/{deployment.name} has no function image: the docker driver "
                f"runs functions built by the docker builder (DISPATCH_BUILDER=docker)")
        try:
            self._client.api.inspect_image(ref)
            return
        except docker.errors.ImageNotFound:
            pass
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise Unavailable(f"the container engine cannot be reached: {exc}") from None
        try:
            self._client.images.pull(ref)
        except docker.errors.APIError as exc:
            raise BuildError(f"function image {ref} cannot be pulled: {exc.explanation or exc}") from None
        except requests.exceptions.RequestException as exc:
            raise Unavailable(f"the container engine cannot be reached: {exc}") from None
        log.info("image.pulled function=%s image=%s", deployment.id, ref)

    def _start(self, deployment: Deployment) -> ContainerInstance:
        spec = ContainerSpec(
            image=deployment.image_config["functionImage"], language=deployment.language,
            handler=deployment.handler, memory_limit_mb=self._limits.memory_mb,
            max_processes=self._limits.max_processes, cpus=self._cpus, network=deployment.network,
            start_timeout_s=self._start_timeout, name=self._name(deployment),
            labels={"dispatch.function": f"{deployment.org}/{deployment.name}",
                    "dispatch.version": deployment.version, "dispatch.driver": self._id,
                    "dispatch.owner": self._owner})
        try:
            return start_container(self._client, spec, self._run_dir)
        except ImageMissing:  # removed from the engine since: pull it again, once
            self._ensure_image(deployment)
            return start_container(self._client, spec, self._run_dir)

    def _name(self, d: Deployment) -> str:
        safe = re.sub(r"[^a-zA-Z0-9_.-]+", "-", f"{d.org}-{d.name}")[:80]
        return f"dispatch-{safe}-{d.version[:12]}-{self._id[:6]}{next(self._names)}"

    def _dispose_later(self, victims: list[ContainerInstance]) -> None:
        """Stop instances in the background; their sockets close at once."""
        for inst in victims:
            try:
                self._remover.submit(self._stop_quietly, inst)
            except RuntimeError:  # closing: remove it here
                self._stop_quietly(inst)

    def _remove_now(self, victims: list[ContainerInstance]) -> None:
        if victims:
            list(self._remover.map(self._stop_quietly, victims))

    def _stop_quietly(self, inst: ContainerInstance) -> None:
        try:
            inst.stop()
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            log.warning("container.remove_failed container=%s error=%r", inst.iid, str(exc))

    def _remove_quietly(self, container_id: str) -> None:
        try:
            remove_container(self._client, container_id)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            log.warning("container.remove_failed container=%s error=%r", container_id[:12], str(exc))

    def _containers(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        try:
            return self._client.api.containers(
                all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return []

    def _remove_orphans(self) -> None:
        """Remove the containers a dead process on this host left (it was killed, say)."""
        host = socket.gethostname()
        try:
            found = self._client.api.containers(all=True, filters={"label": "dispatch.owner"})
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return  # the engine is down: runs will say so
        for container in found:
            owner = (container.get("Labels") or {}).get("dispatch.owner", "")
            owner_host, _, process = owner.partition(":")
            if owner_host != host or _process_alive(process):
                continue
            self._remove_quietly(container["Id"])
            for mount in container.get("Mounts") or []:  # its instance directory
                if mount.get("Destination") == INSTANCE_DIR and mount.get("Source"):
                    shutil.rmtree(mount["Source"], ignore_errors=True)
            log.info("container.orphan_removed container=%s owner=%s", container["Id"][:12], owner)


def _owner_label() -> str:
    """``host:pid:start``: this process, told apart from a later one with the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def _process_alive(process: str) -> bool:
    pid, _, ticks = process.partition(":")
    if not pid.isdigit():
        return True  # not ours to judge
    return _start_ticks(int(pid)) == ticks if ticks != "?" else os.path.exists(f"/proc/{pid}")


def _make_run_dir(home: str) -> tuple[str, bool]:
    run_dir = os.path.join(os.path.abspath(home), "containers")
    if len(run_dir) + len("/0123456789ab/sock") <= _MAX_SOCKET_PATH:
        os.makedirs(run_dir, mode=0o711, exist_ok=True)
        return run_dir, False
    return tempfile.mkdtemp(prefix="dispatch-docker-"), True


__all__ = ["DockerDriver"]
