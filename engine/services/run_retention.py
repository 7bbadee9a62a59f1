"""How many settled runs of a function are kept, and for how long.

Declared on the function as ``retention: {"count": 1000, "ageSeconds": 604800}`` (either
may be left out); the global default is ``DISPATCH_RUN_RETENTION_COUNT`` and
``DISPATCH_RUN_RETENTION_SECONDS``. The reconciler prunes, oldest first, settled runs
beyond the count or older than the age; runs still in progress are never pruned.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import InvalidInput

#: bounds of what a function may ask for (a million runs; ten years)
MAX_COUNT = 1_000_000
MAX_AGE_SECONDS = 10 * 365 * 86400


@dataclasses.dataclass(frozen=True)
class RunRetention:
    count: int | None = None
    age_seconds: float | None = None

    @classmethod
    def parse(cls, value: Any, field: str = "retention") -> "RunRetention | None":
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"count", "ageSeconds"}:
            raise InvalidInput(f"{field} must be an object: {{count, ageSeconds}}")
        count, age = value.get("count"), value.get("ageSeconds")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                                  or not 1 <= count <= MAX_COUNT):
            raise InvalidInput(f"{field}.count must be a whole number from 1 to {MAX_COUNT}")
        if age is not None and (isinstance(age, bool) or not isinstance(age, (int, float))
                                or not 1 <= age <= MAX_AGE_SECONDS):
            raise InvalidInput(f"{field}.ageSeconds must be a number of seconds from 1 to "
                               f"{MAX_AGE_SECONDS}")
        return cls(count, age)

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "ageSeconds": self.age_seconds}

    def over(self, default: "RunRetention") -> "RunRetention":
        """This retention, its missing parts taken from ``default``."""
        return RunRetention(self.count if self.count is not None else default.count,
                            self.age_seconds if self.age_seconds is not None
                            else default.age_seconds)
