"""The FaaS driver port: prepare a function version, run it, retire it.

Drivers: ``local`` (sandboxed warm processes, the embedded default), later ``docker``
and ``openwhisk``. The shared contract suite ``tests/contract/test_driver.py`` runs
against every driver that can run here.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Deployment:
    """One version of one function, as a driver needs it."""

    org: str
    name: str
    #: the version's id (Dispatch's ``faasId``): a new one on every create or update
    version: str
    #: ``module.function`` for Python; ``file.js`` or ``file.export`` for Node.js
    handler: str
    #: the runtime language of the function's image: ``python3`` or ``nodejs``
    language: str
    image: str
    timeout_ms: int
    #: loads the version's source, a gzip'd tar archive (called only when needed)
    source: Callable[[], bytes] = dataclasses.field(compare=False, repr=False)
    #: the image's own settings, as its builder made them for this version; the local
    #: driver reads ``interpreter``, ``paths`` (directories to bind read-only into the
    #: sandbox) and ``nodePath`` (``NODE_PATH``)
    image_config: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    #: whether the function may reach the network (sandboxed drivers give it none otherwise)
    network: bool = False
    #: the most invocations of this version at once (more wait); 0 means the driver's default
    concurrency: int = 0

    def __post_init__(self) -> None:
        if self.concurrency < 0:
            raise ValueError(f"concurrency must be 0 (the default) or more, not {self.concurrency}")

    @property
    def id(self) -> str:
        return f"{self.org}/{self.name}/{self.version}"


@dataclasses.dataclass
class Outcome:
    """What one invocation produced.

    ``error`` is ``None`` or Dispatch's ``{type, message, stacktrace}`` with ``type``
    ``FunctionError`` (the function raised, timed out or crashed) or ``SystemError``.
    """

    payload: Any = None
    logs: dict[str, list[str]] = dataclasses.field(
        default_factory=lambda: {"stdout": [], "stderr": []}
    )
    error: dict[str, Any] | None = None
    #: milliseconds spent starting a process for this call, None when it was warm
    cold_start_ms: float | None = None
    #: driver-specific facts the run records as its own fields (the ``openwhisk``
    #: driver's ``activationId``, ``initTimeMs``, ``waitTimeMs``, ``activationDurationMs``)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class Driver(abc.ABC):
    """Runs function versions. Methods may be called from many threads at once."""

    @abc.abstractmethod
    def prepare(self, deployment: Deployment) -> None:
        """Make the version runnable (unpack, build, deploy, import-check).

        Raises :class:`~engine.errors.BuildError` whose message says what is
        wrong with the function (a missing module, a syntax error, a missing handler).
        Idempotent: preparing a prepared version is cheap.
        """

    @abc.abstractmethod
    def run(self, deployment: Deployment, context: dict[str, Any], payload: Any) -> Outcome:
        """Invoke the version once, preparing it first on this host if needed.

        Never raises for a function's own failure: that is ``Outcome.error``. Enforces
        ``deployment.timeout_ms`` by killing the function.
        """

    @abc.abstractmethod
    def retire(self, deployment: Deployment) -> None:
        """Stop the version's warm instances and drop its files on this host."""

    def close(self) -> None:
        """Stop every instance this driver started."""
