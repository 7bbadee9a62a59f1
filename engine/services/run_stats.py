"""Figures of the last hour of runs, per function: runs per minute, error rate and
latency percentiles — what the web UI's overview draws. Pure functions over run
entities (as :meth:`RunService.list` returns them)."""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

from .. import entities as E

WINDOW_SECONDS = 3600
BUCKET_SECONDS = 60


@dataclasses.dataclass
class FunctionStats:
    """One function's runs over the window, oldest bucket first."""

    function: str
    #: runs started in each minute of the window (``WINDOW/BUCKET`` buckets)
    per_minute: list[int]
    #: of those, the ones that ended in ERROR
    errors_per_minute: list[int]
    total: int = 0
    errors: int = 0
    #: of settled runs with a duration: p50, p90, p99 in milliseconds (None without runs)
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None

    @property
    def error_rate(self) -> float:
        """Errors over settled runs (0 without any)."""
        settled = self.total_settled
        return self.errors / settled if settled else 0.0

    total_settled: int = 0


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of already sorted values (None if there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(runs: Iterable[E.Entity], now: float, window: int = WINDOW_SECONDS,
              bucket: int = BUCKET_SECONDS) -> list[FunctionStats]:
    """Per-function figures of the runs created in ``(now - window, now]``, by name."""
    buckets = window // bucket
    start = now - window
    stats: dict[str, FunctionStats] = {}
    durations: dict[str, list[float]] = {}
    for run in runs:
        created = run.get("createdAt", run.get("createdTime") or 0)
        if not start < created <= now:
            continue
        name = run.get("functionName") or "?"
        entry = stats.get(name)
        if entry is None:
            entry = stats[name] = FunctionStats(name, [0] * buckets, [0] * buckets)
            durations[name] = []
        index = min(buckets - 1, int((created - start) // bucket))
        entry.per_minute[index] += 1
        entry.total += 1
        if run.get("status") in E.SETTLED:
            entry.total_settled += 1
            if run["status"] == E.ERROR:
                entry.errors += 1
                entry.errors_per_minute[index] += 1
            if isinstance(run.get("durationMs"), (int, float)):
                durations[name].append(float(run["durationMs"]))
    for name, entry in stats.items():
        values = sorted(durations[name])
        entry.p50, entry.p90, entry.p99 = (percentile(values, f) for f in (0.5, 0.9, 0.99))
    return [stats[name] for name in sorted(stats)]
