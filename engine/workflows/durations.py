"""Durations of the DSL: an inline object (``{seconds: 3}``) or an ISO 8601 string."""

from __future__ import annotations

import re

_ISO = re.compile(
    r"^P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")

_UNITS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1, "milliseconds": 0.001}


def seconds(duration) -> float:
    """The length of ``duration`` in seconds; ``ValueError`` names what is wrong.

    Years count 365 days and months 30 (ISO 8601 leaves them calendar-dependent).
    """
    if isinstance(duration, dict):
        unknown = set(duration) - set(_UNITS)
        if unknown or not duration:
            raise ValueError(f"not a duration: {duration!r}")
        return float(sum(_UNITS[k] * float(v) for k, v in duration.items()))
    if isinstance(duration, str):
        m = _ISO.match(duration.strip())
        if not m:
            raise ValueError(f"not an ISO 8601 duration: {duration!r}")
        y, mo, w, d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return (((y * 365 + mo * 30 + w * 7 + d) * 24 + h) * 60 + mi) * 60 + s
    raise ValueError(f"not a duration: {duration!r}")
