"""Which image a function's ``image`` names, and what a build needs to know about it.

A name is looked up in this order:

1. an Image entity of the function's organization (``/v1/image``), built by the builder;
2. a built-in image: ``python3`` (the host's own interpreter) and ``nodejs`` (the host's
   ``node``, None if there is none: its functions then fail to prepare, saying so).
   Built-ins need no build and exist in embedded mode only (the ``local`` builder): a
   ``docker`` build needs an image of the store.

So an organization that creates an image called ``python3`` (``dispatch create
seed-images`` does, as Dispatch's did) shadows the built-in there: functions created or
updated afterwards run on that image. Functions built before keep the image
configuration they were built with (a function version keeps a snapshot of it).

Lookups read the store and happen when a function is created or built, never on the run
path: a function version carries its own copy of its image's configuration.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from typing import Any

from .. import entities as E
from ..errors import InvalidInput, NotFound
from ..store import Store

BUILTIN_IMAGES: dict[str, dict[str, Any]] = {
    "python3": {"language": "python3", "interpreter": sys.executable},
    "nodejs": {"language": "nodejs", "interpreter": shutil.which("node")},
}


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """An image as a function build sees it."""

    name: str
    language: str
    #: the image entity's status; built-ins are always READY
    status: str
    #: what its builder made (``BuiltImage.config``): copied into function versions
    config: dict[str, Any]
    #: the image's ``dockerUrl`` (None for a built-in)
    url: str | None = None
    reason: tuple[str, ...] = ()
    builtin: bool = False


class ImageCatalog:
    """Resolves an image name in an organization: its entity first, then a built-in.

    :param store: where Image entities live (None: built-ins only, for tests)
    :param builtin: the built-in images by name (default :data:`BUILTIN_IMAGES`)
    """

    def __init__(self, store: Store | None = None,
                 builtin: dict[str, dict[str, Any]] | None = None):
        self.store = store
        self.builtin = BUILTIN_IMAGES if builtin is None else builtin

    def resolve(self, org: str, name: str) -> ImageRef:
        """The image ``name`` of ``org``; InvalidInput naming it if there is none."""
        if self.store is not None:
            try:
                image = self.store.get(E.IMAGE, org, name)
            except NotFound:
                pass
            else:
                return ImageRef(name=name, language=image.get("language") or "",
                                status=image["status"], config=dict(image.get("config") or {}),
                                url=image.get("dockerUrl"), reason=tuple(image.get("reason") or ()))
        if name in self.builtin:
            return ImageRef(name=name, language=self.builtin[name]["language"], status=E.READY,
                            config=dict(self.builtin[name]), builtin=True)
        raise InvalidInput(f"image {name} not found (available images: {self.known(org)})")

    def known(self, org: str) -> str:
        """The names a function of ``org`` may use, for messages."""
        names = set(self.builtin)
        if self.store is not None:
            names.update(i["name"] for i in self.store.list(E.IMAGE, org)
                         if i["status"] != E.DELETING)
        return ", ".join(sorted(names)) or "none; create one with `dispatch create image`"
