"""Run retention: the reconciler's leader prunes settled runs beyond each function's
count or past its age (:mod:`engine.services.run_retention`), oldest first, reading pages of the
store's creation index, never every run."""

from __future__ import annotations

import logging

from .. import entities as E
from ..errors import NotFound, StaleRevision
from ..services.run_retention import RunRetention
from ..services.dead_letters import DeadLetters
from ..store import Store

log = logging.getLogger("dispatch.retention")

#: runs read per page while pruning
PAGE = 200


class RunPruner:
    """Deletes settled runs a function's retention (or ``default``) no longer keeps.

    :param budget: the most runs one :meth:`prune` deletes (the next one goes on)
    :param every: seconds between two prunings when called by every reconciler pass
    """

    def __init__(self, store: Store, default: RunRetention, budget: int = 1000,
                 every: float = 60.0):
        self.store, self.default, self.budget, self.every = store, default, budget, every
        self.dead_letters = DeadLetters(store)
        self._last = float("-inf")

    def maybe_prune(self, now: float) -> int:
        """:meth:`prune` if ``every`` seconds went by since the last time; else 0."""
        if self._last + self.every > now:
            return 0
        self._last = now
        return self.prune(now)

    def prune(self, now: float) -> int:
        """One round over every function; returns how many runs it deleted."""
        left = self.budget
        for fn in self.store.list(E.FUNCTION):
            if left <= 0:
                break
            retention = (RunRetention.parse(fn.get("retention")) or RunRetention()).over(
                self.default)
            left -= self._prune_function(fn["organizationId"], fn["name"], retention, now,
                                         left)
        return self.budget - left

    def _prune_function(self, org: str, name: str, retention: RunRetention, now: float,
                        budget: int) -> int:
        field = ("functionName", name)
        deleted = 0
        if retention.age_seconds:
            cutoff = now - retention.age_seconds
            deleted += self._delete_oldest(org, field, budget,
                                           lambda run: _created(run) < cutoff)
        if retention.count and deleted < budget:
            excess = self.store.count(E.RUN, org, field=field) - retention.count
            if excess > 0:
                deleted += self._delete_oldest(org, field, min(excess, budget - deleted),
                                               lambda run: True)
        if deleted:
            log.info("retention.pruned org=%s function=%s runs=%d", org, name, deleted)
        return deleted

    def _delete_oldest(self, org: str, field, most: int, wanted) -> int:
        """Delete up to ``most`` settled runs, oldest first, while ``wanted(run)``."""
        deleted, token = 0, None
        while deleted < most:
            page = self.store.page(E.RUN, org, limit=PAGE, token=token, field=field,
                                   oldest_first=True)
            for run in page.items:
                if not wanted(run):
                    return deleted
                if run["status"] not in E.SETTLED:
                    continue  # in progress: never pruned
                try:
                    self.store.delete(E.RUN, org, run["name"], revision=run["revision"])
                except (NotFound, StaleRevision):
                    continue
                if run.get("dead"):
                    self.dead_letters.remove(org, run["name"])
                deleted += 1
                if deleted >= most:
                    return deleted
            token = page.token
            if token is None:
                return deleted
        return deleted


def _created(run: E.Entity) -> float:
    return run.get("createdAt") or run.get("createdTime") or 0
