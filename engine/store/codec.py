"""How every backend turns entities into stored values and back, and names its errors.

The stored value is the entity as JSON *without* ``revision``: a revision is a fact of
the store (etcd's ``mod_revision``, SQLite's change-log row), so it is attached on read
and can never disagree with the store.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .. import entities
from ..entities import Entity
from ..errors import Conflict, NotFound, StaleRevision

#: changes kept for ``watch(prefix, from_revision)`` by the backends that keep their own log
HISTORY = 10_000


def encode(entity: Entity) -> str:
    """The stored form of ``entity``: compact JSON without ``revision``."""
    return json.dumps({k: v for k, v in entity.items() if k != "revision"}, separators=(",", ":"))


def decode(value: str | bytes, revision: int) -> Entity:
    """A fresh entity from its stored form, with ``revision`` attached."""
    entity = json.loads(value)
    entity["revision"] = revision
    return entity


def for_add(entity: Entity) -> tuple[str, Entity]:
    """``(key, entity to store)`` for :meth:`Store.add`: a copy with its timestamps set."""
    stored = dict(entity)
    now = int(time.time())
    stored.setdefault("createdTime", now)
    stored.setdefault("modifiedTime", now)
    return entities.key_of(stored), stored


def for_update(entity: Entity) -> tuple[str, Entity]:
    """``(key, entity to store)`` for :meth:`Store.update`: a copy with ``modifiedTime`` now."""
    stored = dict(entity)
    stored["modifiedTime"] = int(time.time())
    return entities.key_of(stored), stored


def kind_name(kind: str) -> str:
    """Dispatch's spelling of a kind, as in messages: ``function`` -> ``Function``."""
    return entities.KIND_NAMES.get(kind.lower(), kind.capitalize())


def already_exists(entity: Entity) -> Conflict:
    return Conflict(f"{kind_name(entity['kind'])} {entity['name']} already exists")


def not_found(key: str) -> NotFound:
    kind, _, name = entities.parse_key(key)
    return NotFound(f"{kind_name(kind)} {name} not found")


def stale(key: str, expected: Any, actual: int) -> StaleRevision:
    kind, _, name = entities.parse_key(key)
    return StaleRevision(
        f"{kind_name(kind)} {name} was modified meanwhile (revision {actual}, not {expected})"
    )


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
