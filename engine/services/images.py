"""Images: runtime dependencies and system packages on a base image (``/v1/image``).

Statuses (Dispatch's): create → ``INITIALIZED``; the ``build_image`` job waits while
the base image is not READY (the base's check re-drives it), goes ``ERROR`` if the base
is in ERROR, else ``CREATING`` → ``READY`` with the builder's ``dockerUrl`` (read-only
in the API) and its ``config`` (kept for function builds, never shown) or ``ERROR`` with
the builder's message (for a failed install, the tail of the installer's output).
Update → ``UPDATING``, rebuilt the same way. Delete → ``DELETING``, refused (409 naming
them) while functions use the image; the ``delete_image`` job removes the build.

One build per image at a time: the job holds the store lock ``image-build/<org>/<name>``
while it builds. A second job for the same image finds it ``CREATING`` and leaves it to
the first, or waits for the lock and then finds it built already (the status says so).

When a build settles (READY or ERROR), the functions waiting on the image are re-driven.

What a build made is removed (``Builder.remove_image``) when the image is deleted, or
rebuilt into something else, and only once nothing refers to it any more: no image
entity (a content-addressed build may be shared) and no function version (a version
keeps running on the build it was built on, recorded in its ``imageURL``). A build still
referred to by function versions when it is replaced stays until removed by hand.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from .. import entities as E
from ..builders.base import BuildError, Builder, BuiltImage, ImageSpec
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision
from ..jobs import BUILD_IMAGE, CREATE_FUNCTION, DELETE_BASE_IMAGE, DELETE_IMAGE, Jobs
from ..store import Store
from .base_images import IMAGE_WAITING, base_spec, names
from ..names import validate_name

log = logging.getLogger("dispatch.images")

#: Debian-style package names and versions: they end up on a package manager's command
#: line, so nothing else gets through
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$")
PACKAGE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.~:_-]*$")


def image_spec(image: E.Entity, base: E.Entity | None) -> ImageSpec:
    """An image entity (on ``base``, if it still exists) as a builder sees it."""
    org = image["organizationId"]
    base_entity = base or {"organizationId": org, "name": image["baseImageName"],
                           "dockerUrl": "", "language": image.get("language") or ""}
    return ImageSpec(org=org, name=image["name"], id=image["id"], base=base_spec(base_entity),
                     manifest=(image.get("runtimeDependencies") or {}).get("manifest"),
                     system_packages=tuple((image.get("systemDependencies") or {})
                                           .get("packages") or ()))


class ImageService:
    """The lifecycle of images; every status change is a compare-and-swap.

    :param build_seconds: how long one build may take: the build lock's lease, how long a
        second job waits for it, and the claim after which the reconciler takes a
        ``CREATING`` image back
    """

    def __init__(self, store: Store, jobs: Jobs, builder: Builder, build_seconds: float = 600.0):
        self.store, self.jobs, self.builder = store, jobs, builder
        self.build_seconds = build_seconds

    # ---- API side -------------------------------------------------------------------

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        """Store a new image ``INITIALIZED`` and queue its build."""
        name = validate_name(spec.get("name"))
        image = E.new(E.IMAGE, org, name, **self._validate(org, spec), dockerUrl=None,
                      config=None)
        image = self.store.add(image)
        self.jobs.submit(BUILD_IMAGE, E.key_of(image))
        log.info("image.created key=%s base=%s", E.key_of(image), image["baseImageName"])
        return image

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace an image's base, dependencies and tags; it is rebuilt (``UPDATING``).
        Functions built on it keep their build until they are updated."""
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        fields = self._validate(org, spec)

        def change(image: E.Entity) -> E.Entity:
            if image["status"] == E.DELETING:
                raise InvalidInput(f"image {name} is being deleted")
            return dict(image, **fields, status=E.UPDATING, reason=[])

        image = self.store.modify(E.IMAGE, org, name, change)
        self.jobs.submit(BUILD_IMAGE, E.key_of(image))
        log.info("image.updated key=%s base=%s", E.key_of(image), image["baseImageName"])
        return image

    def delete(self, org: str, name: str) -> E.Entity:
        """Mark the image ``DELETING`` and queue its removal; Conflict naming the
        functions that use it, if any (functions being deleted do not count)."""
        def change(image: E.Entity) -> E.Entity | None:
            users = [f for f in self.functions_on(org, name) if f["status"] != E.DELETING]
            if users:
                raise Conflict(f"image {name} is used by functions {names(users)}")
            if image["status"] == E.DELETING:
                return None
            return dict(image, status=E.DELETING, delete=True)

        image = self.store.modify(E.IMAGE, org, name, change)
        self.jobs.submit(DELETE_IMAGE, E.key_of(image))
        log.info("image.deleting key=%s", E.key_of(image))
        return image

    def get(self, org: str, name: str) -> E.Entity:
        return self.store.get(E.IMAGE, org, name)

    def list(self, org: str, tags: dict[str, str] | None = None,
             language: str | None = None) -> list[E.Entity]:
        return self.store.list(E.IMAGE, org, tags=tags,
                               fields={"language": language} if language else None)

    def functions_on(self, org: str, name: str) -> list[E.Entity]:
        """The functions of ``org`` that name image ``name``."""
        return self.store.list(E.FUNCTION, org, fields={"image": name})

    def _validate(self, org: str, spec: dict[str, Any]) -> dict[str, Any]:
        base_name = spec.get("baseImageName")
        if not isinstance(base_name, str) or not base_name:
            raise InvalidInput("baseImageName is required")
        try:
            base = self.store.get(E.BASE_IMAGE, org, base_name)
        except NotFound:
            raise InvalidInput(f"Error fetching base image {base_name}") from None
        if base["status"] == E.DELETING:
            raise InvalidInput(f"base image {base_name} is being deleted")
        return {"baseImageName": base_name, "language": base["language"],
                "runtimeDependencies": {"manifest": _manifest(spec.get("runtimeDependencies"))},
                "systemDependencies": {"packages": _packages(spec.get("systemDependencies"))},
                "tags": list(spec.get("tags") or [])}

    # ---- job side -------------------------------------------------------------------

    def build(self, key: str) -> None:
        """The ``build_image`` job: ``INITIALIZED|UPDATING → CREATING → READY|ERROR``,
        or nothing while the base image is not READY."""
        kind, org, name = E.parse_key(key)
        image = self.store.find(key)
        if image is None:
            return  # deleted meanwhile: nothing left to do
        if image["status"] not in IMAGE_WAITING:
            return  # built, being built by another job (CREATING), or being deleted
        if self._base_state(image)[1] == "wait":
            return
        lock = self.store.lock(f"image-build/{org}/{name}", self.build_seconds)
        if not lock.acquire(timeout=self.build_seconds):
            log.warning("image.build_lock_timeout key=%s", key)
            return  # the reconciler re-drives it
        try:
            self._build_locked(kind, org, name)
        finally:
            lock.release()

    def _base_state(self, image: E.Entity) -> tuple[E.Entity | None, str]:
        """The image's base and what to do: ``build``, ``wait`` or a failure message."""
        try:
            base = self.store.get(E.BASE_IMAGE, image["organizationId"], image["baseImageName"])
        except NotFound:
            return None, f"Error fetching base image {image['baseImageName']}: not found"
        if base["status"] == E.READY:
            return base, "build"
        if base["status"] == E.ERROR:
            reasons = "; ".join(base.get("reason") or []) or "no reason given"
            return base, f"base image {base['name']} is in ERROR: {reasons}"
        if base["status"] == E.DELETING:
            return base, f"base image {base['name']} is being deleted"
        log.info("image.waiting key=%s base=%s base_status=%s", E.key_of(image), base["name"],
                 base["status"])
        return base, "wait"

    def _build_locked(self, kind: str, org: str, name: str) -> None:
        try:
            image = self.store.get(kind, org, name)
        except NotFound:
            return
        if image["status"] not in IMAGE_WAITING:
            return  # built while this job waited for the lock
        base, state = self._base_state(image)
        if state == "wait":
            return
        replaced = _built_of(image)
        built = None
        try:
            if state == "build":
                image = self.store.update(dict(image, status=E.CREATING,
                                               claimExpires=time.time() + self.build_seconds))
                built, failure = self._run_build(image, base)
            else:
                failure = state
            if built is not None:
                image.update(status=E.READY, reason=[], dockerUrl=built.url, config=built.config)
            else:
                image.update(status=E.ERROR, reason=[failure], dockerUrl=None, config=None)
            image.pop("claimExpires", None)
            image = self.store.update(image)
        except (StaleRevision, NotFound):
            # updated or deleted meanwhile: that change's own job takes over, and what
            # this build made is nobody's
            if built is not None:
                self._release(image, base, built)
            return
        log.info("image.%s key=%s url=%s", image["status"].lower(), E.key_of(image),
                 image.get("dockerUrl"))
        if replaced is not None and replaced.url != image.get("dockerUrl"):
            self._release(image, base, replaced)
        for fn in self.functions_on(org, name):
            if fn["status"] in (E.INITIALIZED, E.UPDATING):  # waiting for this image
                self.jobs.submit(CREATE_FUNCTION, E.key_of(fn))

    def _run_build(self, image: E.Entity, base: E.Entity) -> tuple[BuiltImage | None, str]:
        try:
            return self.builder.build_image(image_spec(image, base), base.get("config") or {}), ""
        except BuildError as exc:
            return None, exc.message
        except Exception as exc:  # a builder failure must not leave the image CREATING
            log.exception("image.build_failed key=%s", E.key_of(image))
            return None, f"internal error when building image {image['name']}: {exc}"

    def remove(self, key: str) -> None:
        """The ``delete_image`` job: remove the build (if nothing else refers to it) and
        the entity. Waits while functions being deleted still use the image."""
        kind, org, name = E.parse_key(key)
        lock = self.store.lock(f"image-build/{org}/{name}", self.build_seconds)
        # a build in progress finishes first (its result is then released, unclaimed)
        if not lock.acquire(timeout=self.build_seconds):
            return
        try:
            try:
                image = self.store.get(kind, org, name)
            except NotFound:
                return
            if image["status"] != E.DELETING:
                return
            users = self.functions_on(org, name)
            if users:  # being deleted (others were refused); the reconciler comes back
                log.info("image.delete_waiting key=%s functions=%s", key, names(users))
                return
            built = _built_of(image)
            if built is not None:
                try:
                    base = self.store.get(E.BASE_IMAGE, org, image["baseImageName"])
                except NotFound:
                    base = None
                self._release(image, base, built, exclude=key)
            self.store.delete(kind, org, name, revision=image["revision"])
        except (StaleRevision, NotFound):
            return
        finally:
            lock.release()
        log.info("image.deleted key=%s", key)
        redrive_deletion(self.store, self.jobs, E.BASE_IMAGE, org, image["baseImageName"],
                         DELETE_BASE_IMAGE)

    def _release(self, image: E.Entity, base: E.Entity | None, built: BuiltImage,
                 exclude: str | None = None) -> None:
        """Remove a build unless an image entity (other than ``exclude``) or a function
        version still refers to it."""
        holders = [E.key_of(i) for i in self.store.list(E.IMAGE, None, fields={"dockerUrl": built.url})
                   if E.key_of(i) != exclude]
        holders += [E.key_of(f) for f in self.store.list(E.FUNCTION, None)
                    if built.url in (f.get("imageURL"), (f.get("previous") or {}).get("imageURL"))]
        if holders:
            log.info("image.build_kept url=%s used_by=%s", built.url, ",".join(holders[:5]))
            return
        self.builder.remove_image(image_spec(image, base), built)


