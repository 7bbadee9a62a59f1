"""Images functions run on. Embedded mode ships ready ones, named by ``image``.

Built-in images need no build: ``python3`` is the host's own interpreter, ``nodejs``
the host's ``node`` (found when this module is imported; None if there is none, and
then its functions fail to prepare, saying so). Image
entities built from base images (``/v1/image``) come with the images work; until then
a function naming any other image is refused at create time.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

from .errors import InvalidInput

BUILTIN_IMAGES: dict[str, dict[str, Any]] = {
    "python3": {"language": "python3", "interpreter": sys.executable},
    "nodejs": {"language": "nodejs", "interpreter": shutil.which("node")},
}


class ImageCatalog:
    """Resolves an image name to the settings a driver needs to run functions on it."""

    def __init__(self, builtin: dict[str, dict[str, Any]] | None = None):
        self.builtin = BUILTIN_IMAGES if builtin is None else builtin

    def resolve(self, org: str, name: str) -> dict[str, Any]:
        """The image's settings (``language`` and runtime specifics); InvalidInput if unknown."""
        try:
            return self.builtin[name]
        except KeyError:
            known = ", ".join(sorted(self.builtin))
            raise InvalidInput(f"image {name} not found (available images: {known})") from None
