"""Assembles one Dispatch process's engine from its settings and a job queue."""

from __future__ import annotations

from .builders import open_builder
from .builders.base import Builder
from .crypto import load_cipher
from .drivers import open_driver
from .drivers.base import Driver
from .images import BUILTIN_IMAGES, ImageCatalog
from .jobs import Jobs
from .services.base_images import BaseImageService
from .services.functions import FunctionService
from .services.images import ImageService
from .services.reconciler import Reconciler
from .services.runs import RunService
from .services.secrets import SecretService
from .settings import Settings
from .steps.secrets import SecretInjection
from .steps.validation import SchemaValidation
from .store import Store, open_store


class Dispatch:
    """The store, the driver, the builder and the services over them, for one process."""

    def __init__(self, settings: Settings, jobs: Jobs, store: Store | None = None,
                 driver: Driver | None = None, builder: Builder | None = None):
        # first: a bad or missing key stops start-up before the store opens
        cipher = load_cipher(settings)
        self.settings = settings
        self.jobs = jobs
        self.store = store or open_store(settings.store_url)
        sandbox = {"auto": None, "on": True, "off": False}[settings.sandbox]
        self.driver = driver or open_driver(settings.driver, settings.home, sandbox=sandbox)
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
                               steps=[SchemaValidation(), SecretInjection(self.secrets.resolve)])
        self.reconciler = Reconciler(self.store, jobs, settings.stuck_seconds,
                                     settings.run_attempts, settings.base_check_seconds)

    def close(self) -> None:
        self.reconciler.close()
        self.runs.close()
        self.driver.close()
        self.builder.close()
        self.store.close()
