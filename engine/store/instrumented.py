"""The store port with each operation timed: :class:`InstrumentedStore` wraps any backend.

The one place store latency is measured (``dispatch_store_operation_seconds``,
``dispatch_store_operation_errors_total``): :class:`~engine.system.Dispatch` wraps the
store it is given, so every service, job and the reconciler go through it. The wrapped
backend keeps every guarantee; the wrapper only adds a clock read and a histogram
observation per call.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

from ..observability import metrics
from ..entities import Entity
from .base import Lock, Page, Store, Watch


class InstrumentedStore(Store):
    """``inner`` with its operations timed under ``backend``'s label."""

    def __init__(self, inner: Store, backend: str):
        self.inner = inner
        self.backend = backend
        # children resolved once: the hot path is one observe() per operation
        self._latency = {op: metrics.STORE_LATENCY.labels(backend, op)
                         for op in ("add", "get", "list", "page", "count", "update", "delete",
                                    "revision", "watch", "lock")}

    def _timed(self, operation: str, call, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            metrics.STORE_ERRORS.labels(self.backend, operation, type(exc).__name__).inc()
            raise
        finally:
            self._latency[operation].observe(time.perf_counter() - started)

    def add(self, entity: Entity) -> Entity:
        return self._timed("add", self.inner.add, entity)

    def get(self, kind: str, org: str, name: str) -> Entity:
        return self._timed("get", self.inner.get, kind, org, name)

    def list(self, kind: str, org: str | None = None, *,
             status: str | Iterable[str] | None = None,
             tags: Mapping[str, str] | None = None,
             fields: Mapping[str, Any] | None = None) -> list[Entity]:
        return self._timed("list", self.inner.list, kind, org, status=status, tags=tags,
                           fields=fields)

    def page(self, kind: str, org: str, *, limit: int, token: str | None = None,
             field: tuple[str, Any] | None = None, oldest_first: bool = False) -> Page:
        return self._timed("page", self.inner.page, kind, org, limit=limit, token=token,
                           field=field, oldest_first=oldest_first)

    def count(self, kind: str, org: str, *, field: tuple[str, Any] | None = None) -> int:
        return self._timed("count", self.inner.count, kind, org, field=field)

    def update(self, entity: Entity) -> Entity:
        return self._timed("update", self.inner.update, entity)

    def delete(self, kind: str, org: str, name: str, revision: int | None = None) -> None:
        return self._timed("delete", self.inner.delete, kind, org, name, revision)

    def watch(self, prefix: str, from_revision: int | None = None) -> Watch:
        return self._timed("watch", self.inner.watch, prefix, from_revision)

    def lock(self, name: str, ttl: float) -> Lock:
        return self._timed("lock", self.inner.lock, name, ttl)

    def revision(self) -> int:
        return self._timed("revision", self.inner.revision)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # backend-specific attributes (an etcd store's endpoints, …) read through
        return getattr(self.inner, name)


def instrumented(store: Store) -> Store:
    """``store`` timed, once (wrapping a wrapped store returns it as it is)."""
    if isinstance(store, InstrumentedStore):
        return store
    backend = type(store).__name__.removesuffix("Store").lower() or "store"
    return InstrumentedStore(store, backend)
