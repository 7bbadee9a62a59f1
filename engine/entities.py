"""Entities are plain JSON documents with a common envelope.

Every entity carries ``id, kind, name, organizationId, createdTime, modifiedTime,
revision, status, reason[], tags[], delete`` and then its resource's own fields.
They are stored under ``/dispatch/<kind>/<org>/<name>``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

Entity = dict[str, Any]

PREFIX = "/dispatch/"

# kinds (lower-case in keys; the entity's ``kind`` field carries Dispatch's spelling)
FUNCTION = "function"
RUN = "run"
SOURCE = "source"
IMAGE = "image"
BASE_IMAGE = "baseimage"
SECRET = "secret"
#: a received event, kept for delivery and de-duplication (name: a hash of source + id)
EVENT = "event"
SUBSCRIPTION = "subscription"
#: an event driver (Dispatch's ``Driver``) and its type (``DriverType``)
DRIVER = "driver"
DRIVER_TYPE = "drivertype"
#: the tick cursor of a ``cron`` event driver (same org and name as the driver)
SCHEDULE = "schedule"
#: an API of the gateway
API = "api"
#: an ``Idempotency-Key`` of ``POST /v1/runs``, remembered for a window (engine.services.
#: idempotency): its name is a hash of (function, key), it names the run it started
IDEMPOTENCY = "idempotencykey"
#: a dead run's entry in its organization's dead-letter list (same name as the run)
DEAD_LETTER = "deadletter"
#: identity (engine.identity): a tenant (stored under its own name as org), a service
#: account and a policy
ORGANIZATION = "organization"
SERVICE_ACCOUNT = "serviceaccount"
POLICY = "policy"
#: a workflow definition (Serverless Workflow DSL 1.0) and its executions
WORKFLOW = "workflow"
EXECUTION = "execution"
#: one activity of an execution (a call, a timer, …), named ``<execution>/<hash of its
#: id>``: written add-only when it starts, then once with its result
ACTIVITY = "activity"
#: a ``listen`` activity waiting for events of its organization (``<execution>--<hash>``)
LISTENER = "listener"

KIND_NAMES = {FUNCTION: "Function", RUN: "Run", SOURCE: "Source", IMAGE: "Image",
              BASE_IMAGE: "BaseImage", SECRET: "Secret", EVENT: "Event",
              SUBSCRIPTION: "Subscription", DRIVER: "Driver", DRIVER_TYPE: "DriverType",
              SCHEDULE: "Schedule", API: "API", ORGANIZATION: "Organization",
              SERVICE_ACCOUNT: "ServiceAccount", POLICY: "Policy",
              IDEMPOTENCY: "IdempotencyKey", DEAD_LETTER: "DeadLetter",
              WORKFLOW: "Workflow", EXECUTION: "Execution", ACTIVITY: "Activity",
              LISTENER: "Listener"}

# Dispatch's statuses
INITIALIZED = "INITIALIZED"
CREATING = "CREATING"
READY = "READY"
UPDATING = "UPDATING"
ERROR = "ERROR"
DELETING = "DELETING"
#: an external resource (a base image) that was READY and has disappeared
MISSING = "MISSING"
SETTLED = (READY, ERROR)


def key(kind: str, org: str, name: str) -> str:
    """The store key of an entity: ``/dispatch/<kind>/<org>/<name>``."""
    return f"{PREFIX}{kind}/{org}/{name}"


def prefix(kind: str, org: str | None = None) -> str:
    """The key prefix of every entity of ``kind`` (in ``org``, or in every org)."""
    return f"{PREFIX}{kind}/" if org is None else f"{PREFIX}{kind}/{org}/"


def parse_key(k: str) -> tuple[str, str, str]:
    """``(kind, org, name)`` of a store key."""
    kind, org, name = k[len(PREFIX):].split("/", 2)
    return kind, org, name


def key_of(entity: Entity) -> str:
    return key(entity["kind"].lower(), entity["organizationId"], entity["name"])


#: random bytes a thread takes from the kernel at a time for :func:`new_uuid`
_RANDOM_CHUNK = 4096
_random = threading.local()


def new_uuid() -> str:
    """A random (version 4) UUID, as ``str(uuid.uuid4())`` makes, from the kernel's
    random bytes fetched a few kilobytes at a time per thread: ``uuid4`` asks the kernel
    for every one, and a system call lets the thread's interpreter lock go — under load,
    another thread takes it, and this one waits to have it back."""
    pool = _random.__dict__
    data, at = pool.get("data", b""), pool.get("at", 0)
    if at + 16 > len(data):
        data, at = os.urandom(_RANDOM_CHUNK), 0
        pool["data"] = data
    pool["at"] = at + 16
    # uuid.UUID(bytes=…, version=4) and str(): the version and variant bits set, the hex
    # cut into its five groups (3 µs of Python in uuid.UUID, twice a run, saved)
    raw = bytearray(data[at:at + 16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _after_fork() -> None:
    # a child must not hand out the bytes its parent will hand out too
    global _random
    _random = threading.local()


os.register_at_fork(after_in_child=_after_fork)


def new(kind: str, org: str, name: str, status: str = INITIALIZED, **fields: Any) -> Entity:
    """A new entity with its envelope filled in (the store sets ``revision``)."""
    now = int(time.time())
    entity: Entity = {
        "id": new_uuid(),
        "kind": KIND_NAMES.get(kind, kind.capitalize()),
        "name": name,
        "organizationId": org,
        "createdTime": now,
        "modifiedTime": now,
        "revision": 0,
        "status": status,
        "reason": [],
        "tags": [],
        "delete": False,
    }
    entity.update(fields)
    return entity
