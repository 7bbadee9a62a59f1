"""Idempotency keys of ``POST /v1/runs``: the same key, within a window, is the same run.

A key is scoped to one organization and one function: it is stored as an
``IdempotencyKey`` entity under ``/dispatch/idempotencykey/<org>/<sha256(function, key)>``
naming the run it started, and expires ``window`` seconds after it was first used (the
reconciler deletes expired records). Claiming is a create-only write, so of two
concurrent requests with one key exactly one claims it; the other is told the run's
name, and the run itself is then added create-only under that name by whichever request
gets there first: one run, queued once, whatever the interleaving.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

from .. import entities as E
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision
from ..store import Store

#: the longest key taken (Stripe's and the IETF draft's keys are UUIDs or similar)
MAX_KEY_LENGTH = 255


@dataclasses.dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`IdempotencyKeys.claim`."""

    #: the run this key names
    run_name: str
    #: True if the key was seen before: the run is (or is about to be) there already
    replay: bool
    #: seconds since the key was first used
    age: float


def check_key(key: str) -> str:
    """``key`` if it is a usable idempotency key, else InvalidInput naming the problem."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable "
                           "characters")
    return key


class IdempotencyKeys:
    """Records of idempotency keys in the store, each kept for ``window`` seconds."""

    def __init__(self, store: Store, window: float = 86400.0):
        self.store, self.window = store, window

    @staticmethod
    def record_name(function_name: str, key: str) -> str:
        return hashlib.sha256(f"{function_name}\0{key}".encode()).hexdigest()[:48]

    def claim(self, org: str, function_name: str, key: str, run_name: str,
              now: float | None = None) -> Claim:
        """Claim ``key`` for a new run named ``run_name``, or learn the run it already
        names (an expired record is replaced)."""
        check_key(key)
        name = self.record_name(function_name, key)
        for _ in range(5):
            now = time.time() if now is None else now
            try:
                self.store.add(E.new(E.IDEMPOTENCY, org, name, status=E.READY,
                                     functionName=function_name, runName=run_name,
                                     firstUsedAt=now, expiresAt=now + self.window))
                return Claim(run_name, False, 0.0)
            except Conflict:
                pass
            try:
                record = self.store.get(E.IDEMPOTENCY, org, name)
            except NotFound:
                continue  # expired and deleted meanwhile: claim it afresh
            if record["expiresAt"] > now:
                return Claim(record["runName"], True, now - record["firstUsedAt"])
            try:
                self.store.delete(E.IDEMPOTENCY, org, name, revision=record["revision"])
            except (NotFound, StaleRevision):
                pass
        raise Conflict("Idempotency-Key is being claimed by other requests; try again")

    def release(self, org: str, function_name: str, key: str, run_name: str) -> None:
        """Forget a fresh claim whose run could not be started (e.g. the function is not
        READY), so that a retry with the key starts it."""
        name = self.record_name(function_name, key)
        try:
            record = self.store.get(E.IDEMPOTENCY, org, name)
            if record["runName"] == run_name:
                self.store.delete(E.IDEMPOTENCY, org, name, revision=record["revision"])
        except (NotFound, StaleRevision):
            pass
