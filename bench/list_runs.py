"""Listing the newest runs of a large history: ``Store.page`` (the creation index) on
SQLite and on etcd, beside the whole-list-and-sort it replaced.

    python bench/list_runs.py [--runs 100000] [--backends sqlite,etcd]

Fills one organization with ``--runs`` runs of two functions (through ``Store.add``, as
the API does), then times 30 reads of the newest 50 (all functions, then one function),
a page deep in the history (following tokens), and the old way once: ``Store.list`` of
every run, sorted in Python. Target: the newest 50 in under 50 ms on both backends.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cluster import free_port, wait_http  # noqa: E402
from engine import entities as E  # noqa: E402
from engine.store import open_store  # noqa: E402

ORG = "bench"
TARGET_MS = 50.0


def fill(store, count: int, threads: int) -> float:
    """Add ``count`` runs, a second apart in creation time; returns the seconds taken."""
    start_time = time.time() - count

    def add(i: int) -> None:
        store.add(E.new(E.RUN, ORG, str(uuid.uuid4()), status=E.READY,
                        functionName="even" if i % 2 == 0 else "odd",
                        input={"i": i}, output={"ok": True}, error=None,
                        logs={"stdout": [], "stderr": []}, createdAt=start_time + i,
                        attempts=1))

    began = time.perf_counter()
    if threads == 1:
        for i in range(count):
            add(i)
    else:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(add, range(count), chunksize=256))
    return time.perf_counter() - began


def timed(call, repeat: int = 30) -> tuple[float, float]:
    """p50 and max of ``call`` in milliseconds."""
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), max(samples)


def measure(name: str, store, count: int, threads: int) -> None:
    seconds = fill(store, count, threads)
    print(f"{name}: {count} runs added in {seconds:.1f} s ({count / seconds:.0f}/s)",
          flush=True)
    newest = store.page(E.RUN, ORG, limit=50)
    assert len(newest.items) == 50 and newest.items[0]["input"]["i"] == count - 1
    p50, worst = timed(lambda: store.page(E.RUN, ORG, limit=50))
    fp50, fworst = timed(lambda: store.page(E.RUN, ORG, limit=50, field=("functionName", "odd")))
    token = None
    for _ in range(100):  # 5,000 runs deep
        token = store.page(E.RUN, ORG, limit=50, token=token).token
    dp50, _ = timed(lambda: store.page(E.RUN, ORG, limit=50, token=token))
    began = time.perf_counter()
    try:
        every = store.list(E.RUN, ORG)
        every.sort(key=lambda r: r["createdAt"], reverse=True)
        old = f"{(time.perf_counter() - began) * 1000:.0f} ms"
    except Exception as exc:  # e.g. etcd refusing a response that large
        old = f"failed after {(time.perf_counter() - began) * 1000:.0f} ms: {type(exc).__name__}"
    verdict = "met" if p50 < TARGET_MS else "NOT met"
    print(f"{name}: newest 50 of {count}: p50 {p50:.2f} ms (max {worst:.2f}); one function's "
          f"newest 50: p50 {fp50:.2f} ms (max {fworst:.2f}); 50 at depth 5,000: p50 "
          f"{dp50:.2f} ms; count {store.count(E.RUN, ORG)}; old list+sort: {old}; "
          f"target < {TARGET_MS:.0f} ms: {verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--backends", default="sqlite,etcd")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="dispatch-bench-list-")
    try:
        if "sqlite" in args.backends:
            store = open_store(f"sqlite:///{tmp}/dispatch.db")
            measure("sqlite", store, args.runs, threads=1)
            store.close()
        if "etcd" in args.backends:
            port, peer = free_port(), free_port()
            etcd = subprocess.Popen(
                ["etcd", "--data-dir", f"{tmp}/etcd", "--listen-client-urls",
                 f"http://127.0.0.1:{port}", "--advertise-client-urls",
                 f"http://127.0.0.1:{port}", "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", f"default=http://127.0.0.1:{peer}",
                 "--quota-backend-bytes", str(4 << 30)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_http(port, "/health")
                store = open_store(f"etcd://127.0.0.1:{port}")
                measure("etcd", store, args.runs, threads=16)
                store.close()
            finally:
                etcd.terminate()
                etcd.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
