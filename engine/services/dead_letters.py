"""The dead-letter list: runs that failed with an error their retry policy retries, and
had no attempt left.

Each dead run has an entry ``/dispatch/deadletter/<org>/<run name>`` (written before the
run is marked ``dead``, so no dead run goes unlisted), removed when the run is redriven
or pruned. Listing reads only these entries, never every run; an entry whose run did not
end dead (its final write lost a race) is dropped as it is found.
"""

from __future__ import annotations

import time

from .. import entities as E
from ..errors import Conflict, NotFound
from ..store import Store


#: seconds after which an entry whose run is not dead is taken for an orphan
ORPHAN_AFTER = 60.0


class DeadLetters:
    def __init__(self, store: Store):
        self.store = store

    def add(self, run: E.Entity) -> None:
        """List ``run`` as dead (idempotent)."""
        try:
            self.store.add(E.new(E.DEAD_LETTER, run["organizationId"], run["name"],
                                 status=E.READY, functionName=run.get("functionName"),
                                 deadAt=time.time(), error=run.get("error")))
        except Conflict:
            pass

    def remove(self, org: str, run_name: str) -> None:
        try:
            self.store.delete(E.DEAD_LETTER, org, run_name)
        except NotFound:
            pass

    def runs(self, org: str, function_name: str | None = None,
             limit: int | None = None) -> list[E.Entity]:
        """The dead runs of ``org`` (of one function if named), most recently dead first."""
        fields = {"functionName": function_name} if function_name else None
        letters = self.store.list(E.DEAD_LETTER, org, fields=fields)
        letters.sort(key=lambda d: d.get("deadAt", 0), reverse=True)
        dead = []
        for letter in letters:
            try:
                run = self.store.get(E.RUN, org, letter["name"])
            except NotFound:
                run = None
            if run is None or not run.get("dead") or run.get("redrivenTo"):
                # the run's own final write may still be on its way: only old entries go
                if letter.get("deadAt", 0) + ORPHAN_AFTER < time.time():
                    self.remove(org, letter["name"])
                continue
            dead.append(run)
            if limit and len(dead) >= limit:
                break
        return dead
