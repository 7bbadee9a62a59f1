"""Geometry of the overview's small charts, drawn as inline SVG by the templates (no
chart library, no script): bars of runs per minute, percentile bars of latency."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    label: str


def minute_bars(per_minute: list[int], errors: list[int], width: float = 240,
                height: float = 48) -> list[Bar]:
    """One bar per minute, scaled to the busiest minute; its failed part on top."""
    top = max(per_minute or [0]) or 1
    step = width / max(1, len(per_minute))
    bars = []
    for i, (count, failed) in enumerate(zip(per_minute, errors)):
        if not count:
            continue
        ago = len(per_minute) - i
        ok_h = (count - failed) / top * height
        err_h = failed / top * height
        label = f"{count} run{'s' if count != 1 else ''} {ago} min ago, {failed} failed"
        if ok_h:
            bars.append(Bar(round(i * step, 2), round(height - ok_h, 2),
                            round(max(step - 1, 1), 2), round(ok_h, 2), "ok", label))
        if err_h:
            bars.append(Bar(round(i * step, 2), round(height - ok_h - err_h, 2),
                            round(max(step - 1, 1), 2), round(err_h, 2), "err", label))
    return bars


def latency_bars(p50: float | None, p90: float | None, p99: float | None,
                 width: float = 160, row: float = 14) -> list[Bar]:
    """Three horizontal bars, p50, p90 and p99, scaled to p99."""
    values = [("p50", p50), ("p90", p90), ("p99", p99)]
    top = max((v for _, v in values if v is not None), default=0) or 1
    return [Bar(0, i * row, round(max(1.0, (v or 0) / top * width), 2), row - 3, name,
                f"{name} {v:.1f} ms" if v is not None else f"{name} —")
            for i, (name, v) in enumerate(values)]
