"""How every backend turns entities into stored values and back, and names its errors.

The stored value is the entity as JSON *without* ``revision``: a revision is a fact of
the store (etcd's ``mod_revision``, SQLite's change-log row), so it is attached on read
and can never disagree with the store.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Iterable

from .. import entities, fastjson
from ..entities import Entity
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision

#: changes kept for ``watch(prefix, from_revision)`` by the backends that keep their own log
HISTORY = 10_000


def encode(entity: Entity) -> str:
    """The stored form of ``entity``: compact JSON without ``revision``."""
    return encode_bytes(entity).decode()


def encode_bytes(entity: Entity) -> bytes:
    """:func:`encode`'s text, UTF-8 encoded (its size is the size stored)."""
    return fastjson.dumpb({k: v for k, v in entity.items() if k != "revision"})


def decode(value: str | bytes, revision: int) -> Entity:
    """A fresh entity from its stored form, with ``revision`` attached."""
    entity = fastjson.loads(value)
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


#: kinds kept in a creation-time index (for :meth:`Store.page`), with the one field each
#: may also be paged by; ``createdAt`` (else ``createdTime``) and that field must not
#: change once the entity is added
INDEXED: dict[str, str] = {entities.RUN: "functionName"}


#: kinds whose entities in these statuses a backend may keep in an index of their own, so
#: that ``list(kind, status=…)`` asking for some of them reads those entities only, not
#: every entity of the kind: the reconciler's runs in transit, which it lists every pass
#: (etcd: :func:`engine.store.etcd.status_key`; SQLite filters by status in SQL)
STATUS_INDEXED: dict[str, frozenset[str]] = {
    entities.RUN: frozenset({entities.INITIALIZED, entities.CREATING}),
}


def status_indexed(kind: str, status: str | Iterable[str] | None) -> bool:
    """Whether ``list(kind, status=status)`` asks only for statuses of the kind's index."""
    if status is None or kind not in STATUS_INDEXED:
        return False
    wanted = {status} if isinstance(status, str) else set(status)
    return bool(wanted) and wanted <= STATUS_INDEXED[kind]


#: a creation time in microseconds is below this; ``SORT_SPAN - 1 - t`` inverts the order
SORT_SPAN = 10 ** 20


def sort_key(entity: Entity) -> str:
    """The entity's place in its kind's creation index: its creation time in microseconds,
    fixed-width, so that keys sort as times do."""
    created = entity.get("createdAt")
    if created is None:
        created = entity.get("createdTime") or 0
    return f"{round(float(created) * 1_000_000):020d}"


def newest_first_key(sort: str) -> str:
    """``sort`` inverted: ascending keys give the newest first (etcd reads ascending key
    ranges with the limit applied as it goes; other orders read the whole range)."""
    return f"{SORT_SPAN - 1 - int(sort):020d}"


def indexed_field(kind: str, field: tuple[str, Any] | None) -> tuple[str, Any] | None:
    """Check a :meth:`Store.page` field filter against the kind's index."""
    if kind not in INDEXED:
        raise ValueError(f"{kind} is not indexed by creation: page() serves {sorted(INDEXED)}")
    if field is not None and field[0] != INDEXED[kind]:
        raise ValueError(f"{kind} is paged by {INDEXED[kind]} only, not {field[0]}")
    return field


def encode_token(entity: Entity) -> str:
    """An opaque continuation token: the position after ``entity``."""
    raw = f"{sort_key(entity)}/{entity['name']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[str, str]:
    """``(sort key, name)`` of a continuation token; InvalidInput if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        sort, name = raw.split("/", 1)
        int(sort)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("continue is not a continuation token this server gave") from None
    if len(sort) != 20 or not name:
        raise InvalidInput("continue is not a continuation token this server gave")
    return sort, name
