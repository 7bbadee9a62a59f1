"""The builder port: verify base images, build images with their dependencies, and
turn a function version into what its driver runs.

Dispatch's image manager: a *base image* names a language runtime (``dockerUrl`` +
``language``); an *image* adds runtime dependencies (a ``requirements.txt`` or
``package.json`` manifest) and system packages onto a base image; a function is built
onto an image. Builders: ``local`` (embedded default) and ``docker``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from ..drivers.base import Deployment
from ..errors import BuildError  # noqa: F401 (builders raise it; re-exported)


@dataclasses.dataclass(frozen=True)
class BaseImageSpec:
    """A base image as a builder sees it."""

    org: str
    name: str
    #: Dispatch's ``dockerUrl``: the image reference (docker), or which runtime (local)
    url: str
    language: str


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """An image as a builder sees it: dependencies onto a base image."""

    org: str
    name: str
    #: the image entity's id, for labels
    id: str
    base: BaseImageSpec
    #: the runtime dependencies' manifest verbatim (requirements.txt, package.json), or None
    manifest: str | None = None
    #: system packages: ``[{"name": …, "version": …}]``
    system_packages: tuple[dict[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    """What a build produced."""

    #: Dispatch's read-only ``dockerUrl`` of the image (a registry reference, or a path)
    url: str
    #: what a driver needs to run functions on this image, kept in the image entity and
    #: copied into each function built onto it (``Deployment.image_config``): e.g.
    #: ``{"language": "python3", "interpreter": "/…/venv/bin/python"}``
    config: dict[str, Any]


class Builder(abc.ABC):
    """Builds images. Methods may be called from several threads (never for the same
    image at once: the image service holds a store lock per image while building)."""

    @abc.abstractmethod
    def check_base(self, base: BaseImageSpec) -> dict[str, Any]:
        """Verify the base image exists here (pull or resolve it); return its image
        config (at least ``language``). Raises BuildError saying why not."""

    @abc.abstractmethod
    def base_present(self, base: BaseImageSpec) -> bool:
        """Whether a base image checked before is still there (else it is MISSING)."""

    @abc.abstractmethod
    def build_image(self, image: ImageSpec, base_config: dict[str, Any]) -> BuiltImage:
        """Build ``image`` onto its base (whose ``check_base`` config is given).

        Raises BuildError with the installer's message. A failed build leaves nothing
        tagged or half-installed behind. Building the same base + dependencies again may
        reuse the earlier result (content-addressed), and then is near-instant.
        """

    @abc.abstractmethod
    def remove_image(self, image: ImageSpec, built: BuiltImage) -> None:
        """Delete what ``build_image`` made (unless another image still shares it)."""

    @abc.abstractmethod
    def build_function(self, deployment: Deployment) -> dict[str, Any]:
        """Make a function version runnable by the configured driver.

        ``deployment.image_config`` is its image's config. Returns the config the driver
        gets for this version (e.g. the docker builder adds ``functionImage``, the
        reference of an image with the source and the function server in it; the local
        builder returns the image config unchanged). Raises BuildError.
        """

    def remove_function(self, config: dict[str, Any]) -> None:
        """Delete what ``build_function`` made for a retired version (``config`` is what it
        returned). Nothing, unless the builder made something of its own."""

    def close(self) -> None:
        """Release clients and connections."""
