"""Warm instances per function version: the pooling a driver of long-lived function
servers needs, whatever an instance is (a process, a container).

Each version gets a pool of up to ``concurrency`` (or the driver's default) instances,
each serving one invocation at a time. A pool is *prepared* once (its ``setup`` runs and
one instance is started, so a broken handler fails early); idle instances are reused last
in, first out; calls beyond the limit wait for a free one; instances idle for too long are
stopped by a reaper thread; past ``max_instances`` over every pool, starting one stops
the least recently used idle instance of any version; a run of a newer version of a function stops the idle
instances of its older versions; a retired pool takes no new calls and its busy instances
are stopped when their call ends. Stopping is handed to the driver's ``dispose``, which
may take its time (removing a container does).

Used by the ``local`` driver (processes) and the ``docker`` driver (containers).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Callable, Generic, Protocol, TypeVar

from ..observability import metrics
from ..errors import BuildError
from .base import Deployment


class WarmInstance(Protocol):
    """What the pool needs of an instance."""

    iid: str
    cold_start_ms: float
    #: a cold start that the run which caused it has not yet reported
    unreported_cold_ms: float | None
    last_used: float

    def alive(self) -> bool: ...


I = TypeVar("I", bound=WarmInstance)


class Retired(BuildError):
    """The version was retired (or the driver closed) while a call was getting to it."""


class Pool(Generic[I]):
    """The instances of one version; guarded by :attr:`WarmPools.lock`."""

    def __init__(self, deployment: Deployment, seq: int, lock: threading.Lock,
                 driver: str = "local"):
        self.deployment = deployment
        #: creation order: a pool created later holds a newer version of its function
        self.seq = seq
        self.idle: list[I] = []
        #: instances alive or being started
        self.count = 0
        self.freed = threading.Condition(lock)
        self.prepare_lock = threading.Lock()
        self.prepared = False
        self.retired = False
        function = metrics.function_label(deployment.org, deployment.name)
        self._gauges = (metrics.WARM_INSTANCES.labels(driver, function, "idle"),
                        metrics.WARM_INSTANCES.labels(driver, function, "busy"))
        self._shown = (0, 0)

    def show(self) -> None:
        """Publish the pool's sizes (call with the lock held after a change). Versions of
        one function share its gauges, so each pool adds its own difference."""
        idle = len(self.idle)
        now = (idle, max(0, self.count - idle))
        for gauge, new, old in zip(self._gauges, now, self._shown):
            if new != old:
                gauge.inc(new - old)
        self._shown = now


class WarmPools(Generic[I]):
    """Every pool of one driver.

    :param setup: prepares a version once, before its first instance (may raise
        BuildError)
    :param start: starts an instance of a version (may raise BuildError)
    :param dispose: stops instances no longer wanted (may return before they are gone)
    :param max_per_version: instances per version unless its deployment sets ``concurrency``
    :param idle_seconds: instances unused for this long are stopped
    :param max_instances: instances over every pool (None: no bound); starting one more
        stops the least recently used idle instance, of any version. Busy instances are
        never stopped for room, so the bound holds while some instance is idle.
    """

    def __init__(self, *, setup: Callable[[Deployment], None], start: Callable[[Deployment], I],
                 dispose: Callable[[list[I]], None], max_per_version: int, idle_seconds: float,
                 log: logging.Logger, driver: str = "local", max_instances: int | None = None):
        self._setup, self._start, self._dispose = setup, start, dispose
        self._max = max(1, max_per_version)
        self._max_total = max_instances
        self._idle_s = idle_seconds
        self._log = log
        self._driver = driver
        self.lock = threading.Lock()
        self._pools: dict[str, Pool[I]] = {}
        self._by_function: dict[tuple[str, str], list[Pool[I]]] = {}
        self._seq = itertools.count()
        self.closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name=f"{log.name}-reaper", daemon=True)
        self._reaper.start()

    def prepared(self, deployment: Deployment, *, for_run: bool) -> Pool[I]:
        """The version's pool, prepared (its setup done, one instance started) if it was not."""
        if self.closed.is_set():
            raise Retired("the driver is closed")
        with self.lock:
            pool = self._pools.get(deployment.id)
            if pool is None:
                pool = Pool(deployment, next(self._seq), self.lock, self._driver)
                self._pools[deployment.id] = pool
                self._by_function.setdefault((deployment.org, deployment.name), []).append(pool)
            if pool.prepared:
                return pool
        with pool.prepare_lock:  # concurrent first runs prepare once
            if pool.prepared:
                return pool
            started = time.perf_counter()
            try:
                self._setup(deployment)
            except Exception:
                if pool.retired:  # retired mid-setup (its files moved away): say why
                    raise Retired(f"function version {deployment.id} was retired") from None
                raise
            with self.lock:
                pool.count += 1
                pool.show()
            inst = self._started(pool)
            # a run that had to prepare paid for this start; a separate prepare() did not
            inst.unreported_cold_ms = inst.cold_start_ms if for_run else None
            self.release(pool, inst)
            pool.prepared = True
            self._log.info("version.prepared function=%s ms=%.1f", deployment.id,
                           (time.perf_counter() - started) * 1000)
        return pool

    def warm_here(self, deployment: Deployment) -> bool:
        """Whether the version's pool is prepared and not retired (a hint, read without
        the lock)."""
        pool = self._pools.get(deployment.id)
        return pool is not None and pool.prepared and not pool.retired

    def acquire(self, pool: Pool[I]) -> tuple[I, float | None]:
        """An idle instance of the pool, or a new one; waits while the pool is full.
        Returns the instance and the cold start to report (None when it was warm)."""
        while True:
            with self.lock:
                inst = self._take(pool)
            if inst is None:
                inst = self._started(pool)
                return inst, inst.cold_start_ms
            # asked without the lock: it is a system call, which lets the interpreter
            # lock go, and every other run's acquire and release would wait meanwhile
            if inst.alive():
                cold, inst.unreported_cold_ms = inst.unreported_cold_ms, None
                return inst, cold
            with self.lock:  # it died while idle: its place is free again
                pool.count -= 1
                pool.freed.notify()
                pool.show()
            self._dispose([inst])

    def _take(self, pool: Pool[I]) -> I | None:
        """An idle instance, taken; or None with a place taken for a new one; waits while
        the pool is full (call with the lock)."""
        while True:
            if self.closed.is_set():
                raise Retired("the driver is closed")
            if pool.retired:
                raise Retired(f"function version {pool.deployment.id} was retired")
            if pool.idle:
                inst = pool.idle.pop()
                pool.show()
                return inst
            if pool.count < (pool.deployment.concurrency or self._max):
                pool.count += 1
                pool.show()
                return None
            pool.freed.wait()

    def release(self, pool: Pool[I], inst: I) -> None:
        """Give back an instance that may serve again."""
        with self.lock:
            if not (pool.retired or self.closed.is_set()):
                inst.last_used = time.monotonic()
                pool.idle.append(inst)
                pool.freed.notify()
                pool.show()
                return
            pool.count -= 1
            pool.show()
        self._dispose([inst])

    def discard(self, pool: Pool[I], inst: I) -> None:
        """Give back an instance that must not serve again (it crashed, timed out, ...)."""
        self._dispose([inst])
        with self.lock:
            pool.count -= 1
            pool.freed.notify()
            pool.show()

    def retire(self, deployment: Deployment,
               while_locked: Callable[[], None] | None = None) -> list[I]:
        """Retire the version's pool; returns its idle instances (the caller stops them).

        ``while_locked`` runs before the lock is let go, e.g. to move the version's files
        away before a new run of it could start preparing it again.
        """
        with self.lock:
            pool = self._pools.pop(deployment.id, None)
            victims = self._forget(pool) if pool else []
            if while_locked is not None:
                while_locked()
            return victims

    def close(self) -> list[I]:
        """Retire every pool and stop the reaper; returns the idle instances."""
        self.closed.set()
        with self.lock:
            victims = [inst for pool in list(self._pools.values()) for inst in self._forget(pool)]
            self._pools.clear()
        self._reaper.join(timeout=5)
        return victims

    def stop_older_idle(self, pool: Pool[I]) -> None:
        """A run of a newer version makes the idle instances of older ones useless."""
        siblings = self._by_function.get((pool.deployment.org, pool.deployment.name), ())
        if len(siblings) < 2:
            return
        victims: list[I] = []
        with self.lock:
            for other in siblings:
                if other.seq < pool.seq and other.idle:
                    victims += other.idle
                    other.count -= len(other.idle)
                    other.idle = []
                    other.show()
        if victims:
            self._dispose(victims)

    def _make_room(self, pool: Pool[I]) -> None:
        """Stop least recently used idle instances while all pools together hold more
        than ``max_instances`` (the new one, counted in ``pool.count``, included)."""
        if self._max_total is None:
            return
        victims: list[I] = []
        with self.lock:
            total = sum(p.count for p in self._pools.values())
            while total > self._max_total:
                oldest = None
                for other in self._pools.values():
                    for inst in other.idle:
                        if oldest is None or inst.last_used < oldest[1].last_used:
                            oldest = (other, inst)
                if oldest is None:
                    break
                other, inst = oldest
                other.idle.remove(inst)
                other.count -= 1
                other.show()
                total -= 1
                victims.append(inst)
        if victims:
            for inst in victims:
                self._log.info("instance.evicted instance=%s reason=max_instances", inst.iid)
            self._dispose(victims)

    def _started(self, pool: Pool[I]) -> I:
        """Start an instance for a slot already counted in ``pool.count``."""
        d = pool.deployment
        self._make_room(pool)
        try:
            inst = self._start(d)
        except BaseException as exc:
            with self.lock:
                pool.count -= 1
                pool.freed.notify()
                pool.show()
            if pool.retired:  # what it needed went away under it: say why, not the symptom
                raise Retired(f"function version {d.id} was retired") from None
            if isinstance(exc, BuildError):
                self._log.info("instance.failed function=%s reason=%r", d.id, exc.message)
            raise
        self._log.info("instance.started function=%s instance=%s cold_ms=%.1f", d.id, inst.iid,
                       inst.cold_start_ms)
        return inst

    def _forget(self, pool: Pool[I]) -> list[I]:
        """Mark a pool retired and take its idle instances (call with the lock held)."""
        pool.retired = True
        victims, pool.idle = pool.idle, []
        pool.count -= len(victims)
        pool.freed.notify_all()
        pool.show()
        key = (pool.deployment.org, pool.deployment.name)
        siblings = self._by_function.get(key, [])
        if pool in siblings:
            siblings.remove(pool)
        if not siblings:
            self._by_function.pop(key, None)
        return victims

    def _reap(self) -> None:
        """Stop instances idle for longer than ``idle_seconds`` (the reaper thread)."""
        interval = min(max(self._idle_s / 4, 0.05), 30.0)
        while not self.closed.wait(interval):
            cutoff = time.monotonic() - self._idle_s
            victims: list[I] = []
            with self.lock:
                for pool in self._pools.values():
                    stale = [inst for inst in pool.idle if inst.last_used < cutoff]
                    if stale:
                        pool.idle = [inst for inst in pool.idle if inst.last_used >= cutoff]
                        pool.count -= len(stale)
                        pool.show()
                        victims += stale
            if victims:
                for inst in victims:
                    self._log.info("instance.idle_stopped instance=%s", inst.iid)
                self._dispose(victims)


__all__ = ["Pool", "Retired", "WarmInstance", "WarmPools"]
