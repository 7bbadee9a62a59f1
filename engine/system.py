"""Assembles one Dispatch process's engine from its settings and a job queue."""

from __future__ import annotations

import threading

from .builders import open_builder
from .builders.base import Builder
from .scheduler.cron import CronScheduler
from .crypto import load_cipher
from .scheduler.driver_processes import DriverSupervisor
from .drivers import open_driver
from .drivers.base import Driver
from .scheduler.event_scheduler import lease_seconds
from .identity.access import AccessControl
from .identity.oidc import parse_issuers
from .services.catalog import BUILTIN_IMAGES, ImageCatalog
from .jobs import Jobs
from .services.activities import ActivityService
from .services.apis import ApiService
from .services.base_images import BaseImageService
from .services.event_drivers import EventDriverService
from .services.events import EventService
from .services.executions import ExecutionService
from .services.listeners import ListenerService, remove_of_execution
from .services.functions import FunctionService
from .services.images import ImageService
from .services.ingest import IngestService
from .scheduler.reconciler import Reconciler
from .services.routes import RouteTable
from .services.runs import RunService
from .services.scripts import ScriptRunner
from .services.secrets import SecretService
from .services.subscriptions import SubscriptionService
from .services.workflow_triggers import WorkflowTriggers
from .services.workflows import WorkflowService
from .services.run_retention import RunRetention
from .settings import DEFAULT_API_URL, Settings
from .steps.secrets import SecretInjection
from .steps.validation import SchemaValidation
from .store import Store, open_store
from .store.instrumented import instrumented


class Dispatch:
    """The store, the driver, the builder and the services over them, for one process."""

    def __init__(self, settings: Settings, jobs: Jobs, store: Store | None = None,
                 driver: Driver | None = None, builder: Builder | None = None):
        # first: a bad or missing key stops start-up before the store opens
        cipher = load_cipher(settings)
        self._oidc_issuers = parse_issuers(settings.oidc_issuers)  # likewise bad JSON
        self._identity: AccessControl | None = None
        self._routes: RouteTable | None = None
        self._lazy_lock = threading.Lock()
        self.settings = settings
        self.jobs = jobs
        # every operation timed, in one place (dispatch_store_operation_seconds)
        self.store = instrumented(store or open_store(settings.store_url))
        sandbox = {"auto": None, "on": True, "off": False}[settings.sandbox]
        driver_options: dict = {"sandbox": sandbox}
        if settings.driver == "openwhisk":
            driver_options = {
                "api_host": settings.openwhisk_api_host, "auth": settings.openwhisk_auth,
                "namespace": settings.openwhisk_namespace,
                "insecure": settings.openwhisk_insecure,
                "memory_mb": settings.openwhisk_memory_mb, "kinds": settings.openwhisk_kinds,
            }
        self.driver = driver or open_driver(settings.driver, settings.home, **driver_options)
        if builder is None:
            options = {"registry": settings.registry} if settings.builder == "docker" else {}
            builder = open_builder(settings.builder, settings.home, **options)
        self.builder = builder
        # built-in images are this host's runtimes: only a local build can run on them
        self.catalog = ImageCatalog(self.store,
                                    BUILTIN_IMAGES if settings.builder == "local" else {})
        self.base_images = BaseImageService(self.store, jobs, self.builder)
        self.images = ImageService(self.store, jobs, self.builder,
                                   build_seconds=settings.build_seconds)
        self.functions = FunctionService(self.store, jobs, self.driver, self.catalog,
                                         builder=self.builder)
        self.secrets = SecretService(self.store, cipher)
        self.runs = RunService(self.store, jobs, self.driver, self.functions,
                               attempts=settings.run_attempts,
                               claim_grace_seconds=settings.claim_grace_seconds,
                               idempotency_seconds=settings.idempotency_seconds,
                               steps=[SchemaValidation(), SecretInjection(self.secrets.resolve)],
                               run_here=settings.run_here,
                               claim_after_seconds=settings.run_claim_after_ms / 1000)
        self.events = EventService(self.store, jobs, self.runs,
                                   retention_seconds=settings.event_retention_seconds)
        # workflows: executions replay over activity records; activities are runs, HTTP
        # calls, timers, events…; triggers and listeners hang on event delivery
        self.workflows = WorkflowService(self.store)
        self.executions = ExecutionService(
            self.store, jobs, self.secrets.resolve, cipher,
            retention_seconds=settings.execution_retention_seconds)
        self.activities = ActivityService(self.store, jobs, self.runs, self.executions,
                                          self.events.emit, scripts=ScriptRunner(sandbox))
        self.listeners = ListenerService(self.store, self.activities.finish)
        self.workflow_triggers = WorkflowTriggers(self.store, self.executions,
                                                  grace=2 * settings.cron_seconds
                                                  + lease_seconds(settings.cron_seconds))
        self.events.triggers, self.events.listeners = self.workflow_triggers, self.listeners
        self.executions.on_finished += [lambda e: remove_of_execution(self.store, e),
                                        self.workflow_triggers.finished]
        self.subscriptions = SubscriptionService(self.store, jobs, self.functions)
        self.apis = ApiService(self.store, jobs)
        self.event_drivers = EventDriverService(self.store, jobs, cipher,
                                                settings.api_url or DEFAULT_API_URL,
                                                allowed_commands=settings.driver_commands)
        self.ingest = IngestService(self.store, self.event_drivers, self.events.emit,
                                    max_body_bytes=settings.max_body_bytes)
        # the scheduler's leader runs these two (engine.scheduler.event_scheduler)
        self.cron = CronScheduler(self.store, self.events.emit,
                                  grace=2 * settings.cron_seconds
                                  + lease_seconds(settings.cron_seconds))
        self.driver_supervisor = DriverSupervisor(self.store, self.event_drivers,
                                                  self.secrets.resolve, settings.home)
        self.reconciler = Reconciler(self.store, jobs, settings.stuck_seconds,
                                     settings.run_attempts, settings.base_check_seconds,
                                     event_retention_seconds=settings.event_retention_seconds,
                                     max_resends_per_pass=settings.reconcile_max_resends,
                                     run_retention=RunRetention(
                                         settings.run_retention_count or None,
                                         settings.run_retention_seconds or None),
                                     executions=self.executions)

    @property
    def identity(self) -> AccessControl:
        """Authentication and authorization (built on first use: only API processes
        use it, and it keeps watches on the store)."""
        if self._identity is None:  # every API request asks: the lock only at first use
            with self._lazy_lock:  # one per process, even if first used by two threads
                if self._identity is None:
                    self._identity = AccessControl(self.store, self._oidc_issuers,
                                                   enabled=self.settings.auth == "on")
        return self._identity

    @property
    def routes(self) -> RouteTable:
        """The gateway's route table (built on first use: only gateway-serving processes
        use it, and it keeps a watch on the store)."""
        if self._routes is None:
            with self._lazy_lock:
                if self._routes is None:
                    self._routes = RouteTable(self.store)
        return self._routes

    def close(self) -> None:
        if self._identity is not None:
            self._identity.close()
        self.reconciler.close()
        self.driver_supervisor.close()
        if self._routes is not None:
            self._routes.close()
        self.runs.close()
        self.executions.close()
        self.driver.close()
        self.builder.close()
        self.store.close()
