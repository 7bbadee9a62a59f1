"""Configuration, read once from the environment at start-up (12-factor)."""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every knob of a Dispatch process.

    :param home: ``$DISPATCH_HOME``, where embedded state lives (default ``~/.dispatch``).
    :param store_url: ``$DISPATCH_STORE``: ``sqlite:///…`` (default), ``etcd://h:p,…``,
        ``memory://``.
    :param broker_url: ``$DISPATCH_BROKER``: ``stub://`` (in-process, default),
        ``redis://…`` or ``amqp://…``.
    :param driver: ``$DISPATCH_DRIVER``: ``local`` (default).
    :param builder: ``$DISPATCH_BUILDER``: ``local`` (default: a virtualenv or
        ``node_modules`` per image on this host) or ``docker``.
    :param registry: ``$DISPATCH_REGISTRY``: ``host:port`` of the registry the ``docker``
        builder pushes images to (default ``127.0.0.1:5000``).
    :param build_seconds: ``$DISPATCH_BUILD_SECONDS``: how long one image build may take
        before it fails and the reconciler takes it back.
    :param base_check_seconds: ``$DISPATCH_BASE_CHECK_SECONDS``: how often READY base
        images are checked for presence (MISSING when the builder lost them).
    :param worker_threads: ``$DISPATCH_WORKER_THREADS``: job threads per worker process.
    :param reconcile_seconds: ``$DISPATCH_RECONCILE_SECONDS``: how often the
        reconciler looks for stuck entities.
    :param stuck_seconds: ``$DISPATCH_STUCK_SECONDS``: how long an entity may sit in a
        transitional status, or a run claim outlive its deadline, before it is re-driven.
    :param run_attempts: ``$DISPATCH_RUN_ATTEMPTS``: how many times a run whose worker
        was lost is started before it ends in ``ERROR``.
    :param claim_grace_seconds: ``$DISPATCH_CLAIM_GRACE_SECONDS``: how long past its
        function's timeout a worker's claim on a run lasts; after that the run's worker is
        taken for lost.
    :param sandbox: ``$DISPATCH_SANDBOX``: ``auto`` (bubblewrap when present), ``on``, ``off``.
    :param secret_key: ``$DISPATCH_SECRET_KEY``: the Fernet key (or comma-separated keys,
        the first encrypting) that encrypts secrets at rest; see :mod:`engine.crypto`.
    """

    home: str
    store_url: str
    broker_url: str = "stub://"
    driver: str = "local"
    builder: str = "local"
    registry: str = "127.0.0.1:5000"
    build_seconds: float = 600.0
    base_check_seconds: float = 60.0
    worker_threads: int = 8
    reconcile_seconds: float = 5.0
    stuck_seconds: float = 30.0
    run_attempts: int = 2
    claim_grace_seconds: float = 30.0
    sandbox: str = "auto"
    # repr=False: settings may be logged, the key never
    secret_key: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        home = overrides.pop("home", None) or env.get("DISPATCH_HOME") or os.path.expanduser(
            "~/.dispatch"
        )
        home = os.path.abspath(home)
        values = dict(
            home=home,
            store_url=env.get("DISPATCH_STORE") or f"sqlite:///{home}/dispatch.db",
            broker_url=env.get("DISPATCH_BROKER") or "stub://",
            driver=env.get("DISPATCH_DRIVER") or "local",
            builder=env.get("DISPATCH_BUILDER") or "local",
            registry=env.get("DISPATCH_REGISTRY") or "127.0.0.1:5000",
            build_seconds=float(env.get("DISPATCH_BUILD_SECONDS") or 600),
            base_check_seconds=float(env.get("DISPATCH_BASE_CHECK_SECONDS") or 60),
            worker_threads=int(env.get("DISPATCH_WORKER_THREADS") or 8),
            reconcile_seconds=float(env.get("DISPATCH_RECONCILE_SECONDS") or 5),
            stuck_seconds=float(env.get("DISPATCH_STUCK_SECONDS") or 30),
            run_attempts=int(env.get("DISPATCH_RUN_ATTEMPTS") or 2),
            claim_grace_seconds=float(env.get("DISPATCH_CLAIM_GRACE_SECONDS") or 30),
            sandbox=env.get("DISPATCH_SANDBOX") or "auto",
            secret_key=env.get("DISPATCH_SECRET_KEY") or None,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def embedded(self) -> bool:
        return self.broker_url.startswith("stub:")