def redrive_deletion(store: Store, jobs: Jobs, kind: str, org: str, name: str, job: str) -> None:
    """Submit ``job`` again for an entity being deleted that was waiting for a user of it
    to go (a base image for its images, an image for its functions)."""
    try:
        if store.get(kind, org, name)["status"] == E.DELETING:
            jobs.submit(job, E.key(kind, org, name))
    except NotFound:
        pass


def _built_of(image: E.Entity) -> BuiltImage | None:
    if not image.get("dockerUrl"):
        return None
    return BuiltImage(url=image["dockerUrl"], config=dict(image.get("config") or {}))


def _manifest(runtime: Any) -> str | None:
    if runtime is None:
        return None
    if not isinstance(runtime, dict):
        raise InvalidInput("runtimeDependencies must be an object with a manifest")
    manifest = runtime.get("manifest")
    if manifest is not None and not isinstance(manifest, str):
        raise InvalidInput("runtimeDependencies.manifest must be a string (the file's text)")
    return manifest or None


def _packages(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if not isinstance(system, dict):
        raise InvalidInput("systemDependencies must be an object with packages")
    packages = system.get("packages") or []
    if not isinstance(packages, list):
        raise InvalidInput("systemDependencies.packages must be a list of {name, version}")
    out = []
    for i, package in enumerate(packages):
        where = f"systemDependencies.packages[{i}]"
        if not isinstance(package, dict):
            raise InvalidInput(f"{where} must be an object with name and version")
        pname, version = package.get("name"), package.get("version")
        if not isinstance(pname, str) or not pname:
            raise InvalidInput(f"{where}.name is required")
        if not PACKAGE_NAME.match(pname):
            raise InvalidInput(f"{where}.name {pname!r} is not a package name")
        if version not in (None, "") and (not isinstance(version, str)
                                          or not PACKAGE_VERSION.match(version)):
            raise InvalidInput(f"{where}.version {version!r} is not a package version")
        out.append({"name": pname, "version": version or None})
    return out
