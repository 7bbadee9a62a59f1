"""The ``local`` driver: warm pools of sandboxed function-server processes on this host.

Each prepared version has a pool of up to ``concurrency`` (or ``max_instances_per_version``)
processes, each serving one invocation at a time over a unix socket. Sources are unpacked
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

import itertools
import json
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import FunctionBuildError, Unavailable
from ..sources import unpack
from . import sandbox
from .base import Deployment, Driver, Outcome
from .cgroups import Cgroups, CgroupsUnavailable
from .instance import Instance, LaunchSpec, start_instance
from .invocation import Limits, function_error, invoke
from .languages import runtime_for

log = logging.getLogger("dispatch.driver.local")

DEFAULT_TIMEOUT_MS = 60_000
#: sun_path holds 108 bytes; longer instance paths fall back to a directory under /tmp
_MAX_SOCKET_PATH = 100
_warned_no_sandbox = False
_warned_no_cgroups = False


class _Pool:
    """The instances of one version; guarded by the driver's lock."""

    def __init__(self, deployment: Deployment, src_dir: str, seq: int, lock: threading.Lock):
        self.deployment = deployment
        self.src_dir = src_dir
        #: creation order: a pool created later holds a newer version of its function
        self.seq = seq
        #: last in, first out: the most recently used instance is the warmest
        self.idle: list[Instance] = []
        #: instances alive or being started
        self.count = 0
        self.freed = threading.Condition(lock)
        self.prepare_lock = threading.Lock()
        self.prepared = False
        self.retired = False


