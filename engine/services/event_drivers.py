"""Event drivers and their types: what turns the outside world (a clock, an HTTP post, a
custom program) into events.

* A driver *type* (Dispatch's ``DriverType``) is either built in — ``cron`` and
  ``webhook``, listed in every organization, read-only — or an organization's own: an
  ``image`` (run as a container) or a ``command`` (an argv run on the scheduler's host),
  exactly one of them, with default ``config``. Types are READY as soon as written.
* A *driver* (Dispatch's ``Driver``) is an instance of a type: ``config`` (the type's
  defaults overlaid with its own), ``secrets`` (names of secrets). It is created
  CREATING and moved to READY by the ``sync_event_driver`` job (UPDATING → READY after
  an update; DELETING → removed after a delete); the reconciler re-drives a lost job.
* ``cron`` drivers are run by the scheduler's leader (:mod:`engine.scheduler.cron`); ``webhook``
  and custom drivers hold a random ingest token (encrypted at rest like secrets, shown
  in the driver's ``token``) that :mod:`engine.services.ingest` checks; custom
  drivers' processes are kept by :mod:`engine.scheduler.driver_processes`.
"""

from __future__ import annotations

import logging
import secrets as random
import uuid
from typing import Any, Iterable, Mapping

from cryptography.fernet import MultiFernet

from ..scheduler import cron
from .. import entities as E
from ..cloudevents import EVENT_TYPE_PATTERN
from ..crypto import Unsealable, seal, unseal
from ..errors import Conflict, InvalidInput, NotFound
from ..jobs import SYNC_EVENT_DRIVER, Jobs
from ..store import Store
from ..names import NAME_MAX, validate_name, validate_names

log = logging.getLogger("dispatch.event_drivers")

CRON, WEBHOOK = cron.CRON, "webhook"
BUILTIN_TYPES = (CRON, WEBHOOK)
#: Dispatch's driver name pattern (stricter than other entities')
#: the stored field holding the Fernet token of a driver's ingest token
ENCRYPTED_TOKEN = "encryptedToken"


def builtin_type(org: str, name: str) -> E.Entity:
    """The built-in type ``name`` as the API lists it."""
    descriptions = {
        CRON: "emits an event on a cron schedule (config: schedule, timezone, eventType, "
              "catchup)",
        WEBHOOK: "turns posts to /v1/event/ingest/<driver> into events (config: eventType)",
    }
    entity = E.new(E.DRIVER_TYPE, org, name, status=E.READY, image="", command=[],
                   expose=name == WEBHOOK, config=[], builtin=True,
                   description=descriptions[name])
    entity["id"] = f"builtin-{name}"
    entity["createdTime"] = entity["modifiedTime"] = 0
    return entity


