"""One distributed Dispatch process (api, gateway, worker, scheduler), assembled the same
way for each: logging set up once, settings read, the broker made, the engine assembled
— and, when any of that fails, a process that stays up, says why on ``/readyz`` and in
one log line, and serves nothing else (see :mod:`engine.observability.health`).
"""

from __future__ import annotations

import logging
from typing import Callable

import dramatiq

from engine.observability.health import Health, Startup, describe, store_check
from engine.observability.logs import configure_logging
from engine.settings import Settings
from engine.system import Dispatch

from .actors import QUEUES, assemble
from .broker import check_broker, make_broker, observability

log = logging.getLogger("dispatch.process")


class Process:
    """The engine of one process and its health.

    :param role: ``api``, ``gateway``, ``worker`` or ``scheduler`` (in logs, ``/readyz``
        and the ``dispatch_ready`` metric).
    :param prepare: run on the assembled engine before it counts as ready (the api's
        admin bootstrap); an :class:`~engine.errors.Unavailable` from it is retried.
    """

    def __init__(self, role: str, prepare: Callable[[Dispatch], None] | None = None):
        configure_logging()
        self.role = role
        self.health = Health(role)
        self._prepare = prepare
        self.settings: Settings | None = None
        self.startup: Startup[Dispatch] | None = None
        try:
            self.settings = Settings.from_env()
            self.broker: dramatiq.Broker = make_broker(self.settings.broker_url)
        except ValueError as exc:
            # a setting that cannot work: said once, and on /readyz until fixed
            problem = describe(exc)
            log.error("startup.failed role=%s configuration: %s (fix the configuration and "
                      "restart)", role, problem)
            self.health.add("configuration", _failing(problem))
            self.broker = make_broker("stub://")  # a placeholder: nothing is consumed
            return
        url = self.settings.broker_url
        self.health.add("broker", lambda: check_broker(self.broker, url))
        self.startup = Startup("engine", self._assemble, self.health)

    def _assemble(self) -> Dispatch:
        system = assemble(self.settings, self.broker)
        try:
            if self._prepare is not None:
                self._prepare(system)
        except Exception:
            system.close()
            raise
        self.health.add("store", store_check(system.store, self.settings.store_url))
        return system

    @property
    def system(self) -> Dispatch | None:
        """The engine, once assembled (None until then)."""
        return self.startup.result if self.startup is not None else None

    def check_actors(self) -> str:
        """The worker's readiness: every job has its actor, and Dramatiq's worker
        consumes their queues."""
        declared = set(self.broker.get_declared_actors())
        missing = sorted(set(QUEUES) - declared)
        if missing:
            raise RuntimeError(f"actors not declared: {', '.join(missing)}")
        middleware = observability(self.broker)
        worker = middleware.worker if middleware is not None else None
        if worker is None:
            raise RuntimeError("the Dramatiq worker has not started consuming")
        queues = sorted(q for q in worker.consumers if not q.endswith(".DQ"))
        return f"{len(declared)} actors; consuming {', '.join(queues)}"

    def serve_health(self) -> None:
        """Serve ``/healthz``, ``/readyz``, ``/metrics`` on ``DISPATCH_HEALTH_PORT``, if set."""
        address = self.settings.health_port if self.settings else None
        if not address:
            return
        from .health_server import serve_health

        try:
            serve_health(address, self.health)
        except OSError as exc:  # a sibling worker process serves it (or a stranger)
            log.info("health.not_served role=%s address=%s: %s", self.role, address,
                     describe(exc))
        except ValueError as exc:
            log.error("health.not_served role=%s: %s", self.role, describe(exc))

    def close(self) -> None:
        if self.startup is not None:
            self.startup.stop()
        if self.system is not None:
            self.system.close()


def _failing(message: str) -> Callable[[], str]:
    def check() -> str:
        raise RuntimeError(message)

    return check

