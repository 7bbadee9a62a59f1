"""The claims of runs executed where they were accepted, written only if the call lasts.

A blocking run executed by the process that accepted it (:meth:`RunService.start
<engine.services.runs.RunService.start>`) was stored claimed (``CREATING``) before its
call and again with its result: two writes, the first of them read by nobody when the
call ends a millisecond later. So the claim is handed to :class:`LateClaims`, whose thread
writes it once the call has lasted ``after`` seconds; a run whose call ends before is
written once, with its result (:meth:`LateClaim.settle` says which).

What the claim is for is still there for every call that lasts: a process lost during
the call leaves the run claimed, and the reconciler starts it again once the claim
expires. A process lost within ``after`` seconds of starting a call leaves no record of
it — nor an answer: the client's request fails, the run was never accepted, and it is not
started again (at most once, where a written claim makes it at least once).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger("dispatch.runs")


class LateClaim:
    """One run's claim, waiting for its time (``due``, on the monotonic clock)."""

    __slots__ = ("record", "due", "settled", "revision", "_lock")

    def __init__(self, record: dict[str, Any], due: float) -> None:
        self.record, self.due = record, due
        self.settled = False
        #: the stored claim's revision, once written
        self.revision: int | None = None
        self._lock = threading.Lock()

    def settle(self) -> int | None:
        """Keep the claim from being written from now on (waiting for a write under way):
        the written claim's revision, or None if it was not written, and the run's
        outcome is then its first record. Idempotent."""
        with self._lock:
            self.settled = True
            return self.revision

    def write(self, add: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Store the claim with ``add`` unless the run settled first; a failed write
        leaves it unwritten (the outcome is then added: see :meth:`settle`)."""
        with self._lock:
            if self.settled:
                return
            try:
                self.revision = add(self.record)["revision"]
            except Exception as exc:  # noqa: BLE001 - the outcome's write tells the rest
                log.warning("run.claim_not_written run=%s error=%r",
                            self.record.get("name"), exc)


class LateClaims:
    """Writes each deferred claim with ``add`` once ``after`` seconds have passed, unless
    its run settled first.

    One daemon thread, started by the first claim. Every claim waits the same time, so
    they fall due in the order they came: the thread sleeps until the oldest unsettled one
    is due, drops the settled ones it finds on waking, and waits on an event when none is
    left — a busy server wakes it about once per ``after``, not once per run.
    """

    def __init__(self, add: Callable[[dict[str, Any]], dict[str, Any]], after: float) -> None:
        self._add, self.after = add, after
        self._claims: collections.deque[LateClaim] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = True
        self._thread: threading.Thread | None = None

    def defer(self, record: dict[str, Any]) -> LateClaim:
        """Write (a copy of) ``record`` in ``after`` seconds unless settled before."""
        claim = LateClaim(dict(record), time.monotonic() + self.after)
        with self._lock:
            self._claims.append(claim)
            if self._idle:
                self._idle = False
                self._wake.set()
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="late-claims",
                                                    daemon=True)
                    self._thread.start()
        return claim

    def _run(self) -> None:
        while True:
            self._wake.wait()
            due, pause = self._take_due(time.monotonic())
            for claim in due:
                claim.write(self._add)
            if pause:
                time.sleep(pause)

    def _take_due(self, now: float) -> tuple[list[LateClaim], float]:
        """The claims to write now, and how long until the next falls due (0: none
        waits, and the thread waits for the next claim)."""
        with self._lock:
            waiting = [claim for claim in self._claims if not claim.settled]
            due = [claim for claim in waiting if claim.due <= now]
            self._claims = collections.deque(waiting[len(due):])
            if self._claims:
                return due, self._claims[0].due - now
            self._idle = True
            self._wake.clear()
            return due, 0.0
