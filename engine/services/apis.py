"""APIs of the gateway: an API maps methods, uris and optional hosts to a function.

Dispatch's API model, its codes included (create answers 200, delete 200 with the
entity). An API's life:

* create → ``CREATING``, update → ``UPDATING``, delete → ``DELETING``; the ``sync_api``
  job moves the first two to ``READY`` and removes the last (the reconciler re-drives a
  lost job). The gateway routes ``READY`` and ``UPDATING`` APIs that are ``enabled``, so
  an update takes effect without a gap.
* Routes may not collide: two APIs answering the same method on the same uri in the same
  place (an organization's ``/<org>/…`` paths, or one host) are refused with 409 naming
  the other API. The check and the write happen under one store lock, so two concurrent
  creates cannot both pass it.

Everything is checked before anything is written: a bad field is a 400 naming it.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterable

from .. import entities as E
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision
from ..jobs import SYNC_API, Jobs
from ..store import Store
from ..names import validate_name

log = logging.getLogger("dispatch.apis")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
PROTOCOLS = ("http", "https")
DEFAULT_METHODS = ["GET"]
DEFAULT_URIS = ["/"]
PUBLIC = "public"
#: the gateway requires ``Authorization: Bearer <token>`` (see api/gateway/auth.py)
BEARER = "bearer"
AUTHENTICATIONS = (PUBLIC, BEARER)
#: Dispatch's other schemes: named in the model, refused with a clear message
UNSUPPORTED_AUTHENTICATION = ("basic", "oidc")
#: statuses in which an API is routed (when enabled)
ROUTED = (E.READY, E.UPDATING)

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_PATTERN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
#: a uri is a path: no query, fragment, whitespace or empty segment
URI_PATTERN = re.compile(r"^/(?:[^/?#\s]+(?:/[^/?#\s]+)*)?/?$")
#: the lock taken around the collision check and the write
ROUTES_LOCK = "api-routes"
#: fields a spec may set (the envelope is the server's)
FIELDS = ("function", "hosts", "uris", "methods", "protocols", "authentication", "enabled",
          "cors", "tls", "tags")


def normalize_uri(uri: str) -> str:
    """``/a/b/`` → ``/a/b``: routes match trailing-slash insensitively."""
    return uri.rstrip("/") or "/"


class ApiService:
    """Create, read, update and delete APIs; the ``sync_api`` job settles them."""

    def __init__(self, store: Store, jobs: Jobs):
        self.store, self.jobs = store, jobs

    # ---- API side -------------------------------------------------------------------

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        """Store a new API ``CREATING`` and queue its sync. Conflict if the name is taken
        or a route collides with another API's."""
        name = validate_name(spec.get("name"))
        fields = validate_spec(spec)
        api = E.new(E.API, org, name, status=E.CREATING, **fields)
        with self.store.lock(ROUTES_LOCK, ttl=10):
            self._check_collisions(api)
            api = self.store.add(api)
        self.jobs.submit(SYNC_API, E.key_of(api))
        log.info("api.created key=%s function=%s", E.key_of(api), api["function"])
        return api

    def get(self, org: str, name: str) -> E.Entity:
        return self.store.get(E.API, org, name)

    def list(self, org: str, function: str | None = None,
             tags: dict[str, str] | None = None) -> list[E.Entity]:
        """The organization's APIs ordered by name, of one function if named."""
        fields = {"function": function} if function else None
        return self.store.list(E.API, org, tags=tags, fields=fields)

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace the fields ``spec`` gives (those left out keep their stored values),
        checked as on create; the API is ``UPDATING`` until synced."""
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec['name']!r} does not match the path's {name!r}")
        def change(api: E.Entity) -> E.Entity:
            if api["status"] == E.DELETING:
                raise InvalidInput(f"api {name} is being deleted")
            merged = {k: api.get(k) for k in FIELDS}
            merged.update({k: v for k, v in spec.items() if k in FIELDS and v is not None})
            api.update(validate_spec(merged), status=E.UPDATING, reason=[])
            self._check_collisions(api)
            return api

        with self.store.lock(ROUTES_LOCK, ttl=10):
            api = self.store.modify(E.API, org, name, change)
        self.jobs.submit(SYNC_API, E.key_of(api))
        log.info("api.updated key=%s function=%s", E.key_of(api), api["function"])
        return api

    def delete(self, org: str, name: str) -> E.Entity:
        """Mark the API ``DELETING`` (it stops being routed at once) and queue its
        removal; returns it."""
        api = self.store.modify(E.API, org, name, lambda api: None if api["status"] == E.DELETING
                                else dict(api, status=E.DELETING, delete=True))
        self.jobs.submit(SYNC_API, E.key_of(api))
        log.info("api.deleting key=%s", E.key_of(api))
        return api

    # ---- job side -------------------------------------------------------------------

    def sync(self, key: str) -> None:
        """The ``sync_api`` job: ``CREATING``/``UPDATING`` → ``READY``; ``DELETING`` →
        removed. Idempotent; a write that lost a race is left to the next job."""
        kind, org, name = E.parse_key(key)
        try:
            api = self.store.get(kind, org, name)
            if api["status"] in (E.CREATING, E.UPDATING):
                self.store.update(dict(api, status=E.READY, reason=[]))
                log.info("api.ready key=%s", key)
            elif api["status"] == E.DELETING:
                self.store.delete(kind, org, name, revision=api["revision"])
                log.info("api.deleted key=%s", key)
        except (NotFound, StaleRevision):
            return

    # ---- collisions -----------------------------------------------------------------

    def _check_collisions(self, api: E.Entity) -> None:
        """Conflict naming the first other API that answers one of ``api``'s
        (place, uri, method). Places are the org's paths for an API without hosts, and
        each host otherwise (hosts are global: a host routes without an org)."""
        mine = set(route_keys(api))
        for other in self.store.list(E.API):
            if E.key_of(other) == E.key_of(api) or other["status"] == E.DELETING:
                continue
            clash = mine & set(route_keys(other))
            if clash:
                place, uri, method = sorted(clash)[0]
                if other["organizationId"] == api["organizationId"]:
                    whom = f"api {other['name']}"
                else:
                    whom = "an api of another organization"  # never name others' entities
                where = f"on host {place[1]}" if place[0] == "host" else "in this organization"
                raise Conflict(f"{method} {uri} {where} is already served by {whom}")


def route_keys(api: E.Entity) -> Iterable[tuple[tuple[str, str], str, str]]:
    """``((place kind, place), uri, method)`` for every route the API answers."""
    places = ([("host", h) for h in api.get("hosts") or []]
              or [("org", api["organizationId"])])
    for place in places:
        for uri in api.get("uris") or DEFAULT_URIS:
            for method in api.get("methods") or DEFAULT_METHODS:
                yield place, normalize_uri(uri), method


def validate_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The API's own fields, checked and normalized (defaults filled in)."""
    function = validate_name(spec.get("function"), "function")
    methods = _strings(spec.get("methods"), "methods", DEFAULT_METHODS)
    methods = _unique(m.upper() for m in methods)
    for method in methods:
        if method not in METHODS:
            raise InvalidInput(f"methods: {method!r} is not one of {', '.join(METHODS)}")
    uris = _strings(spec.get("uris"), "uris", DEFAULT_URIS)
    for uri in uris:
        if not URI_PATTERN.match(uri):
            raise InvalidInput(f"uris: {uri!r} must be a path starting with / (no query, "
                               "fragment, spaces or empty segments)")
    uris = _unique(normalize_uri(u) for u in uris)
    hosts = _unique(h.lower() for h in _strings(spec.get("hosts"), "hosts", []))
    for host in hosts:
        if len(host) > 253 or not HOST_PATTERN.match(host):
            raise InvalidInput(f"hosts: {host!r} is not a host name")
    protocols = _unique(p.lower() for p in _strings(spec.get("protocols"), "protocols",
                                                     list(PROTOCOLS)))
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            raise InvalidInput(f"protocols: {protocol!r} is not one of http, https")
    authentication = spec.get("authentication") or PUBLIC
    if authentication not in AUTHENTICATIONS:
        if authentication in UNSUPPORTED_AUTHENTICATION:
            raise InvalidInput(f"authentication {authentication} is not supported: use "
                               "public or bearer (Authorization: Bearer <token>)")
        raise InvalidInput(f"authentication {authentication!r} is not one of public, bearer")
    enabled = _boolean(spec.get("enabled"), "enabled", True)
    cors = _boolean(spec.get("cors"), "cors", False)
    tls = spec.get("tls") or None
    if tls is not None:
        validate_name(tls, "tls")
    tags = spec.get("tags") or []
    if not isinstance(tags, list):
        raise InvalidInput("tags must be a list of {key, value}")
    return {"function": function, "hosts": hosts, "uris": uris, "methods": methods,
            "protocols": protocols, "authentication": authentication, "enabled": enabled,
            "cors": cors, "tls": tls, "tags": list(tags)}


def _strings(value: Any, field: str, default: list[str]) -> list[str]:
    if value is None or value == []:
        return list(default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput(f"{field} must be a list of non-empty strings")
    return value


def _boolean(value: Any, field: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false")
    return value


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
