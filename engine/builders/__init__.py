"""Image builders: the ``Builder`` port (:mod:`.base`) and its implementations,
``local`` (a virtualenv or node_modules per image) and ``docker`` (the Docker Engine API
and a registry)."""

from __future__ import annotations

from typing import Any

from .base import BaseImageSpec, BuildError, Builder, BuiltImage, ImageSpec

__all__ = ["BaseImageSpec", "BuildError", "Builder", "BuiltImage", "ImageSpec", "open_builder"]


def open_builder(name: str, home: str, **opts: Any) -> Builder:
    """The builder called ``name`` (``DISPATCH_BUILDER``): ``local`` or ``docker``."""
    if name == "local":
        from .local import LocalBuilder

        return LocalBuilder(home, **opts)
    if name == "docker":
        from .docker import DockerBuilder

        return DockerBuilder(home, **opts)
    raise ValueError(f"unknown builder {name!r} (known: local, docker)")
