"""The entity store: one port (:class:`Store`), three backends chosen by URL."""

from __future__ import annotations

from .base import Lock, Page, Store, Watch, WatchEvent, matches

__all__ = ["Lock", "Page", "Store", "Watch", "WatchEvent", "matches", "open_store"]


def open_store(url: str) -> Store:
    """Open the store named by ``url``.

    ``memory://`` (unit tests only), ``sqlite:///path/to/file.db``, or
    ``etcd://host:port[,host:port…]``.
    """
    scheme, _, rest = url.partition("://")
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        from .sqlite import SqliteStore

        return SqliteStore(rest)
    if scheme == "etcd":
        from .etcd import EtcdStore

        return EtcdStore([hp for hp in rest.strip("/").split(",") if hp])
    raise ValueError(f"unknown store URL {url!r}: use memory://, sqlite:///PATH or etcd://HOST:PORT")
