"""Base images: a language runtime, verified by the builder (Dispatch's ``/v1/baseimage``).

Statuses: create → ``INITIALIZED``; the ``check_base_image`` job asks the builder
(``check_base``: a pull, or a look at this host) → ``READY`` with the builder's config in
``config`` (kept for image builds, never shown by the API), or ``ERROR`` with the reason.
Update → ``UPDATING`` and checked again. A READY base is re-checked periodically (the
reconciler submits ``check_base_image``): if the builder no longer has it
(``base_present``) it becomes ``MISSING`` and is checked again until it is back (→
``READY``). Delete → ``DELETING``, refused (409 naming them) while images use it.

When a check settles (READY or ERROR), the images waiting on the base are re-driven.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import entities as E
from ..builders.base import BaseImageSpec, BuildError, Builder
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision
from ..jobs import BUILD_IMAGE, CHECK_BASE_IMAGE, DELETE_BASE_IMAGE, Jobs
from ..store import Store
from ..names import validate_name

log = logging.getLogger("dispatch.baseimages")

#: the languages base images may have (the function servers of engine/runtimes)
LANGUAGES = ("nodejs", "python3")
#: image statuses that wait for their base to be READY
IMAGE_WAITING = (E.INITIALIZED, E.UPDATING)


def base_spec(base: E.Entity) -> BaseImageSpec:
    """A base image entity as a builder sees it."""
    return BaseImageSpec(org=base["organizationId"], name=base["name"],
                         url=base["dockerUrl"], language=base["language"])


def validate_language(language: Any) -> str:
    if not isinstance(language, str) or not language:
        raise InvalidInput("language is required")
    if language not in LANGUAGES:
        raise InvalidInput(f"language {language!r} is not supported "
                           f"(languages: {', '.join(LANGUAGES)})")
    return language


def names(entities: list[E.Entity]) -> str:
    return ", ".join(sorted(e["name"] for e in entities))


class BaseImageService:
    """The lifecycle of base images; every status change is a compare-and-swap."""

    def __init__(self, store: Store, jobs: Jobs, builder: Builder):
        self.store, self.jobs, self.builder = store, jobs, builder

    # ---- API side -------------------------------------------------------------------

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        """Store a new base image ``INITIALIZED`` and queue its check."""
        name = validate_name(spec.get("name"))
        base = E.new(E.BASE_IMAGE, org, name, **self._validate(spec), config=None)
        base = self.store.add(base)
        self.jobs.submit(CHECK_BASE_IMAGE, E.key_of(base))
        log.info("baseimage.created key=%s url=%s", E.key_of(base), base["dockerUrl"])
        return base

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace a base image's URL, language and tags; it is checked again
        (``UPDATING``). Images built on it are not rebuilt: update them to rebuild."""
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        fields = self._validate(spec)

        def change(base: E.Entity) -> E.Entity:
            if base["status"] == E.DELETING:
                raise InvalidInput(f"base image {name} is being deleted")
            if fields["language"] != base["language"]:
                users = self.images_on(org, name)
                if users:
                    raise Conflict(f"base image {name} is used by images {names(users)}: "
                                   "its language cannot change")
            return dict(base, **fields, status=E.UPDATING, reason=[])

        base = self.store.modify(E.BASE_IMAGE, org, name, change)
        self.jobs.submit(CHECK_BASE_IMAGE, E.key_of(base))
        log.info("baseimage.updated key=%s url=%s", E.key_of(base), base["dockerUrl"])
        return base

    def delete(self, org: str, name: str) -> E.Entity:
        """Mark the base image ``DELETING`` and queue its removal; Conflict naming the
        images on it if there are any (images being deleted do not count)."""
        def change(base: E.Entity) -> E.Entity | None:
            users = [i for i in self.images_on(org, name) if i["status"] != E.DELETING]
            if users:
                raise Conflict(f"base image {name} is used by images {names(users)}")
            if base["status"] == E.DELETING:
                return None
            return dict(base, status=E.DELETING, delete=True)

        base = self.store.modify(E.BASE_IMAGE, org, name, change)
        self.jobs.submit(DELETE_BASE_IMAGE, E.key_of(base))
        log.info("baseimage.deleting key=%s", E.key_of(base))
        return base

    def get(self, org: str, name: str) -> E.Entity:
        return self.store.get(E.BASE_IMAGE, org, name)

    def list(self, org: str, tags: dict[str, str] | None = None) -> list[E.Entity]:
        return self.store.list(E.BASE_IMAGE, org, tags=tags)

    def images_on(self, org: str, name: str) -> list[E.Entity]:
        """The images of ``org`` built (or to be built) on base image ``name``."""
        return self.store.list(E.IMAGE, org, fields={"baseImageName": name})

    @staticmethod
    def _validate(spec: dict[str, Any]) -> dict[str, Any]:
        url = spec.get("dockerUrl")
        if not isinstance(url, str) or not url.strip():
            raise InvalidInput("dockerUrl is required")
        return {"dockerUrl": url.strip(), "language": validate_language(spec.get("language")),
                "tags": list(spec.get("tags") or [])}

    # ---- job side -------------------------------------------------------------------

    def check(self, key: str) -> None:
        """The ``check_base_image`` job.

        ``INITIALIZED|UPDATING → READY|ERROR``; ``READY`` stays READY while the builder
        has it, else → ``MISSING``; ``MISSING → READY`` once a check succeeds again.
        """
        _, org, name = E.parse_key(key)
        base = self.store.find(key)
        if base is None:
            return  # deleted meanwhile: nothing left to do
        try:
            if base["status"] == E.READY:
                if self.builder.base_present(base_spec(base)):
                    return
                base = self.store.update(dict(base, status=E.MISSING, reason=[
                    f"base image {name} is no longer present ({base['dockerUrl']})"]))
                log.warning("baseimage.missing key=%s url=%s", key, base["dockerUrl"])
            if base["status"] not in (E.INITIALIZED, E.UPDATING, E.MISSING):
                return
            was, reason_was = base["status"], list(base["reason"])
            try:
                base.update(status=E.READY, reason=[], config=self.builder.check_base(base_spec(base)))
            except BuildError as exc:
                base.update(status=E.MISSING if was == E.MISSING else E.ERROR, reason=[exc.message])
            except Exception as exc:  # a builder failure must not leave it unchecked
                log.exception("baseimage.check_failed key=%s", key)
                base.update(status=E.ERROR,
                            reason=[f"internal error when checking base image {name}: {exc}"])
            if base["status"] == was == E.MISSING and base["reason"] == reason_was:
                return  # still missing, for the same reason: nothing to write
            base = self.store.update(base)
        except (StaleRevision, NotFound):
            return  # changed meanwhile: that change's own job checks it
        log.info("baseimage.%s key=%s url=%s", base["status"].lower(), key, base["dockerUrl"])
        if base["status"] in E.SETTLED:
            for image in self.images_on(org, name):
                if image["status"] in IMAGE_WAITING:
                    self.jobs.submit(BUILD_IMAGE, E.key_of(image))

    def remove(self, key: str) -> None:
        """The ``delete_base_image`` job: forget it (what a builder pulled stays: other
        organizations' bases may name the same image). Waits while images being deleted
        still use it."""
        kind, org, name = E.parse_key(key)
        base = self.store.find(key)
        if base is None:
            return  # deleted meanwhile: nothing left to do
        if base["status"] != E.DELETING:
            return
        users = self.images_on(org, name)
        if users:  # being deleted (others were refused); the reconciler comes back
            log.info("baseimage.delete_waiting key=%s images=%s", key, names(users))
            return
        try:
            self.store.delete(kind, org, name, revision=base["revision"])
        except (StaleRevision, NotFound):
            return
        log.info("baseimage.deleted key=%s", key)
