"""FaaS drivers: the ``Driver`` port (:mod:`.base`) and its implementations."""

from __future__ import annotations

from typing import Any

from .base import Deployment, Driver, Outcome

__all__ = ["Deployment", "Driver", "Outcome", "open_driver"]


def open_driver(name: str, home: str, **opts: Any) -> Driver:
    """The driver called ``name`` (``DISPATCH_DRIVER``), with its options.

    :param home: the directory the driver may keep files in (``$DISPATCH_HOME``)
    :raises ValueError: for a driver this build does not have
    """
    if name == "local":
        from .local import LocalDriver

        return LocalDriver(home, **opts)
    if name == "docker":
        from .docker import DockerDriver

        return DockerDriver(home, **opts)
    if name == "openwhisk":
        from .openwhisk import OpenWhiskDriver

        return OpenWhiskDriver(home, **opts)
    raise ValueError(f"unknown driver {name!r} (known: local, docker, openwhisk)")