def validate_pairs(value: Any, field: str) -> list[dict[str, str]]:
    """A ``[{key, value}]`` list with string keys; values as strings."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{field} must be a list of {{key, value}} objects")
    pairs = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str) \
                or not item["key"]:
            raise InvalidInput(f"{field}[{i}] must be an object with a non-empty string key")
        v = item.get("value")
        if v is not None and not isinstance(v, (str, int, float, bool)):
            raise InvalidInput(f"{field}.{item['key']} must be a string")
        text = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
        pairs.append({"key": item["key"], "value": text})
    return pairs


class EventDriverService:
    """Driver types and drivers of an organization, their lifecycle and ingest tokens.

    :param cipher: encrypts ingest tokens at rest (the secrets' cipher).
    :param api_url: where drivers reach this installation's API (settable after start,
        when the embedded server knows its port).
    """

    def __init__(self, store: Store, jobs: Jobs, cipher: MultiFernet, api_url: str,
                 allowed_commands: Iterable[str] = ()):
        self.store, self.jobs, self.cipher = store, jobs, cipher
        self.api_url = api_url.rstrip("/")
        #: the executables ``command`` types may run (the operator's
        #: ``DISPATCH_DRIVER_COMMANDS``): a type runs code on the scheduler's host
        self.allowed_commands = frozenset(allowed_commands)

    def check_command(self, command: list[str]) -> None:
        """Refuse an argv whose executable the operator has not allowed."""
        if not self.allowed_commands:
            raise InvalidInput("command driver types are turned off here: an operator allows "
                               "executables with DISPATCH_DRIVER_COMMANDS (or use an image)")
        if command[0] not in self.allowed_commands:
            raise InvalidInput(f"command[0] {command[0]!r} is not an allowed driver executable "
                               f"(DISPATCH_DRIVER_COMMANDS: "
                               f"{', '.join(sorted(self.allowed_commands))})")

    # ---- driver types ---------------------------------------------------------------

    def create_type(self, org: str, spec: dict[str, Any]) -> E.Entity:
        name = validate_name(spec.get("name"))
        if name in BUILTIN_TYPES:
            raise Conflict(f"driver type {name} is built in and cannot be created")
        fields = self._type_fields(spec)
        entity = E.new(E.DRIVER_TYPE, org, name, status=E.READY,
                       tags=list(spec.get("tags") or []), **fields)
        entity = self.store.add(entity)
        log.info("drivertype.created key=%s", E.key_of(entity))
        return entity

    def get_type(self, org: str, name: str) -> E.Entity:
        if name in BUILTIN_TYPES:
            return builtin_type(org, name)
        return self.store.get(E.DRIVER_TYPE, org, name)

    def list_types(self, org: str, tags: dict[str, str] | None = None) -> list[E.Entity]:
        builtins = [] if tags else [builtin_type(org, n) for n in BUILTIN_TYPES]
        return builtins + self.store.list(E.DRIVER_TYPE, org, tags=tags)

    def update_type(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace a type's image or command, expose, config and tags; its drivers'
        processes restart with it at the supervisor's next pass."""
        if name in BUILTIN_TYPES:
            raise Conflict(f"driver type {name} is built in and cannot be updated")
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        fields = self._type_fields(spec)
        if spec.get("tags") is not None:
            fields["tags"] = list(spec["tags"])
        entity = self.store.modify(E.DRIVER_TYPE, org, name, lambda t: dict(t, **fields))
        log.info("drivertype.updated key=%s", E.key_of(entity))
        return entity

    def delete_type(self, org: str, name: str) -> E.Entity:
        if name in BUILTIN_TYPES:
            raise Conflict(f"driver type {name} is built in and cannot be deleted")
        entity = self.store.get(E.DRIVER_TYPE, org, name)
        # a driver being deleted no longer needs its type
        users = [d["name"] for d in self.store.list(E.DRIVER, org, fields={"type": name})
                 if d["status"] != E.DELETING]
        if users:
            raise Conflict(f"driver type {name} is used by driver(s) {', '.join(users)}; "
                           "delete them first")
        self.store.delete(E.DRIVER_TYPE, org, name, revision=entity["revision"])
        log.info("drivertype.deleted key=%s", E.key_of(entity))
        return entity

    def _type_fields(self, spec: dict[str, Any]) -> dict[str, Any]:
        image = spec.get("image") or ""
        command = spec.get("command") or []
        if not isinstance(image, str):
            raise InvalidInput("image must be a string")
        if isinstance(command, str) or not isinstance(command, list) \
                or not all(isinstance(a, str) and a for a in command):
            raise InvalidInput("command must be a list of non-empty strings (an argv)")
        if bool(image) == bool(command):
            raise InvalidInput("a driver type needs exactly one of image (a container "
                               "image) or command (an executable's argv)")
        if command:
            self.check_command(command)
        return {"image": image, "command": list(command), "expose": bool(spec.get("expose")),
                "config": validate_pairs(spec.get("config"), "config")}

    # ---- drivers --------------------------------------------------------------------

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        """Store a driver CREATING and submit its sync; nothing is stored on bad input."""
        # a made-up name fits the name limit whatever the type's name: 54 + 1 + 8
        prefix = str(spec.get("type") or "driver")[:NAME_MAX - 9]
        name = spec.get("name") or f"{prefix}-{uuid.uuid4().hex[:8]}"
        name = validate_name(name, lower=True)
        type_name = spec.get("type")
        if not isinstance(type_name, str) or not type_name:
            raise InvalidInput("type is required (cron, webhook, or a driver type's name)")
        dtype = self._type_of(org, type_name)
        config = self._config(dtype, spec.get("config"))
        secrets = validate_names(spec.get("secrets"))
        entity = E.new(E.DRIVER, org, name, status=E.CREATING, type=type_name,
                       config=config, secrets=secrets, expose=bool(dtype.get("expose")),
                       tags=list(spec.get("tags") or []), missedTicks=0)
        if type_name != CRON:
            entity[ENCRYPTED_TOKEN] = self._seal(org, name, random.token_urlsafe(24))
        entity = self.store.add(entity)
        self.jobs.submit(SYNC_EVENT_DRIVER, E.key_of(entity))
        log.info("driver.created key=%s type=%s", E.key_of(entity), type_name)
        return self.show(entity)

    def get(self, org: str, name: str) -> E.Entity:
        return self.show(self.store.get(E.DRIVER, org, name))

    def list(self, org: str, tags: dict[str, str] | None = None) -> list[E.Entity]:
        return [self.show(d) for d in self.store.list(E.DRIVER, org, tags=tags)]

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """New config, secrets, tags: UPDATING, then READY through the sync job (custom
        processes restart with the new config; a changed schedule restarts the cursor)."""
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")

        def change(entity: E.Entity) -> E.Entity:
            if spec.get("type") not in (None, entity["type"]):
                raise InvalidInput(f"type cannot change (driver {name} is a {entity['type']} "
                                   "driver); delete it and create another")
            if entity["status"] in (E.DELETING,):
                raise Conflict(f"driver {name} is being deleted")
            dtype = self._type_of(org, entity["type"])
            if spec.get("config") is not None:
                entity["config"] = self._config(dtype, spec["config"])
            if spec.get("secrets") is not None:
                entity["secrets"] = validate_names(spec["secrets"])
            if spec.get("tags") is not None:
                entity["tags"] = list(spec["tags"])
            return dict(entity, status=E.UPDATING, reason=[])

        entity = self.store.modify(E.DRIVER, org, name, change)
        self.jobs.submit(SYNC_EVENT_DRIVER, E.key_of(entity))
        log.info("driver.updating key=%s", E.key_of(entity))
        return self.show(entity)

    def delete(self, org: str, name: str) -> E.Entity:
        entity = self.store.modify(
            E.DRIVER, org, name,
            lambda entity: None if entity["status"] == E.DELETING
            else dict(entity, status=E.DELETING))
        self.jobs.submit(SYNC_EVENT_DRIVER, E.key_of(entity))
        log.info("driver.deleting key=%s", E.key_of(entity))
        return self.show(entity)

    def sync(self, key: str) -> None:
        """The ``sync_event_driver`` job: CREATING/UPDATING → READY (a cron driver's
        cursor (re)started), DELETING → gone (with its cursor). Idempotent."""
        _, org, name = E.parse_key(key)
        driver = self.store.find(key)
        if driver is None:
            return  # deleted meanwhile: nothing left to do
        if driver["status"] == E.DELETING:
            try:
                cursor = self.store.get(E.SCHEDULE, org, name)
                if cursor.get("driverId") == driver["id"]:
                    self.store.delete(E.SCHEDULE, org, name)
            except NotFound:
                pass
            self.store.delete(E.DRIVER, org, name, revision=driver["revision"])
            log.info("driver.deleted key=%s", key)
            return
        if driver["status"] not in (E.CREATING, E.UPDATING):
            return
        if driver["type"] == CRON:
            cron.start_cursor(self.store, driver)
        self.store.update(dict(driver, status=E.READY, reason=[]))
        log.info("driver.ready key=%s", key)

    def _type_of(self, org: str, type_name: str) -> E.Entity:
        try:
            return self.get_type(org, type_name)
        except NotFound:
            raise InvalidInput(f"driver type {type_name!r} not found (built in: "
                               f"{', '.join(BUILTIN_TYPES)})") from None

    @staticmethod
    def _config(dtype: E.Entity, config: Any) -> list[dict[str, str]]:
        """The type's default config overlaid with the driver's, checked for the type."""
        merged = {c["key"]: c["value"] for c in dtype.get("config") or ()}
        merged.update({c["key"]: c["value"] for c in validate_pairs(config, "config")})
        if dtype["name"] == CRON and dtype.get("builtin"):
            cron.parse_config(merged)
        event_type = merged.get("eventType")
        if event_type is not None and not EVENT_TYPE_PATTERN.match(event_type):
            raise InvalidInput(f"config eventType {event_type!r} may only contain letters, "
                               "numbers, dots, underscores and dashes")
        return [{"key": k, "value": v} for k, v in merged.items()]

    # ---- what the API shows ---------------------------------------------------------

    def show(self, driver: E.Entity) -> E.Entity:
        """The driver without its sealed token, with ``token`` and ``url`` if it has one."""
        shown = {k: v for k, v in driver.items() if k != ENCRYPTED_TOKEN}
        if ENCRYPTED_TOKEN in driver:
            shown["token"] = self.token_of(driver)
            shown["url"] = self.ingest_url(driver["name"])
        else:
            shown["url"] = ""
        return shown

    def ingest_url(self, name: str) -> str:
        return f"{self.api_url}/v1/event/ingest/{name}"

    def token_of(self, driver: E.Entity) -> str:
        try:
            return unseal(self.cipher, driver.get(ENCRYPTED_TOKEN), driver["organizationId"],
                          driver["name"])["token"]
        except (Unsealable, KeyError) as exc:
            if isinstance(exc, Unsealable) and not exc.foreign:
                raise Conflict(f"driver {driver['name']}'s token cannot be decrypted with the "
                               "configured key (was DISPATCH_SECRET_KEY changed?)") from None
            raise Conflict(f"driver {driver['name']} holds another driver's token") from None

    def _seal(self, org: str, name: str, token: str) -> str:
        return seal(self.cipher, org, name, {"token": token})

