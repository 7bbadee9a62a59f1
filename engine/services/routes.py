"""The gateway's route table: which API (and organization) answers a request.

Built from the routed APIs (``READY`` or ``UPDATING``, and ``enabled``) of every
organization, kept current by a store watch (:class:`engine.store.cache.EntityCache`), so every
API or gateway process sees a change within a watch delay, without polling.

Matching, for ``(host, path, method)``:

1. If the host (port stripped) is one of an API's ``hosts``, the path is that API's uri
   as it is, and the organization is the API's.
2. Otherwise the path is ``/<org>/<uri>`` and only APIs without hosts answer.

Uris match exactly, ignoring a trailing slash. A known path whose APIs do not take the
method raises :class:`MethodNotAllowed` naming the methods they take — except an
``OPTIONS`` on a CORS API, which matches (it is a preflight the gateway answers).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from .. import entities as E
from ..store.cache import EntityCache
from ..errors import MethodNotAllowed
from .apis import ROUTED, normalize_uri
from ..store import Store


@dataclasses.dataclass(frozen=True)
class Match:
    """The API a request goes to, its organization and the uri it matched."""

    api: E.Entity
    org: str
    uri: str


def routable(api: E.Entity) -> bool:
    return api.get("status") in ROUTED and api.get("enabled", True) is not False


def clean_host(host: str | None) -> str:
    """``Example.com:8080`` → ``example.com`` (IPv6 literals keep their brackets)."""
    host = (host or "").strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.split(":")[0]


class _Index:
    """Lookups built from one snapshot of the routed APIs."""

    def __init__(self, apis: list[E.Entity]):
        #: (host, uri) → APIs, and (org, uri) → APIs without hosts
        self.by_host: dict[tuple[str, str], list[E.Entity]] = {}
        self.by_org: dict[tuple[str, str], list[E.Entity]] = {}
        self.hosts: set[str] = set()
        for api in sorted(apis, key=E.key_of):
            for uri in api.get("uris") or ["/"]:
                uri = normalize_uri(uri)
                if api.get("hosts"):
                    for host in api["hosts"]:
                        self.hosts.add(host)
                        self.by_host.setdefault((host, uri), []).append(api)
                else:
                    self.by_org.setdefault((api["organizationId"], uri), []).append(api)


class _GenerationCache(EntityCache):
    """An :class:`EntityCache` that counts its changes, so the index is rebuilt only
    after one."""

    generation = 0

    def _load(self) -> int:
        revision = super()._load()
        self.generation += 1
        return revision

    def _apply(self, change) -> None:
        super()._apply(change)
        self.generation += 1


class RouteTable:
    """Routes requests to APIs; thread-safe, one per process."""

    def __init__(self, store: Store):
        self.store = store
        self._cache = _GenerationCache(store, E.API, keep=routable)
        self._index: _Index | None = None
        self._generation = -1
        self._lock = threading.Lock()

    def _current(self) -> _Index:
        generation = self._cache.generation
        if self._index is not None and generation == self._generation:
            return self._index
        apis = self._cache.values()
        if apis is None:  # not loaded yet: read the store (and build again next time)
            return _Index([a for a in self.store.list(E.API) if routable(a)])
        with self._lock:
            self._index, self._generation = _Index(apis), generation
            return self._index

    def is_api_host(self, host: str | None) -> bool:
        """Whether ``host`` (a Host header) is one of an API's hosts."""
        return clean_host(host) in self._current().hosts

    def match(self, host: str | None, path: str, method: str) -> Match | None:
        """The API answering the request, or None if no API has this path.

        :raises MethodNotAllowed: APIs have this path but none takes ``method``.
        """
        index = self._current()
        uri = normalize_uri(path or "/")
        host = clean_host(host)
        if host in index.hosts:
            apis = index.by_host.get((host, uri))
            if apis:
                return _choose(apis, path, uri, method)
        org, _, rest = uri.lstrip("/").partition("/")
        if org:
            apis = index.by_org.get((org, normalize_uri("/" + rest)))
            if apis:
                return _choose(apis, path, normalize_uri("/" + rest), method)
        return None

    def close(self) -> None:
        self._cache.close()


def _choose(apis: list[E.Entity], path: str, uri: str, method: str) -> Match:
    for api in apis:
        if method in api.get("methods") or ():
            return Match(api, api["organizationId"], uri)
    if method == "OPTIONS":
        for api in apis:
            if api.get("cors"):
                return Match(api, api["organizationId"], uri)
    allowed: dict[str, Any] = {}
    for api in apis:
        allowed.update(dict.fromkeys(api.get("methods") or ()))
    raise MethodNotAllowed(path, method, list(allowed))
