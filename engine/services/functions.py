"""Functions: create, update and delete (API side) and build and remove (job side).

A function is built onto an image (:mod:`engine.services.catalog`: an Image entity of its
organization, else a built-in). The build resolves the image once, lets the builder make
the version runnable (``Builder.build_function``) and keeps the result in the version's
``imageConfig``: every run of the version reads it from the function entity alone. A
function whose image is still being built waits (stays INITIALIZED or UPDATING; the image
service re-drives it when the image settles) and ends in ERROR if the image does.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from typing import Any

from .. import entities as E
from ..builders.base import Builder
from ..drivers.base import Deployment, Driver
from ..errors import BuildError, InvalidInput, NotFound, StaleRevision
from .catalog import ImageCatalog, ImageRef
from ..limits import CONCURRENCY_MAX, TIMEOUT_MAX_MS, check_count
from ..names import validate_name, validate_names
from ..jobs import CREATE_FUNCTION, DELETE_FUNCTION, DELETE_IMAGE, Jobs
from .retry_policy import RetryPolicy
from .run_retention import RunRetention
from ..sources import decode
from ..steps.validation import check_schema
from ..store import Store

log = logging.getLogger("dispatch.functions")

SOURCE_SCHEME = "es://"
#: what makes one version of a function: replaced together by an update
VERSION_FIELDS = ("faasId", "sourceURL", "image", "handler", "timeout", "schema", "secrets",
                  "network", "concurrency", "imageConfig", "imageURL", "functionImageURL")
#: image statuses a function build waits out (the image service re-drives it after)
IMAGE_PENDING = (E.INITIALIZED, E.CREATING, E.UPDATING)


def serving_version(fn: E.Entity) -> E.Entity | None:
    """The version runs go to: the function if READY; the version an update replaces
    while the update builds, or after the update failed; else None."""
    if fn["status"] == E.READY:
        return fn
    previous = fn.get("previous")
    if previous and fn["status"] in (E.UPDATING, E.CREATING, E.INITIALIZED, E.ERROR):
        return {**fn, **previous}
    return None


def version_of(fn: E.Entity, faas_id: str) -> E.Entity | None:
    """The function as of version ``faas_id``; if that version is gone, the serving one."""
    if fn["faasId"] == faas_id and fn["status"] == E.READY:
        return fn
    previous = fn.get("previous")
    if previous and previous["faasId"] == faas_id:
        return {**fn, **previous}
    return serving_version(fn)


class FunctionService:
    """The lifecycle of functions; every status change is a compare-and-swap.

    :param builder: makes a version runnable on its image (None: runs the image as it is,
        as the local builder does)
    :param build_seconds: how long a worker may hold a function in ``CREATING`` before
        the reconciler takes the build back (its claim expires).
    """

    def __init__(self, store: Store, jobs: Jobs, driver: Driver, images: ImageCatalog,
                 builder: Builder | None = None, build_seconds: float = 120.0):
        self.store, self.jobs, self.driver, self.images = store, jobs, driver, images
        self.builder = builder
        self.build_seconds = build_seconds

    # ---- API side -------------------------------------------------------------------

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        """Store a new function ``INITIALIZED`` and queue its build."""
        name = validate_name(spec.get("name"))
        fields = self._validate(org, spec)
        source = self._new_source(org, spec)
        fn = E.new(E.FUNCTION, org, name, sourceURL=SOURCE_SCHEME + source["name"],
                   faasId=source["name"], functionImageURL=None, **fields)
        try:
            fn = self.store.add(fn)
        except Exception:
            self._drop_source(org, source["name"])
            raise
        self.jobs.submit(CREATE_FUNCTION, E.key_of(fn))
        log.info("function.created key=%s version=%s", E.key_of(fn), fn["faasId"])
        return fn

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace a function's spec and source: a new version, built like a new function."""
        fn = self.store.get(E.FUNCTION, org, name)
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        if fn["status"] == E.DELETING:
            raise InvalidInput(f"function {name} is being deleted")
        fields = self._validate(org, spec)
        source = self._new_source(org, spec)
        replaced: dict[str, Any] = {}

        def change(fn: E.Entity) -> E.Entity:
            if fn["status"] == E.DELETING:
                raise InvalidInput(f"function {name} is being deleted")
            # the version that keeps serving while this one builds: the READY one, or the
            # one an unfinished (or failed) update was already replacing
            previous = ({k: fn.get(k) for k in VERSION_FIELDS} if fn["status"] == E.READY
                        else fn.get("previous"))
            replaced.update(previous=previous,
                            unbuilt=fn["sourceURL"] if fn["status"] != E.READY else None)
            return dict(fn, **fields, sourceURL=SOURCE_SCHEME + source["name"],
                        faasId=source["name"], status=E.UPDATING, reason=[],
                        previous=previous)

        try:  # a build finishing meanwhile: the change applies to the fresh read
            fn = self.store.modify(E.FUNCTION, org, name, change)
        except Exception:
            self._drop_source(org, source["name"])
            raise
        unbuilt, previous = replaced["unbuilt"], replaced["previous"]
        if unbuilt and unbuilt != (previous or {}).get("sourceURL"):
            self._drop_source(org, unbuilt[len(SOURCE_SCHEME):])  # never served: gone
        self.jobs.submit(CREATE_FUNCTION, E.key_of(fn))
        log.info("function.updated key=%s version=%s", E.key_of(fn), fn["faasId"])
        return fn

    def delete(self, org: str, name: str) -> E.Entity:
        """Mark the function ``DELETING`` and queue its removal; returns it."""
        fn = self.store.modify(E.FUNCTION, org, name,
                               lambda fn: None if fn["status"] == E.DELETING
                               else dict(fn, status=E.DELETING, delete=True))
        self.jobs.submit(DELETE_FUNCTION, E.key_of(fn))
        log.info("function.deleting key=%s", E.key_of(fn))
        return fn

    def get(self, org: str, name: str) -> E.Entity:
        return self.store.get(E.FUNCTION, org, name)

    def list(self, org: str, tags: dict[str, str] | None = None,
             status: str | None = None) -> list[E.Entity]:
        return self.store.list(E.FUNCTION, org, tags=tags, status=status)

    def _validate(self, org: str, spec: dict[str, Any]) -> dict[str, Any]:
        image = spec.get("image")
        if not isinstance(image, str) or not image:
            raise InvalidInput("image is required")
        found = self.images.resolve(org, image)
        if found.status == E.DELETING:
            raise InvalidInput(f"image {image} is being deleted")
        language = found.language
        handler = spec.get("handler")
        if not isinstance(handler, str) or not handler.strip():
            raise InvalidInput("handler is required")
        module, dot, attr = handler.rpartition(".")
        if language.startswith("python") and not (dot and module and attr):
            raise InvalidInput(f"handler {handler!r} must be MODULE.FUNCTION, e.g. hello.handle")
        timeout = check_count(spec.get("timeout"), "timeout", TIMEOUT_MAX_MS, "milliseconds")
        schema = spec.get("schema") or {}
        if not isinstance(schema, dict):
            raise InvalidInput("schema must be an object with 'in' and 'out' JSON Schemas")
        for direction in ("in", "out"):
            check_schema(schema.get(direction), f"schema.{direction}")
        secrets = validate_names(spec.get("secrets"), "secrets")
        concurrency = check_count(spec.get("concurrency"), "concurrency", CONCURRENCY_MAX,
                                  "instances")
        network = spec.get("network") or False
        if not isinstance(network, bool):
            raise InvalidInput("network must be true or false")
        retry = RetryPolicy.parse(spec.get("retry"))
        retention = RunRetention.parse(spec.get("retention"))
        return {
            "retry": retry.to_json() if retry else None,
            "retention": retention.to_json() if retention else None,
            "image": image,
            "handler": handler,
            "timeout": timeout,
            "schema": {"in": schema.get("in"), "out": schema.get("out")},
            "secrets": list(secrets),
            "services": list(spec.get("services") or []),
            "tags": list(spec.get("tags") or []),
            "network": network,
            "concurrency": concurrency,
        }

    def _new_source(self, org: str, spec: dict[str, Any]) -> E.Entity:
        if spec.get("source") in (None, ""):
            if spec.get("sourceURL"):
                raise InvalidInput("sourceURL is not supported: send the source itself")
            raise InvalidInput("either source or sourceURL must be specified")
        data = decode(spec["source"])
        version = str(uuid.uuid4())
        return self.store.add(E.new(E.SOURCE, org, version, status=E.READY,
                                    data=base64.b64encode(data).decode()))

    def _drop_source(self, org: str, name: str) -> None:
        try:
            self.store.delete(E.SOURCE, org, name)
        except NotFound:
            pass

    # ---- job side -------------------------------------------------------------------

    def deployment(self, fn: E.Entity) -> Deployment:
        """What the driver needs to run the function's current version: read from the
        function entity alone (its version's ``imageConfig``), never from its image."""
        config = fn.get("imageConfig")
        if config is None:  # a version built before images were entities: a built-in
            config = dict(self.images.builtin.get(fn["image"]) or {})
        return self._deployment(fn, config)

    def _deployment(self, fn: E.Entity, image_config: dict[str, Any]) -> Deployment:
        org, version = fn["organizationId"], fn["faasId"]
        source_name = fn["sourceURL"][len(SOURCE_SCHEME):]

        def load_source() -> bytes:
            return base64.b64decode(self.store.get(E.SOURCE, org, source_name)["data"])

        return Deployment(org=org, name=fn["name"], version=version, handler=fn["handler"],
                          language=image_config.get("language") or "", image=fn["image"],
                          timeout_ms=fn.get("timeout") or 0, source=load_source,
                          image_config=image_config, network=bool(fn.get("network")),
                          concurrency=fn.get("concurrency") or 0)

    def build(self, key: str) -> None:
        """The ``create_function`` job: ``INITIALIZED|UPDATING → CREATING → READY|ERROR``.

        Waits (returns, leaving the status as it is) while the function's image builds.
        """
        _, org, name = E.parse_key(key)
        fn = self.store.find(key)
        if fn is None:
            return  # deleted meanwhile: nothing left to do
        if fn["status"] not in (E.INITIALIZED, E.UPDATING):
            return  # built already, being built, or being deleted
        try:
            image: ImageRef | str = self.images.resolve(org, fn["image"])
        except InvalidInput as exc:
            image = exc.message  # deleted since the function was accepted
        if isinstance(image, ImageRef) and image.status in IMAGE_PENDING:
            log.info("function.waiting key=%s image=%s image_status=%s", key, image.name,
                     image.status)
            return
        fn.update(status=E.CREATING, claimExpires=time.time() + self.build_seconds)
        try:
            fn = self.store.update(fn)
        except (StaleRevision, NotFound):
            return  # another worker claimed it, or it changed meanwhile
        try:
            fn.update(self._build_version(fn, image), status=E.READY, reason=[])
        except (BuildError, InvalidInput) as exc:
            fn.update(status=E.ERROR, reason=[exc.message])
        except Exception as exc:  # a driver failure must not leave the function CREATING
            log.exception("function.build_failed key=%s", key)
            fn.update(status=E.ERROR, reason=[f"internal error when building function {name}: {exc}"])
        fn.pop("claimExpires", None)
        # a failed update leaves the version it replaces serving (and in ``previous``);
        # a successful one retires it
        replaced = fn.pop("previous", None) if fn["status"] == E.READY else None
        if fn["status"] == E.ERROR and fn.get("previous"):
            fn["reason"] = fn["reason"] + [
                f"version {fn['previous']['faasId']} keeps serving until an update succeeds"]
        try:
            self.store.update(fn)
        except (StaleRevision, NotFound):
            return  # updated or deleted while building: that change's own job takes over
        log.info("function.%s key=%s version=%s", fn["status"].lower(), key, fn["faasId"])
        if replaced:
            self._retire({**fn, **replaced})

    def _build_version(self, fn: E.Entity, image: ImageRef | str) -> dict[str, Any]:
        """Build and prepare the version on ``image``; the fields that record it."""
        if isinstance(image, str):
            raise BuildError(image)
        if image.status != E.READY:
            reasons = "; ".join(image.reason) or "no reason given"
            raise BuildError(
                f"image {image.name} is in ERROR: {reasons}" if image.status == E.ERROR
                else f"image {image.name} is {image.status}")
        config = dict(image.config)
        if self.builder is not None:
            config = self.builder.build_function(self._deployment(fn, config))
        config.setdefault("language", image.language)
        self.driver.prepare(self._deployment(fn, config))
        return {"imageConfig": config, "imageURL": image.url,
                "functionImageURL": config.get("functionImage")}

    def _retire(self, version: E.Entity) -> None:
        """Stop a version's instances here (other hosts stop theirs when a newer version
        runs there) and delete its source."""
        try:
            self.driver.retire(self.deployment(version))
        except InvalidInput:
            pass  # its image is gone: nothing runs it
        try:
            if self.builder is not None:
                self.builder.remove_function(version.get("imageConfig") or {})
        except Exception:  # a leftover image is garbage, not a reason to keep the version
            log.warning("function.image_not_removed key=%s version=%s", E.key_of(version),
                        version["faasId"], exc_info=True)
        self._drop_source(version["organizationId"], version["sourceURL"][len(SOURCE_SCHEME):])

    def remove(self, key: str) -> None:
        """The ``delete_function`` job: retire its instances, delete its runs and source."""
        kind, org, name = E.parse_key(key)
        fn = self.store.find(key)
        if fn is None:
            return  # deleted meanwhile: nothing left to do
        if fn["status"] != E.DELETING:
            return
        for version in filter(None, (fn, fn.get("previous") and {**fn, **fn["previous"]})):
            self._retire(version)
        for run in self.store.list(E.RUN, org, fields={"functionName": name}):
            try:
                self.store.delete(E.RUN, org, run["name"])
            except NotFound:
                pass
        try:
            self.store.delete(kind, org, name, revision=fn["revision"])
        except (StaleRevision, NotFound):
            return
        log.info("function.deleted key=%s", key)
        try:  # an image being deleted may have been waiting for this function to go
            if self.store.get(E.IMAGE, org, fn["image"])["status"] == E.DELETING:
                self.jobs.submit(DELETE_IMAGE, E.key(E.IMAGE, org, fn["image"]))
        except NotFound:
            pass
