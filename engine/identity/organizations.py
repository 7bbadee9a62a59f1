"""Organizations: the tenants. Every entity, run, event, secret and gateway path
belongs to exactly one, named in its key (``/dispatch/<kind>/<org>/<name>``).

An organization is stored as Dispatch stored it: an ``Organization`` entity whose own
organization is its name (``/dispatch/organization/<name>/<name>``). It has no
asynchronous life: it is ``READY`` as soon as it is written.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import entities as E
from ..store.cache import EntityCache
from ..errors import Conflict, InvalidInput, NotFound
from ..names import is_name, validate_name
from ..store import Store
from .errors import UnknownOrganization

log = logging.getLogger("dispatch.identity")

ORGANIZATION = E.ORGANIZATION
SERVICE_ACCOUNT = E.SERVICE_ACCOUNT
POLICY = E.POLICY

#: first path segments of the API's own routes: an organization named so would shadow
#: them in the gateway (``/<org>/<path>``) — keep in step with api/gateway.API_SEGMENTS
RESERVED_NAMES = frozenset({"v1", "healthz", "readyz", "metrics", "docs", "openapi.json",
                            "oidc", "login", "logout", "auth", "ui", "static"})

#: kinds that are an organization's records, deleted with it: runs and events of
#: functions and subscriptions that are gone, sources of deleted functions, cron cursors
RECORD_KINDS = (E.RUN, E.SOURCE, E.EVENT, E.SCHEDULE)
#: the organization's identity, deleted with it (after the organization entity itself,
#: so nobody authenticates into a half-deleted organization)
IDENTITY_KINDS = (SERVICE_ACCOUNT, POLICY)


class OrganizationService:
    """Create, read, list and delete organizations, and check that one exists.

    ``require`` is on every request's path: it reads a watch-fed cache and goes to the
    store only when the cache does not know the name (a just-created organization).
    """

    def __init__(self, store: Store):
        self.store = store
        self._cache: EntityCache | None = None

    def create(self, spec: dict[str, Any]) -> E.Entity:
        """Store a new organization; InvalidInput for a bad or reserved name, Conflict
        if it exists."""
        name = validate_name(spec.get("name"))
        if name.lower() in RESERVED_NAMES:
            raise InvalidInput(
                f"name {name!r} is reserved: it is a path of the API itself "
                f"({', '.join(sorted(RESERVED_NAMES))})")
        org = E.new(ORGANIZATION, name, name, status=E.READY,
                    tags=list(spec.get("tags") or []))
        try:
            org = self.store.add(org)
        except Conflict:
            raise Conflict(f"organization {name} already exists") from None
        log.info("organization.created key=%s", E.key_of(org))
        return org

    def get(self, name: str) -> E.Entity:
        """The organization; NotFound if absent."""
        try:
            return self.store.get(ORGANIZATION, name, name)
        except NotFound:
            raise NotFound(f"organization {name} not found") from None

    def update(self, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace an organization's tags (its only field a client sets)."""
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        if spec.get("tags") is None:
            return self.get(name)
        try:
            return self.store.modify(ORGANIZATION, name, name,
                                     lambda org: dict(org, tags=list(spec["tags"])))
        except NotFound:
            raise NotFound(f"organization {name} not found") from None

    def list(self) -> list[E.Entity]:
        """Every organization, ordered by name."""
        return self.store.list(ORGANIZATION)

    def exists(self, name: str) -> bool:
        if not is_name(name):
            return False
        if self._cache is None:
            self._cache = EntityCache(self.store, ORGANIZATION)
        if self._cache.get(name, name) is not None:
            return True
        try:  # unknown to the cache: not loaded yet, or created a moment ago
            self.store.get(ORGANIZATION, name, name)
            return True
        except NotFound:
            return False

    def require(self, name: str) -> str:
        """``name`` if that organization exists; else UnknownOrganization (403)."""
        if not self.exists(name):
            raise UnknownOrganization(name)
        return name

    def delete(self, name: str) -> None:
        """Delete an organization that holds no resources any more.

        Refused (Conflict, naming what is left) while the organization holds functions,
        images, base images, secrets, subscriptions, event drivers or APIs — any kind
        that is not a record or identity — so that each is torn down by its own
        delete (images removed, drivers stopped). Its records (runs, sources, events,
        cron cursors) and its identity (service accounts, policies, including global
        policies it holds) are then deleted with it. NotFound if absent.
        """
        self.get(name)
        remaining = [f"{len(items)} {kind}" for kind in self._resource_kinds()
                     if (items := self.store.list(kind, name))]
        if remaining:
            raise Conflict(f"organization {name} still holds {', '.join(remaining)}: "
                           "delete them first")
        # the organization first: from here on, require() refuses it
        self.store.delete(ORGANIZATION, name, name)
        for kind in RECORD_KINDS + IDENTITY_KINDS:
            for entity in self.store.list(kind, name):
                try:
                    self.store.delete(kind, name, entity["name"])
                except NotFound:
                    pass  # deleted meanwhile
        log.info("organization.deleted key=%s", E.key(ORGANIZATION, name, name))

    @staticmethod
    def _resource_kinds() -> list[str]:
        # every kind the engine knows, less records and identity: a kind added later
        # blocks the deletion until someone decides it is a record
        skip = set(RECORD_KINDS) | set(IDENTITY_KINDS) | {ORGANIZATION}
        return [kind for kind in E.KIND_NAMES if kind not in skip]

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
