"""Driving a store's group commit in tests (the SQLite and etcd stores both queue writes
in ``_pending`` and commit under ``_write_lock``)."""

from __future__ import annotations

import threading
from typing import Any, Callable

from .waiting import settles


def write_together(store: Any, calls: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run ``calls`` in threads queued behind a held write lock, so that they commit as
    groups once it is released; what each returned or raised, by label."""
    results: dict[str, Any] = {}

    def write(label: str, call: Callable[[], Any]) -> None:
        try:
            results[label] = call()
        except Exception as exc:  # noqa: BLE001 - what the write raised is the result
            results[label] = exc

    store._write_lock.acquire()  # a commit in progress: everything after it queues
    threads = [threading.Thread(target=write, args=item) for item in calls.items()]
    try:
        for t in threads:
            t.start()
        settles(lambda: len(store._pending) >= len(calls), f"{len(calls)} writes queued together")
    finally:
        store._write_lock.release()
    for t in threads:
        t.join()
    return results
