"""Liveness and readiness of one Dispatch process.

*Live* means the process answers (``/healthz``); *ready* means it can serve what it is
for (``/readyz``): its configuration is whole, its engine is assembled, and every check
passes — the store answers, the broker answers, and on a worker the actors are
declared. Each check that fails says what is wrong in words an operator can act on
("store etcd://10.0.0.9:2379: no etcd endpoint is reachable: 10.0.0.9:2379").

A process whose assembly fails does not exit (a crash loop says nothing to whoever
looks at it): :class:`Startup` keeps the reason, logs it once, and — when the cause may
pass, like an unreachable etcd — tries again in the background until it succeeds.
Meanwhile the process is live and not ready, and serves nothing but its health.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Any, Callable, Generic, TypeVar

from ..errors import InvalidInput, Unavailable

log = logging.getLogger("dispatch.health")

#: seconds a readiness check may take before it counts as failed
CHECK_TIMEOUT = 2.0

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "message": self.message}


@dataclasses.dataclass(frozen=True)
class Report:
    """What ``/readyz`` answers: ``ready`` and one result per check."""

    role: str
    ready: bool
    checks: tuple[CheckResult, ...]

    @property
    def problems(self) -> list[str]:
        return [f"{c.name}: {c.message}" for c in self.checks if not c.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "ready": self.ready,
                "status": "ready" if self.ready else "not ready",
                "problems": self.problems,
                "checks": [c.as_dict() for c in self.checks]}


class Health:
    """The readiness checks of one process (``role``: api, gateway, worker, scheduler,
    embedded). A check is a callable that returns a short description when fine and
    raises when not; its exception's message is the reason."""

    def __init__(self, role: str, timeout: float = CHECK_TIMEOUT):
        self.role = role
        self.timeout = timeout
        self._checks: dict[str, Callable[[], Any]] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
        self._lock = threading.Lock()

    def add(self, name: str, check: Callable[[], Any]) -> None:
        """Add (or replace) the check ``name``."""
        with self._lock:
            self._checks[name] = check

    def remove(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def report(self) -> Report:
        """Run every check at once, each within :attr:`timeout` seconds."""
        from . import metrics

        with self._lock:
            checks = list(self._checks.items())
        futures = [(name, self._pool.submit(check)) for name, check in checks]
        deadline = time.monotonic() + self.timeout
        results = []
        for name, future in futures:
            try:
                detail = future.result(timeout=max(0.0, deadline - time.monotonic()))
                results.append(CheckResult(name, True, str(detail) if detail else "ok"))
            except FutureTimeout:
                results.append(CheckResult(name, False,
                                           f"no answer within {self.timeout:g} s"))
            except Exception as exc:  # noqa: BLE001 - any failure is the check's answer
                results.append(CheckResult(name, False, describe(exc)))
        ready = all(r.ok for r in results)
        metrics.READY.labels(self.role).set(1 if ready else 0)
        return Report(self.role, ready, tuple(results))


def store_check(store, url: str) -> Callable[[], str]:
    """A check that the store answers (its current revision)."""
    where = redact_url(url)

    def check() -> str:
        try:
            return f"{where} at revision {store.revision()}"
        except Exception as exc:
            raise Unavailable(f"{where}: {describe(exc)}") from exc

    return check


def redact_url(url: str) -> str:
    """``url`` without a password (``redis://:secret@host`` → ``redis://:***@host``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def describe(exc: BaseException) -> str:
    """An exception as one line: its message (the engine's errors carry one)."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(message).split())


class Startup(Generic[T]):
    """Assembles a process's engine (``build``) and says how that went, as a check.

    ``build`` runs at once; if it fails it is tried again in a background thread every
    ``retry_seconds`` until it succeeds (the store or the broker cannot be reached yet,
    or is starting) — unless the failure is the configuration's (a ``ValueError``: a
    missing or malformed key, a bad setting; or an :class:`~engine.errors.InvalidInput`:
    an unusable key file), which only a restart with a fixed configuration mends. Each
    distinct reason is logged once, not at every attempt.
    """

    def __init__(self, what: str, build: Callable[[], T], health: Health,
                 retry_seconds: float = 2.0):
        self.what, self._build, self.health = what, build, health
        self.retry_seconds = retry_seconds
        self.result: T | None = None
        self.problem: str | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._logged: str | None = None
        self._transient = False
        health.add("startup", self.check)
        if not self._attempt():
            if self.problem is not None and self._transient:
                threading.Thread(target=self._retry, name="startup-retry", daemon=True).start()

    def _attempt(self) -> bool:
        try:
            result = self._build()
        except Exception as exc:  # noqa: BLE001 - every failure becomes the reason
            self._transient = not isinstance(exc, (ValueError, InvalidInput))
            self.problem = describe(exc)
            if self.problem != self._logged:  # once per distinct reason
                self._logged = self.problem
                log.error("startup.failed role=%s %s: %s%s", self.health.role, self.what,
                          self.problem, " (retrying)" if self._transient else
                          " (fix the configuration and restart)")
            return False
        self.result, self.problem = result, None
        if self._logged is not None:
            log.info("startup.recovered role=%s %s", self.health.role, self.what)
        self.done.set()
        return True

    def _retry(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            if self._attempt():
                return

    def check(self) -> str:
        if self.done.is_set():
            return "assembled"
        raise RuntimeError(self.problem or "starting")

    def stop(self) -> None:
        self._stop.set()