class _Retired(FunctionBuildError):
    """The version was retired (or the driver closed) while a call was getting to it."""


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
        self._max = max(1, max_instances_per_version)
        self._idle_s = idle_seconds
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._pools: dict[str, _Pool] = {}
        self._by_function: dict[tuple[str, str], list[_Pool]] = {}
        self._seq = itertools.count()
        self._closed = threading.Event()
        self._run_dir, self._own_run_dir = self._make_run_dir()
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="dispatch-local-launcher")
        self._reaper = threading.Thread(target=self._reap, name="dispatch-local-reaper", daemon=True)
        self._reaper.start()

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
        self._prepared_pool(deployment, for_run=False)

    def run(self, deployment: Deployment, context: dict[str, Any], payload: Any) -> Outcome:
        """Invoke once on a warm instance, starting one if needed (see :class:`Driver`)."""
        body = json.dumps({"context": context, "payload": payload}).encode()
        try:
            pool = self._prepared_pool(deployment, for_run=True)
            self._stop_older_idle(pool)
            inst, cold_ms = self._acquire(pool)
        except _Retired as exc:  # not the function's fault
            return Outcome(error={"type": "SystemError", "message": exc.message, "stacktrace": []})
        except FunctionBuildError as exc:
            return Outcome(error=function_error(exc.message))
        outcome, reusable = invoke(inst, body, timeout_ms=deployment.timeout_ms or DEFAULT_TIMEOUT_MS,
                                   limits=self._limits, function=deployment.id)
        outcome.cold_start_ms = cold_ms
        if reusable:
            self._release(pool, inst)
        else:
            self._discard(pool, inst)
        return outcome

    def retire(self, deployment: Deployment) -> None:
        """Stop the version's instances (busy ones when their call ends); drop its files."""
        version_dir = self._version_dir(deployment)
        doomed = f"{version_dir}.retired-{uuid.uuid4().hex[:8]}"
        with self._lock:
            pool = self._pools.pop(deployment.id, None)
            victims = self._forget(pool) if pool else []
            # moved away under the lock, so a run that re-creates the version after this
            # point unpacks afresh instead of finding a tree about to be deleted
            try:
                os.rename(version_dir, doomed)
            except FileNotFoundError:
                pass
        for inst in victims:
            inst.stop()
        shutil.rmtree(doomed, ignore_errors=True)
        log.info("version.retired function=%s instances=%d", deployment.id, len(victims))

    def close(self) -> None:
        """Stop every instance; busy ones are stopped when their call ends."""
        self._closed.set()
        with self._lock:
            victims = [inst for pool in list(self._pools.values()) for inst in self._forget(pool)]
            self._pools.clear()
        for inst in victims:
            inst.stop()
        self._launcher.shutdown(wait=True)
        if self._cgroups is not None:
            self._cgroups.close()
        if self._own_run_dir:
            shutil.rmtree(self._run_dir, ignore_errors=True)

    # -- pools ------------------------------------------------------------------------

    def _prepared_pool(self, deployment: Deployment, *, for_run: bool) -> _Pool:
        if self._closed.is_set():
            raise _Retired("the local driver is closed")
        with self._lock:
            pool = self._pools.get(deployment.id)
            if pool is None:
                pool = _Pool(deployment, os.path.join(self._version_dir(deployment), "src"),
                             next(self._seq), self._lock)
                self._pools[deployment.id] = pool
                self._by_function.setdefault((deployment.org, deployment.name), []).append(pool)
            if pool.prepared:
                return pool
        with pool.prepare_lock:  # concurrent first runs unpack and import-check once
            if pool.prepared:
                return pool
            started = time.perf_counter()
            try:
                self._unpack(deployment, pool.src_dir)
            except (FunctionBuildError, OSError):
                if pool.retired:  # retire() moved the tree away mid-unpack
                    raise _Retired(f"function version {deployment.id} was retired") from None
                raise
            with self._lock:
                pool.count += 1
            inst = self._start(pool)
            # a run that had to prepare paid for this start; a separate prepare() did not
            inst.unreported_cold_ms = inst.cold_start_ms if for_run else None
            self._release(pool, inst)
            pool.prepared = True
            log.info("version.prepared function=%s ms=%.1f sandbox=%s", deployment.id,
                     (time.perf_counter() - started) * 1000, self.sandboxed)
        return pool

    def _acquire(self, pool: _Pool) -> tuple[Instance, float | None]:
        """An idle instance of the pool, or a new one; waits while the pool is full."""
        dead = []
        try:
            with self._lock:
                while True:
                    if self._closed.is_set():
                        raise _Retired("the local driver is closed")
                    if pool.retired:
                        raise _Retired(f"function version {pool.deployment.id} was retired")
                    while pool.idle:
                        inst = pool.idle.pop()
                        if inst.alive():
                            cold, inst.unreported_cold_ms = inst.unreported_cold_ms, None
                            return inst, cold
                        dead.append(inst)  # it died while idle (e.g. a thread it left called exit)
                        pool.count -= 1
                    if pool.count < (pool.deployment.concurrency or self._max):
                        pool.count += 1
                        break
                    pool.freed.wait()
        finally:
            for inst in dead:
                inst.stop()
        inst = self._start(pool)
        return inst, inst.cold_start_ms

    def _start(self, pool: _Pool) -> Instance:
        """Start an instance for a slot already counted in ``pool.count``."""
        d = pool.deployment
        try:
            inst = start_instance(self._launch_spec(pool), self._run_dir, self._launcher)
        except BaseException as exc:
            with self._lock:
                pool.count -= 1
                pool.freed.notify()
            if pool.retired:  # its files went away under it: say why, not the symptom
                raise _Retired(f"function version {d.id} was retired") from None
            if isinstance(exc, FunctionBuildError):
                log.info("instance.failed function=%s reason=%r", d.id, exc.message)
            raise
        log.info("instance.started function=%s instance=%s cold_ms=%.1f", d.id, inst.iid, inst.cold_start_ms)
        return inst

    def _launch_spec(self, pool: _Pool) -> LaunchSpec:
        d = pool.deployment
        runtime = runtime_for(d.language)
        if runtime is None:
            raise FunctionBuildError(f"the local driver cannot run {d.language!r} functions")
        interpreter = d.image_config.get("interpreter") or runtime.default_interpreter
        if not interpreter:
            raise FunctionBuildError(f"no interpreter for {d.language!r} functions is installed on this host")
        # an image built by the local builder: its directories (a venv, node_modules)
        # live under $DISPATCH_HOME, which the sandbox otherwise hides
        environment = (("NODE_PATH", d.image_config["nodePath"]),) if d.image_config.get("nodePath") else ()
        return LaunchSpec(handler=d.handler, runtime=runtime, interpreter=interpreter, src_dir=pool.src_dir,
                          memory_limit_mb=self._limits.memory_mb, bwrap=self._bwrap,
                          start_timeout_s=self._start_timeout, network=d.network, cgroups=self._cgroups,
                          max_tasks=self._limits.max_processes,
                          image_paths=tuple(d.image_config.get("paths") or ()),
                          image_environment=environment)

    def _release(self, pool: _Pool, inst: Instance) -> None:
        with self._lock:
            if not (pool.retired or self._closed.is_set()):
                inst.last_used = time.monotonic()
                pool.idle.append(inst)
                pool.freed.notify()
                return
            pool.count -= 1
        inst.stop()

    def _discard(self, pool: _Pool, inst: Instance) -> None:
        inst.stop()
        with self._lock:
            pool.count -= 1
            pool.freed.notify()

    def _forget(self, pool: _Pool) -> list[Instance]:
        """Mark a pool retired and take its idle instances (call with the lock held)."""
        pool.retired = True
        victims, pool.idle = pool.idle, []
        pool.count -= len(victims)
        pool.freed.notify_all()
        siblings = self._by_function.get((pool.deployment.org, pool.deployment.name), [])
        if pool in siblings:
            siblings.remove(pool)
        if not siblings:
            self._by_function.pop((pool.deployment.org, pool.deployment.name), None)
        return victims

    def _stop_older_idle(self, pool: _Pool) -> None:
        """A run of a newer version makes the idle instances of older ones useless."""
        siblings = self._by_function.get((pool.deployment.org, pool.deployment.name), ())
        if len(siblings) < 2:
            return
        victims = []
        with self._lock:
            for other in siblings:
                if other.seq < pool.seq and other.idle:
                    victims += other.idle
                    other.count -= len(other.idle)
                    other.idle = []
        for inst in victims:
            inst.stop()

    def _reap(self) -> None:
        """Stop instances idle for longer than ``idle_seconds`` (the reaper thread)."""
        interval = min(max(self._idle_s / 4, 0.05), 30.0)
        while not self._closed.wait(interval):
            cutoff = time.monotonic() - self._idle_s
            victims = []
            with self._lock:
                for pool in self._pools.values():
                    stale = [inst for inst in pool.idle if inst.last_used < cutoff]
                    if stale:
                        pool.idle = [inst for inst in pool.idle if inst.last_used >= cutoff]
                        pool.count -= len(stale)
                        victims += stale
            for inst in victims:
                log.info("instance.idle_stopped instance=%s", inst.iid)
                inst.stop()

    # -- files ------------------------------------------------------------------------

    def _version_dir(self, d: Deployment) -> str:
        for part in (d.org, d.name, d.version):
            if not part or "/" in part or part in (".", ".."):
                raise ValueError(f"unsafe path component in deployment {d.id!r}")
        return os.path.join(self._home, "functions", d.org, d.name, d.version)

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
                raise FunctionBuildError(f"the function's source cannot be unpacked: {exc}") from None
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


def _sandbox_choice(sandbox_opt: bool | None) -> str | None:
    """The bwrap executable to use, or None."""
    global _warned_no_sandbox
    if sandbox_opt is False:
        return None
    bwrap = sandbox.bwrap_path()
    if bwrap is None:
        if sandbox_opt:
            raise Unavailable("the local driver's sandbox was required but bwrap is not on PATH")
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
