"""The ``local`` driver: warm pools of sandboxed function-server processes on this host.

Each prepared version has a pool (:mod:`.pool`, shared with the docker driver) of up to
``concurrency`` (or ``max_instances_per_version``) processes, each serving one invocation
at a time over a unix socket. Sources are unpacked
under ``<home>/functions/<org>/<name>/<version>/src``; the servers are picked by language
(:mod:`.languages`) and run inside bubblewrap (:mod:`.sandbox`) when ``bwrap`` exists,
each instance in cgroups of its own (:mod:`.cgroups`) where the host allows.

Limits, and what a run reports when a function reaches one: the timeout (the instance
is killed); memory (a ``MemoryError`` in Python, or the instance is killed: "function ran
out of memory"); processes ("function reached its limit of N processes", the instance is
killed); the result's size (1 MB, refused by the server); log sizes (64 KB per stream,
marked ``... [truncated]``). An instance that reached a limit is replaced.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import BuildError, Unavailable
from ..sources import unpack
from . import sandbox
from .base import Deployment, Driver, Outcome
from .cgroups import Cgroups, CgroupsUnavailable
from .instance import Instance, LaunchSpec, start_instance
from .invocation import Limits, run_pooled
from .languages import runtime_for
from .pool import WarmPools

log = logging.getLogger("dispatch.driver.local")

#: sun_path holds 108 bytes; longer instance paths fall back to a directory under /tmp
_MAX_SOCKET_PATH = 100
_warned_no_sandbox = False
_warned_no_cgroups = False


class LocalDriver(Driver):
    """Runs function versions as warm processes on this host.

    :param home: the driver's directory (``$DISPATCH_HOME``)
    :param sandbox: None to use bubblewrap when it exists, True to require it, False
        to run plain processes
    :param max_instances_per_version: concurrent invocations of one version beyond
        this wait for a free instance, unless its deployment sets ``concurrency``
    :param memory_limit_mb: the memory of each instance (its cgroup's limit, Python's
        address space, V8's heap)
    :param cgroups: None to use a cgroup per instance where the host allows, True to
        require them, False for none
    :param max_processes: the processes and threads one instance may have (its cgroup's
        ``pids.max``, the sandbox's own two included)
    :param idle_seconds: instances unused for this long are stopped
    :param start_timeout: seconds an instance may take to start
    """

    def __init__(self, home: str, *, sandbox: bool | None = None, max_instances_per_version: int = 4,
                 memory_limit_mb: int = 256, cgroups: bool | None = None, max_processes: int = 64,
                 idle_seconds: float = 600, start_timeout: float = 30.0):
        self._home = os.path.abspath(home)
        self._bwrap = _sandbox_choice(sandbox)
        self._cgroups = _cgroups_choice(cgroups)
        self._limits = Limits(memory_mb=memory_limit_mb, max_processes=max_processes)
        self._start_timeout = start_timeout
        self._run_dir, self._own_run_dir = self._make_run_dir()
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="dispatch-local-launcher")
        self._pools: WarmPools[Instance] = WarmPools(
            setup=self._setup, start=self._start, dispose=_stop_all,
            max_per_version=max_instances_per_version, idle_seconds=idle_seconds, log=log)

    @property
    def sandboxed(self) -> bool:
        """Whether instances run inside bubblewrap."""
        return self._bwrap is not None

    @property
    def cgroups(self) -> Cgroups | None:
        """Where instances get their cgroups, or None when they get none."""
        return self._cgroups

    # -- the port ---------------------------------------------------------------------

    def prepare(self, deployment: Deployment) -> None:
        """Unpack the source and start one instance to check that the handler imports."""
        self._pools.prepared(deployment, for_run=False)

    def run(self, deployment: Deployment, context: dict[str, Any], payload: Any) -> Outcome:
        """Invoke once on a warm instance, starting one if needed (see :class:`Driver`)."""
        return run_pooled(self._pools, deployment, context, payload, limits=self._limits)

    def retire(self, deployment: Deployment) -> None:
        """Stop the version's instances (busy ones when their call ends); drop its files."""
        version_dir = self._version_dir(deployment)
        doomed = f"{version_dir}.retired-{uuid.uuid4().hex[:8]}"

        def move_away() -> None:
            # under the pools' lock, so a run that re-creates the version after this point
            # unpacks afresh instead of finding a tree about to be deleted
            try:
                os.rename(version_dir, doomed)
            except FileNotFoundError:
                pass

        victims = self._pools.retire(deployment, while_locked=move_away)
        _stop_all(victims)
        shutil.rmtree(doomed, ignore_errors=True)
        log.info("version.retired function=%s instances=%d", deployment.id, len(victims))

    def close(self) -> None:
        """Stop every instance; busy ones are stopped when their call ends."""
        _stop_all(self._pools.close())
        self._launcher.shutdown(wait=True)
        if self._cgroups is not None:
            self._cgroups.close()
        if self._own_run_dir:
            shutil.rmtree(self._run_dir, ignore_errors=True)

    # -- instances --------------------------------------------------------------------

    def _setup(self, d: Deployment) -> None:
        """Prepare a version once: unpack its source (the pools call this)."""
        self._unpack(d, self._src_dir(d))

    def _start(self, d: Deployment) -> Instance:
        """Start an instance of a version (the pools call this)."""
        return start_instance(self._launch_spec(d), self._run_dir, self._launcher)

    def _launch_spec(self, d: Deployment) -> LaunchSpec:
        runtime = runtime_for(d.language)
        if runtime is None:
            raise BuildError(f"the local driver cannot run {d.language!r} functions")
        interpreter = d.image_config.get("interpreter") or runtime.default_interpreter
        if not interpreter:
            raise BuildError(f"no interpreter for {d.language!r} functions is installed on this host")
        # an image built by the local builder: its directories (a venv, node_modules)
        # live under $DISPATCH_HOME, which the sandbox otherwise hides
        environment = (("NODE_PATH", d.image_config["nodePath"]),) if d.image_config.get("nodePath") else ()
        return LaunchSpec(handler=d.handler, runtime=runtime, interpreter=interpreter, src_dir=self._src_dir(d),
                          memory_limit_mb=self._limits.memory_mb, bwrap=self._bwrap,
                          start_timeout_s=self._start_timeout, network=d.network, cgroups=self._cgroups,
                          max_tasks=self._limits.max_processes,
                          image_paths=tuple(d.image_config.get("paths") or ()),
                          image_environment=environment)

    # -- files ------------------------------------------------------------------------

    def _version_dir(self, d: Deployment) -> str:
        for part in (d.org, d.name, d.version):
            if not part or "/" in part or part in (".", ".."):
                raise ValueError(f"unsafe path component in deployment {d.id!r}")
        return os.path.join(self._home, "functions", d.org, d.name, d.version)

    def _src_dir(self, d: Deployment) -> str:
        return os.path.join(self._version_dir(d), "src")

    def _unpack(self, d: Deployment, src_dir: str) -> None:
        """Unpack atomically: into a temporary directory, then one rename."""
        if os.path.isdir(src_dir):
            return
        parent = os.path.dirname(src_dir)
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".src-", dir=parent)
        try:
            try:
                unpack(d.source(), tmp)
            except (OSError, EOFError, ValueError, tarfile.TarError) as exc:
                raise BuildError(f"the function's source cannot be unpacked: {exc}") from None
            os.chmod(tmp, 0o755)
            os.rename(tmp, src_dir)
        except OSError:
            if not os.path.isdir(src_dir):  # not a lost race with another process
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _make_run_dir(self) -> tuple[str, bool]:
        run_dir = os.path.join(self._home, "run")
        if len(run_dir) + len("/0123456789ab/sock") <= _MAX_SOCKET_PATH:
            os.makedirs(run_dir, mode=0o700, exist_ok=True)
            return run_dir, False
        return tempfile.mkdtemp(prefix="dispatch-run-"), True


def _stop_all(instances: list[Instance]) -> None:
    for inst in instances:
        inst.stop()


def _sandbox_choice(sandbox_opt: bool | None) -> str | None:
    """The bwrap executable to use, or None."""
    global _warned_no_sandbox
    if sandbox_opt is False:
        return None
    bwrap = sandbox.bwrap_path()
    if bwrap is None:
        if sandbox_opt:
            raise Unavailable("the local driver's sandbox was required but bwrap is not "
                              f"installed ({sandbox.INSTALL_HINT})")
        if not _warned_no_sandbox:
            _warned_no_sandbox = True
            log.warning("sandbox.unavailable reason='bwrap not on PATH' effect='functions run unconfined'")
    return bwrap


def _cgroups_choice(cgroups_opt: bool | None) -> Cgroups | None:
    """Where to make instance cgroups, or None (with one warning, unless asked for none)."""
    global _warned_no_cgroups
    if cgroups_opt is False:
        return None
    try:
        return Cgroups.detect()
    except CgroupsUnavailable as exc:
        if cgroups_opt:
            raise Unavailable(f"the local driver's cgroups were required: {exc}") from None
        if not _warned_no_cgroups:
            _warned_no_cgroups = True
            log.warning("cgroups.unavailable reason=%r effect='no process limit; memory bounded by "
                        "rlimits and heap limits only'", str(exc))
        return None
