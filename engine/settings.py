"""Configuration, read once from the environment at start-up (12-factor)."""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping

from .observability.logs import log_format

#: ``$DISPATCH_AUTH``'s values
AUTH_VALUES = ("on", "off")
#: ``$DISPATCH_SANDBOX``'s values
SANDBOX_VALUES = ("auto", "on", "off")


#: where custom event drivers post events when ``DISPATCH_API_URL`` is not given
DEFAULT_API_URL = "http://127.0.0.1:8080"

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
    :param reconcile_max_resends: ``$DISPATCH_RECONCILE_MAX_RESENDS``: the most stuck
        runs one reconciler pass sends again (each run also backs off on its own).
    :param idempotency_seconds: ``$DISPATCH_IDEMPOTENCY_SECONDS``: how long an
        ``Idempotency-Key`` of ``POST /v1/runs`` is remembered (per organization and
        function).
    :param run_retention_count: ``$DISPATCH_RUN_RETENTION_COUNT``: the default number of
        settled runs kept per function (a function's ``retention.count`` overrides it).
    :param run_retention_seconds: ``$DISPATCH_RUN_RETENTION_SECONDS``: the default age
        after which settled runs are pruned (a function's ``retention.ageSeconds``).
    :param sandbox: ``$DISPATCH_SANDBOX``: ``auto`` (bubblewrap when present), ``on``, ``off``.
    :param execution_retention_seconds: ``$DISPATCH_EXECUTION_RETENTION_SECONDS``: how
        long a finished workflow execution is kept (then the reconciler prunes it).
    :param event_retention_seconds: ``$DISPATCH_EVENT_RETENTION_SECONDS``: how long a
        received event is kept; a duplicate (same source and id) within it is delivered
        once.
    :param cron_seconds: ``$DISPATCH_CRON_SECONDS``: how often the scheduler's leader
        looks for due cron ticks (and supervises custom event drivers).
    :param api_url: ``$DISPATCH_API_URL``: where this installation's API answers, as
        custom event drivers reach it to post events; empty when not given (drivers then
        use :data:`DEFAULT_API_URL`, or ``dispatch up`` its own address).
    :param run_here: ``$DISPATCH_RUN_HERE``: ``on`` (the default) or ``off``. On, a
        blocking run is executed by the API process that accepted it when that process
        has warm instances of the function (stored already claimed; the queue carries
        every other run), and a function run blocking gets an instance prepared there
        in the background.
    :param run_claim_after_ms: ``$DISPATCH_RUN_CLAIM_AFTER_MS``: how long the call of such
        a run (one without a name of the caller's) may last before its claim is stored
        (default 100; 0: before the call). A call that ends sooner is stored once, with
        its result; one that lasts is stored claimed too, and started again by the
        reconciler if the process is lost (:mod:`engine.services.late_claims`).
    :param http_linger_ms: ``$DISPATCH_HTTP_LINGER_MS``: how long a thread of the embedded
        server (``dispatch up``) that has answered on a kept-alive connection waits for
        that client's next request before handing the connection back to the server's
        selector (default 2; 0: at once).
    :param max_body_bytes: ``$DISPATCH_MAX_BODY_BYTES``: the largest request body the
        gateway and the event endpoints take (413 above it).
    :param openwhisk_api_host: ``$DISPATCH_OPENWHISK_API_HOST``: OpenWhisk's API host
        (``https://host[:port]``), for ``DISPATCH_DRIVER=openwhisk``.
    :param openwhisk_namespace: ``$DISPATCH_OPENWHISK_NAMESPACE``: the namespace actions
        live in (default ``_``, the key's own).
    :param openwhisk_insecure: ``$DISPATCH_OPENWHISK_INSECURE=1``: skip TLS verification.
    :param openwhisk_memory_mb: ``$DISPATCH_OPENWHISK_MEMORY_MB``: each action's memory
        (default 256; clamped to OpenWhisk's 128-512).
    :param openwhisk_kinds: ``$DISPATCH_OPENWHISK_KINDS``: the native kind per language,
        ``python3=python:3.11,nodejs=nodejs:20`` (default ``python:3`` and ``nodejs:20``).
    :param openwhisk_auth: ``$DISPATCH_OPENWHISK_AUTH``: ``uuid:key`` (never logged).
    :param driver_commands: ``$DISPATCH_DRIVER_COMMANDS``: the executables (absolute paths,
        comma-separated) that ``command`` event-driver types may run on the scheduler's
        host. Empty (the default): such types are refused; only an operator opens this.
    :param secret_key: ``$DISPATCH_SECRET_KEY``: the Fernet key (or comma-separated keys,
        the first encrypting) that encrypts secrets at rest; see :mod:`engine.crypto`.
    :param auth: ``$DISPATCH_AUTH``: ``on`` (the default: every API request needs a
        token or a session, and a policy allowing it) or ``off`` (everything is allowed;
        logged loudly). Any other value stops start-up.
    :param oidc_issuers: ``$DISPATCH_OIDC_ISSUERS``: the trusted OIDC providers, JSON
        ``[{"issuer", "audience", "organization", "jwks_uri"?}]`` (see
        :mod:`engine.identity.oidc`); malformed JSON stops start-up.
    :param bootstrap_public_key_file: ``$DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE``: the
        distributed ``api`` process makes the admin service account ``default/admin``
        with this public key (PEM or its base64) at start-up.
    :param oidc_client: ``$DISPATCH_OIDC_CLIENT``: the browser login's client, JSON
        ``{"issuer", "client_id", "client_secret", "organization"}``.
    :param session_secret: ``$DISPATCH_SESSION_SECRET``: signs browser sessions (the
        embedded server generates one into ``$DISPATCH_HOME/session.key`` if unset).
    :param log_format: ``$DISPATCH_LOG_FORMAT``: ``text`` (the default) or ``json`` (one
        object per line, see :mod:`engine.observability.logs`).
    :param health_port: ``$DISPATCH_HEALTH_PORT``: ``port`` or ``host:port`` where the
        worker and the scheduler serve ``/healthz``, ``/readyz`` and ``/metrics``
        (unset: not served).
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
    reconcile_max_resends: int = 100
    idempotency_seconds: float = 86400.0
    run_retention_count: int = 10000
    run_retention_seconds: float = 30 * 86400.0
    sandbox: str = "auto"
    event_retention_seconds: float = 86400.0
    execution_retention_seconds: float = 7 * 86400.0
    cron_seconds: float = 1.0
    api_url: str = ""
    max_body_bytes: int = 1 << 20
    run_here: bool = True
    run_claim_after_ms: float = 100.0
    http_linger_ms: float = 2.0
    driver_commands: tuple[str, ...] = ()
    openwhisk_api_host: str | None = None
    openwhisk_namespace: str = "_"
    openwhisk_insecure: bool = False
    openwhisk_memory_mb: int = 256
    openwhisk_kinds: str = ""
    # repr=False: settings may be logged, the keys never
    openwhisk_auth: str | None = dataclasses.field(default=None, repr=False)
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    auth: str = "on"
    oidc_issuers: str = ""
    bootstrap_public_key_file: str | None = None
    oidc_client: str = dataclasses.field(default="", repr=False)
    session_secret: str | None = dataclasses.field(default=None, repr=False)
    log_format: str = "text"
    health_port: str | None = None

    def __post_init__(self):
        # a typo must not silently turn authentication off (or on)
        if self.auth not in AUTH_VALUES:
            raise ValueError(f"DISPATCH_AUTH must be one of {', '.join(AUTH_VALUES)}, "
                             f"not {self.auth!r}")
        # nor turn the functions' sandbox off
        if self.sandbox not in SANDBOX_VALUES:
            raise ValueError(f"DISPATCH_SANDBOX must be one of {', '.join(SANDBOX_VALUES)}, "
                             f"not {self.sandbox!r}")

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
            reconcile_max_resends=int(env.get("DISPATCH_RECONCILE_MAX_RESENDS") or 100),
            idempotency_seconds=float(env.get("DISPATCH_IDEMPOTENCY_SECONDS") or 86400),
            run_retention_count=int(env.get("DISPATCH_RUN_RETENTION_COUNT") or 10000),
            run_retention_seconds=float(env.get("DISPATCH_RUN_RETENTION_SECONDS")
                                        or 30 * 86400),
            sandbox=(env.get("DISPATCH_SANDBOX") or "auto").strip().lower(),
            event_retention_seconds=float(env.get("DISPATCH_EVENT_RETENTION_SECONDS") or 86400),
            execution_retention_seconds=float(
                env.get("DISPATCH_EXECUTION_RETENTION_SECONDS") or 7 * 86400),
            cron_seconds=float(env.get("DISPATCH_CRON_SECONDS") or 1),
            api_url=env.get("DISPATCH_API_URL") or "",
            max_body_bytes=int(env.get("DISPATCH_MAX_BODY_BYTES") or (1 << 20)),
            run_here=(env.get("DISPATCH_RUN_HERE") or "on").strip().lower() not in ("0", "off", "false", "no"),
            run_claim_after_ms=float(env.get("DISPATCH_RUN_CLAIM_AFTER_MS") or 100),
            http_linger_ms=float(env.get("DISPATCH_HTTP_LINGER_MS") or 2),
            driver_commands=tuple(c.strip() for c in
                                  (env.get("DISPATCH_DRIVER_COMMANDS") or "").split(",")
                                  if c.strip()),
            openwhisk_api_host=env.get("DISPATCH_OPENWHISK_API_HOST") or None,
            openwhisk_namespace=env.get("DISPATCH_OPENWHISK_NAMESPACE") or "_",
            openwhisk_insecure=(env.get("DISPATCH_OPENWHISK_INSECURE") or "").lower() in ("1", "true", "yes"),
            openwhisk_memory_mb=int(env.get("DISPATCH_OPENWHISK_MEMORY_MB") or 256),
            openwhisk_kinds=env.get("DISPATCH_OPENWHISK_KINDS") or "",
            openwhisk_auth=env.get("DISPATCH_OPENWHISK_AUTH") or None,
            secret_key=env.get("DISPATCH_SECRET_KEY") or None,
            auth=(env.get("DISPATCH_AUTH") or "on").strip().lower(),
            oidc_issuers=env.get("DISPATCH_OIDC_ISSUERS") or "",
            bootstrap_public_key_file=env.get("DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE") or None,
            oidc_client=env.get("DISPATCH_OIDC_CLIENT") or "",
            session_secret=env.get("DISPATCH_SESSION_SECRET") or None,
            log_format=log_format(env),
            health_port=env.get("DISPATCH_HEALTH_PORT") or None,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def embedded(self) -> bool:
        return self.broker_url.startswith("stub:")
