"""A function's retry policy: how often a failed run is started again, and when.

Declared on the function as ``retry``::

    {"attempts": 5, "backoff": "exponential", "delayMs": 1000, "maxDelayMs": 60000,
     "jitter": 0.2, "on": ["SystemError", "FunctionError"]}

``attempts`` counts every start, the first included. A run whose error type is in ``on``
(by default only ``SystemError``: the platform failed, not the function) is started again
after a delay while attempts remain; an ``InputError`` never is (the same input fails the
same way). A run that fails with a retried type and has no attempts left is *dead*: it
is listed as a dead letter until it is redriven or pruned.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from ..errors import InvalidInput

BACKOFFS = ("constant", "exponential")
RETRYABLE = ("SystemError", "FunctionError")
#: the most starts a policy may ask for, and the longest delay (one day)
MAX_ATTEMPTS = 100
MAX_DELAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 1
    backoff: str = "exponential"
    delay_ms: int = 1000
    max_delay_ms: int = 60_000
    #: the fraction of each delay drawn at random (0: exact delays; 1: anywhere from 0)
    jitter: float = 0.0
    on: tuple[str, ...] = ("SystemError",)

    @classmethod
    def parse(cls, value: Any, field: str = "retry") -> "RetryPolicy | None":
        """The policy in a function spec's ``retry`` (None if absent); InvalidInput naming
        the field that is wrong."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise InvalidInput(f"{field} must be an object: {{attempts, backoff, delayMs, "
                               "maxDelayMs, jitter, on}")
        unknown = set(value) - {"attempts", "backoff", "delayMs", "maxDelayMs", "jitter", "on"}
        if unknown:
            raise InvalidInput(f"{field} has unknown fields: {', '.join(sorted(unknown))}")
        attempts = _integer(value.get("attempts", 3), f"{field}.attempts", 1, MAX_ATTEMPTS)
        backoff = value.get("backoff", "exponential")
        if backoff not in BACKOFFS:
            raise InvalidInput(f"{field}.backoff must be one of {', '.join(BACKOFFS)}")
        delay = _integer(value.get("delayMs", 1000), f"{field}.delayMs", 0, MAX_DELAY_MS)
        max_delay = _integer(value.get("maxDelayMs", max(60_000, delay)),
                             f"{field}.maxDelayMs", delay, MAX_DELAY_MS)
        jitter = value.get("jitter", 0.1)
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) \
                or not 0 <= jitter <= 1:
            raise InvalidInput(f"{field}.jitter must be a number from 0 to 1")
        on = value.get("on", ["SystemError"])
        if not isinstance(on, list) or not on or any(t not in RETRYABLE for t in on):
            raise InvalidInput(f"{field}.on must list error types among "
                               f"{', '.join(RETRYABLE)}")
        return cls(attempts, backoff, delay, max_delay, float(jitter), tuple(dict.fromkeys(on)))

    @classmethod
    def of(cls, run: dict[str, Any]) -> "RetryPolicy | None":
        """The policy a run was started under (a copy of its function's at the time)."""
        stored = run.get("retry")
        return None if not stored else cls.parse(stored)

    def to_json(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "backoff": self.backoff, "delayMs": self.delay_ms,
                "maxDelayMs": self.max_delay_ms, "jitter": self.jitter, "on": list(self.on)}

    def retries(self, error_type: str | None) -> bool:
        """Whether an error of ``error_type`` is retried under this policy."""
        return error_type in self.on

    def delay(self, attempt: int, rand: random.Random | None = None) -> float:
        """Seconds to wait before start number ``attempt + 1``, after ``attempt`` starts."""
        if self.backoff == "constant":
            ms = self.delay_ms
        else:
            ms = self.delay_ms * 2 ** min(max(attempt - 1, 0), 40)
        ms = min(ms, self.max_delay_ms)
        if self.jitter:
            ms -= ms * self.jitter * (rand or random).random()
        return ms / 1000


def _integer(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be a whole number from {low} to {high}")
    return value
