"""The reconciler: re-drives what a lost message or a dead worker left behind.

The queue only delivers; the store decides what still has to happen. Each pass looks
at entities in a transitional status and applies one row of :data:`Reconciler.TABLE`:

==========  ============  ================================================================
kind        status        when stuck (older than ``stuck_seconds`` / claim expired)
==========  ============  ================================================================
function    INITIALIZED   submit ``create_function`` again
function    UPDATING      submit ``create_function`` again
function    CREATING      claim expired (worker died): back to INITIALIZED, submit again
function    DELETING      submit ``delete_function`` again
run         INITIALIZED   submit ``execute_run`` again (at most once per ``stuck_seconds``)
run         CREATING      claim expired: back to INITIALIZED and submit, while attempts
                          remain; else ERROR with a SystemError saying the worker was lost
baseimage   INITIALIZED   submit ``check_base_image`` again
baseimage   UPDATING      submit ``check_base_image`` again
baseimage   MISSING       submit ``check_base_image`` again: it is READY once back
baseimage   READY         every ``base_check_seconds``: submit ``check_base_image``, which
                          marks it MISSING if the builder no longer has it
baseimage   DELETING      submit ``delete_base_image`` again
image       INITIALIZED   submit ``build_image`` again (it may be waiting for its base)
image       UPDATING      submit ``build_image`` again
image       CREATING      claim expired (builder died): back to INITIALIZED, submit again
image       DELETING      submit ``delete_image`` again (it may be waiting for functions)
event       INITIALIZED   submit ``deliver_event`` again
event       READY         older than ``event_retention_seconds``: delete it
idem. key   READY         past its ``expiresAt``: delete it (the key may start a run again)
subscr.     CREATING      submit ``sync_subscription`` again
subscr.     UPDATING      submit ``sync_subscription`` again
subscr.     DELETING      submit ``sync_subscription`` again
subscr.     ERROR         every ``stuck_seconds``: submit ``sync_subscription``, which
                          makes it READY once its function exists
api         CREATING      submit ``sync_api`` again
api         UPDATING      submit ``sync_api`` again
api         DELETING      submit ``sync_api`` again
driver      CREATING      submit ``sync_event_driver`` again
driver      UPDATING      submit ``sync_event_driver`` again
driver      DELETING      submit ``sync_event_driver`` again
execution   pending,      every ``stuck_seconds`` without a change: submit
            running,      ``advance_execution`` (a lost advance, or an activity result
            waiting       recorded by a job that died before queueing it)
execution   completed,    older than ``execution_retention_seconds``: delete it with its
            faulted,      activity records
            cancelled
activity    started       a timer past its due time: submit ``run_activity`` (fires it);
                          another kind whose claim expired and unchanged for
                          ``stuck_seconds``: submit ``run_activity`` again (a worker died
                          mid-call: the call is made again, at-least-once); function,
                          workflow and listen activities, which their run, child or
                          event completes, only every 2 × ``stuck_seconds``
==========  ============  ================================================================

Every ``retention_check_seconds``, settled runs past their function's retention (a count
and an age, :mod:`engine.services.run_retention`) are pruned, oldest first
(:mod:`engine.scheduler.run_pruning`).

Image rows submit at most once per ``stuck_seconds`` per entity (a waiting image or a
missing base does not change, and a check may pull an image): the reconciler remembers
when it last submitted each.

Run rows are throttled twice over, so that an outage (etcd or Redis away, every worker
dead) does not turn into a storm of re-sends once it ends: each run is re-sent with a
backoff of its own (``stuck_seconds``, then twice that, … up to
``max_resend_backoff``), and one pass re-sends at most ``max_resends_per_pass`` runs,
oldest first; the rest wait for the next pass.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from .. import entities as E
from ..observability import metrics
from ..store.cache import EntityCache
from ..errors import NotFound, StaleRevision
from ..jobs import (ADVANCE_EXECUTION, BUILD_IMAGE, CHECK_BASE_IMAGE, CREATE_FUNCTION,
                    DELETE_BASE_IMAGE, DELETE_FUNCTION, DELETE_IMAGE, DELIVER_EVENT,
                    EXECUTE_RUN, RUN_ACTIVITY, SYNC_API, SYNC_EVENT_DRIVER,
                    SYNC_SUBSCRIPTION, Jobs)
from ..store import Store, codec
from ..services.retry_policy import RetryPolicy
from ..services.run_retention import RunRetention
from .run_pruning import RunPruner
from ..services.dead_letters import DeadLetters
from ..services.runs import notify_settled, system_error

log = logging.getLogger("dispatch.reconciler")


class Reconciler:
    """Finds stuck entities and moves them on; safe to run in several processes at once
    (every move is a compare-and-swap), though one leader at a time is cheaper."""

    KINDS = (E.FUNCTION, E.RUN, E.BASE_IMAGE, E.IMAGE, E.EVENT, E.SUBSCRIPTION, E.API,
             E.DRIVER, E.IDEMPOTENCY, E.EXECUTION, E.ACTIVITY)

    def __init__(self, store: Store, jobs: Jobs, stuck_seconds: float = 30.0,
                 run_attempts: int = 2, base_check_seconds: float = 60.0,
                 event_retention_seconds: float = 86400.0,
                 max_resends_per_pass: int = 100, max_resend_backoff: float = 300.0,
                 run_retention: RunRetention | None = None,
                 retention_check_seconds: float = 60.0, executions=None):
        self.store, self.jobs = store, jobs
        #: prunes settled runs past their function's retention (None: keeps every run)
        self.pruner = (RunPruner(store, run_retention, every=retention_check_seconds)
                       if run_retention is not None else None)
        self.max_resends_per_pass = max_resends_per_pass
        self.max_resend_backoff = max_resend_backoff
        #: per run key: (re-sends so far, not before this time)
        self._resends: dict[str, tuple[int, float]] = {}
        self._resends_this_pass = 0
        self.dead_letters = DeadLetters(store)
        self.stuck_seconds, self.run_attempts = stuck_seconds, run_attempts
        self.base_check_seconds = base_check_seconds
        self.event_retention_seconds = event_retention_seconds
        #: the execution service (prunes finished executions); None: no workflow rows
        self.executions = executions
        self._pending: dict[str, EntityCache] | None = None
        #: when a throttled row last submitted a job for a key
        self._submitted: dict[str, float] = {}
        self.TABLE: dict[tuple[str, str], Callable[[E.Entity, float], str | None]] = {
            (E.FUNCTION, E.INITIALIZED): self._resubmit(CREATE_FUNCTION),
            (E.FUNCTION, E.UPDATING): self._resubmit(CREATE_FUNCTION),
            (E.FUNCTION, E.CREATING): self._reclaim_function,
            (E.FUNCTION, E.DELETING): self._resubmit(DELETE_FUNCTION),
            (E.RUN, E.INITIALIZED): self._resend_run,
            (E.RUN, E.CREATING): self._reclaim_run,
            (E.BASE_IMAGE, E.INITIALIZED): self._throttled(CHECK_BASE_IMAGE, stuck_seconds),
            (E.BASE_IMAGE, E.UPDATING): self._throttled(CHECK_BASE_IMAGE, stuck_seconds),
            (E.BASE_IMAGE, E.MISSING): self._throttled(CHECK_BASE_IMAGE, stuck_seconds),
            (E.BASE_IMAGE, E.READY): self._throttled(CHECK_BASE_IMAGE, base_check_seconds,
                                                     action="checked_base_image"),
            (E.BASE_IMAGE, E.DELETING): self._throttled(DELETE_BASE_IMAGE, stuck_seconds),
            (E.IMAGE, E.INITIALIZED): self._throttled(BUILD_IMAGE, stuck_seconds),
            (E.IMAGE, E.UPDATING): self._throttled(BUILD_IMAGE, stuck_seconds),
            (E.IMAGE, E.CREATING): self._reclaim_image,
            (E.IMAGE, E.DELETING): self._throttled(DELETE_IMAGE, stuck_seconds),
            (E.EVENT, E.INITIALIZED): self._resubmit(DELIVER_EVENT),
            (E.EVENT, E.READY): self._prune_event,
            (E.IDEMPOTENCY, E.READY): self._prune_idempotency_key,
            (E.SUBSCRIPTION, E.CREATING): self._resubmit(SYNC_SUBSCRIPTION),
            (E.SUBSCRIPTION, E.UPDATING): self._resubmit(SYNC_SUBSCRIPTION),
            (E.SUBSCRIPTION, E.DELETING): self._resubmit(SYNC_SUBSCRIPTION),
            (E.SUBSCRIPTION, E.ERROR): self._throttled(SYNC_SUBSCRIPTION, stuck_seconds),
            (E.API, E.CREATING): self._resubmit(SYNC_API),
            (E.API, E.UPDATING): self._resubmit(SYNC_API),
            (E.API, E.DELETING): self._resubmit(SYNC_API),
            (E.DRIVER, E.CREATING): self._resubmit(SYNC_EVENT_DRIVER),
            (E.DRIVER, E.UPDATING): self._resubmit(SYNC_EVENT_DRIVER),
            (E.DRIVER, E.DELETING): self._resubmit(SYNC_EVENT_DRIVER),
        }
        if executions is not None:
            advance = self._throttled(ADVANCE_EXECUTION, stuck_seconds)
            for status in ("pending", "running", "waiting"):
                self.TABLE[(E.EXECUTION, status)] = advance
            for status in ("completed", "faulted", "cancelled"):
                self.TABLE[(E.EXECUTION, status)] = self._prune_execution
            self.TABLE[(E.ACTIVITY, "started")] = self._redrive_activity

    def follow(self) -> None:
        """Keep the entities in transitional statuses in memory, fed by store watches, so
        that a pass never lists every entity of a kind (a long-lived leader calls this).

        Runs are not followed: the store lists the runs in transit from an index of their
        own (:data:`codec.STATUS_INDEXED`), and a watch of runs would bring this process
        every write of every run — most of the scheduler's work under load."""
        self._pending = {
            kind: EntityCache(self.store, kind,
                              keep=lambda e, kind=kind: (kind, e.get("status")) in self.TABLE)
            for kind in self.KINDS if kind not in codec.STATUS_INDEXED
        }

    def _in_transition(self, kind: str) -> list[E.Entity]:
        cache = (self._pending or {}).get(kind)
        cached = cache.values() if cache is not None else None
        if cached is not None:
            return cached
        statuses = [s for (k, s) in self.TABLE if k == kind]
        return self.store.list(kind, None, status=statuses)

    def reconcile_once(self, now: float | None = None) -> dict[str, int]:
        """One pass over every organization; returns how many entities each action moved."""
        now = time.time() if now is None else now
        moved: dict[str, int] = {}
        seen: set[str] = set()
        self._resends_this_pass = 0
        for kind in self.KINDS:
            pending = self._in_transition(kind)
            if kind == E.RUN:  # the oldest first, when the per-pass cap leaves some over
                pending = sorted(pending, key=lambda r: r.get("createdAt", r["createdTime"]))
            for entity in pending:
                seen.add(E.key_of(entity))
                try:
                    action = self.TABLE[(kind, entity["status"])](entity, now)
                except (StaleRevision, NotFound):
                    continue  # it moved on by itself meanwhile
                if action:
                    moved[action] = moved.get(action, 0) + 1
                    metrics.RECONCILER_REDRIVES.labels(kind, action).inc()
                    log.info("reconciler.%s key=%s", action, E.key_of(entity))
        # forget entities that settled or went away
        self._submitted = {k: t for k, t in self._submitted.items() if k in seen}
        self._resends = {k: v for k, v in self._resends.items() if k in seen}
        if self.pruner is not None:
            pruned = self.pruner.maybe_prune(now)
            if pruned:
                moved["pruned_run"] = pruned
        return moved

    def _stuck(self, entity: E.Entity, now: float) -> bool:
        return entity["modifiedTime"] + self.stuck_seconds <= now

    def _resubmit(self, job: str) -> Callable[[E.Entity, float], str | None]:
        def resubmit(entity: E.Entity, now: float) -> str | None:
            if not self._stuck(entity, now):
                return None
            self.jobs.submit(job, E.key_of(entity))
            return f"resubmitted_{job}"

        return resubmit

    def _resend_run(self, run: E.Entity, now: float) -> str | None:
        """A run still INITIALIZED past ``stuck_seconds`` (or past its retry's due time):
        its ``execute_run`` was lost; send it again, with a backoff per run and a cap per
        pass."""
        due = max(run["modifiedTime"], run.get("retryAt") or 0)
        if due + self.stuck_seconds > now:
            return None
        key = E.key_of(run)
        count, not_before = self._resends.get(key, (0, 0.0))
        if not_before > now or self._resends_this_pass >= self.max_resends_per_pass:
            return None
        self._resends_this_pass += 1
        backoff = min(self.stuck_seconds * 2 ** count, self.max_resend_backoff)
        self._resends[key] = (count + 1, now + backoff)
        self.jobs.submit(EXECUTE_RUN, key)
        return "resubmitted_execute_run"

    def _throttled(self, job: str, seconds: float,
                   action: str | None = None) -> Callable[[E.Entity, float], str | None]:
        def submit(entity: E.Entity, now: float) -> str | None:
            key = E.key_of(entity)
            last = max(entity["modifiedTime"], self._submitted.get(key, 0.0))
            if last + seconds > now:
                return None
            self._submitted[key] = now
            self.jobs.submit(job, key)
            return action or f"resubmitted_{job}"

        return submit

    def _prune_event(self, event: E.Entity, now: float) -> str | None:
        # emittedAt: createdTime is whole seconds
        if event.get("emittedAt", event["createdTime"]) + self.event_retention_seconds > now:
            return None
        self.store.delete(E.EVENT, event["organizationId"], event["name"],
                          revision=event["revision"])
        return "pruned_event"

    def _prune_execution(self, execution: E.Entity, now: float) -> str | None:
        finished = execution.get("finishedAt") or execution["modifiedTime"]
        if not execution.get("followedUp") and finished + self.stuck_seconds <= now:
            # its worker died between the final write and what that sets off
            self.executions.follow_up(execution)
            return "followed_up_execution"
        if finished + self.executions.retention_seconds > now:
            return None
        self.executions.prune(execution)
        return "pruned_execution"

    def _redrive_activity(self, record: E.Entity, now: float) -> str | None:
        key = E.key_of(record)
        if record.get("activityKind") == "timer":
            if record.get("due", 0) > now or self._submitted.get(key, 0) + 1 > now:
                return None
            self._submitted[key] = now
            self.jobs.submit(RUN_ACTIVITY, key)
            return "fired_timer"
        if record.get("claimExpires", 0) > now:
            return None
        if record.get("activityKind") in ("listen", "function", "workflow"):
            # these wait on something that says when it is done (an event, a run, a child
            # execution, each re-driven on its own): only a job lost before it started
            # that is left to find
            seconds = self.stuck_seconds * 2
        else:
            seconds = self.stuck_seconds
        last = max(record["modifiedTime"], self._submitted.get(key, 0.0))
        if last + seconds > now:
            return None
        self._submitted[key] = now
        self.jobs.submit(RUN_ACTIVITY, key)
        return "redrove_activity"

    def _prune_idempotency_key(self, record: E.Entity, now: float) -> str | None:
        if record["expiresAt"] > now:
            return None
        self.store.delete(E.IDEMPOTENCY, record["organizationId"], record["name"],
                          revision=record["revision"])
        return "pruned_idempotency_key"

    def _reclaim_image(self, image: E.Entity, now: float) -> str | None:
        if image.get("claimExpires", 0) > now:
            return None
        image.pop("claimExpires", None)
        image = self.store.update(dict(image, status=E.INITIALIZED))
        self.jobs.submit(BUILD_IMAGE, E.key_of(image))
        return "rebuilt_image"

    def _reclaim_function(self, fn: E.Entity, now: float) -> str | None:
        if fn.get("claimExpires", 0) > now:
            return None
        fn.pop("claimExpires", None)
        fn = self.store.update(dict(fn, status=E.INITIALIZED))
        self.jobs.submit(CREATE_FUNCTION, E.key_of(fn))
        return "rebuilt_function"

    def _reclaim_run(self, run: E.Entity, now: float) -> str | None:
        """A run whose worker was lost (a SystemError): started again within its retry
        policy (after the policy's delay) or, without one, ``run_attempts``; else it ends
        ERROR, dead."""
        if run.get("claimExpires", 0) > now:
            return None
        if self._resends_this_pass >= self.max_resends_per_pass:
            return None  # the next pass takes it
        self._resends_this_pass += 1
        run.pop("claimExpires", None)
        run.pop("executedAt", None)
        attempts = run.get("attempts", 1)
        policy = RetryPolicy.of(run)
        retried = policy is not None and policy.retries("SystemError")
        limit = policy.attempts if retried else self.run_attempts
        message = (f"the worker running this run was lost (no result after {attempts} "
                   f"attempt{'s' if attempts != 1 else ''})")
        if policy is not None:
            run["attemptHistory"] = list(run.get("attemptHistory") or []) + [{
                "attempt": attempts, "executedTime": run.get("executedTime"),
                "finishedTime": int(now), "status": E.ERROR,
                "error": {"type": "SystemError", "message": "the worker was lost"}}]
        if attempts < limit:
            delay = policy.delay(attempts) if retried else 0.0
            run = self.store.update(dict(run, status=E.INITIALIZED,
                                         retryAt=now + delay if delay else None))
            self.jobs.submit(EXECUTE_RUN, E.key_of(run), delay=delay)
            return "retried_run"
        run.update(status=E.ERROR, error=system_error(message), reason=[message],
                   finishedTime=int(now), dead=True)
        self.dead_letters.add(run)
        run = self.store.update(run)
        notify_settled(self.jobs, run)
        metrics.count_run(metrics.function_label(run["organizationId"], run["functionName"]),
                          E.ERROR, "SystemError")
        return "failed_run"

    def close(self) -> None:
        for cache in (self._pending or {}).values():
            cache.close()
