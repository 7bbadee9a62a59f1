"""The actors: one per engine job, each a call into the engine by entity key."""

from __future__ import annotations

import logging
from typing import Callable

import dramatiq

from engine.observability import logs
from engine.errors import StaleRevision
from engine.jobs import (ADVANCE_EXECUTION, BUILD_IMAGE, CHECK_BASE_IMAGE, CREATE_FUNCTION,
                         DELETE_BASE_IMAGE, DELETE_FUNCTION, DELETE_IMAGE, DELIVER_EVENT,
                         EXECUTE_RUN, RUN_ACTIVITY, SYNC_API, SYNC_EVENT_DRIVER,
                         SYNC_SUBSCRIPTION, Jobs)
from engine.system import Dispatch

from .broker import check_broker
from .observability import TRACE_OPTION

log = logging.getLogger("dispatch.jobs")

#: builds run on their own queues so that a slow build never delays a run, and a slow
#: image build (pip, npm, docker) never delays a function build
QUEUES = {CREATE_FUNCTION: "functions", DELETE_FUNCTION: "functions", EXECUTE_RUN: "runs",
          CHECK_BASE_IMAGE: "images", DELETE_BASE_IMAGE: "images", BUILD_IMAGE: "images",
          DELETE_IMAGE: "images", DELIVER_EVENT: "events", SYNC_SUBSCRIPTION: "events",
          SYNC_EVENT_DRIVER: "events", SYNC_API: "events",
          # workflow steps: never queued behind builds; their function calls are runs
          ADVANCE_EXECUTION: "workflows", RUN_ACTIVITY: "workflows"}

# Jobs are idempotent and the reconciler re-drives anything left behind, so a few
# quick retries cover passing failures (the store briefly unreachable) and no more.
OPTIONS = {"max_retries": 3, "min_backoff": 200, "max_backoff": 5000,
           # functions enforce their own timeouts; this only bounds a wedged job
           "time_limit": 3_600_000}


class DramatiqJobs(Jobs):
    """:class:`engine.jobs.Jobs` on Dramatiq actors declared on ``broker``.

    The actors call into ``self.system``, set once the engine is assembled (the engine
    needs the jobs, and the actors need the engine); they are declared only then
    (:meth:`declare`), so that a worker whose engine could not be assembled consumes
    nothing it could not serve.
    """

    def __init__(self, broker: dramatiq.Broker):
        self.broker = broker
        self.system: Dispatch | None = None
        self.actors: dict[str, dramatiq.Actor] = {}

    def declare(self) -> None:
        """Declare the actors on the broker (a worker starts consuming their queues)."""
        self.actors = {
            CREATE_FUNCTION: self._declare(CREATE_FUNCTION, lambda s, key: s.functions.build(key)),
            DELETE_FUNCTION: self._declare(DELETE_FUNCTION, lambda s, key: s.functions.remove(key)),
            EXECUTE_RUN: self._declare(EXECUTE_RUN, lambda s, key: s.runs.execute(key)),
            CHECK_BASE_IMAGE: self._declare(CHECK_BASE_IMAGE,
                                            lambda s, key: s.base_images.check(key)),
            DELETE_BASE_IMAGE: self._declare(DELETE_BASE_IMAGE,
                                             lambda s, key: s.base_images.remove(key)),
            BUILD_IMAGE: self._declare(BUILD_IMAGE, lambda s, key: s.images.build(key)),
            DELETE_IMAGE: self._declare(DELETE_IMAGE, lambda s, key: s.images.remove(key)),
            DELIVER_EVENT: self._declare(DELIVER_EVENT, lambda s, key: s.events.deliver(key)),
            SYNC_SUBSCRIPTION: self._declare(SYNC_SUBSCRIPTION,
                                             lambda s, key: s.subscriptions.sync(key)),
            SYNC_EVENT_DRIVER: self._declare(SYNC_EVENT_DRIVER,
                                             lambda s, key: s.event_drivers.sync(key)),
            SYNC_API: self._declare(SYNC_API, lambda s, key: s.apis.sync(key)),
            ADVANCE_EXECUTION: self._declare(ADVANCE_EXECUTION,
                                             lambda s, key: s.executions.advance(key)),
            RUN_ACTIVITY: self._declare(RUN_ACTIVITY, lambda s, key: s.activities.run(key)),
        }

    def _declare(self, job: str, call: Callable[[Dispatch, str], None]) -> dramatiq.Actor:
        def body(key: str) -> None:
            try:
                call(self.system, key)
            except StaleRevision:  # the rule of engine/jobs.py: a lost race ends the job
                log.info("job.lost_race job=%s key=%s", job, key)

        body.__name__ = job
        return dramatiq.Actor(body, broker=self.broker, actor_name=job, queue_name=QUEUES[job],
                              priority=0, options=dict(OPTIONS))

    def submit(self, job: str, key: str, delay: float = 0.0) -> None:
        options = {}
        trace = logs.traceparent()
        if trace is not None:  # the sender's trace goes with the job (tasks.observability)
            options[TRACE_OPTION] = trace
        if delay > 0:
            # the broker's delay queue; the store's due time backs it up (reconciler)
            options["delay"] = int(delay * 1000)
        if options:
            self.actors[job].send_with_options(args=(key,), **options)
        else:
            self.actors[job].send(key)

    def check(self) -> str:
        return check_broker(self.broker, self.system.settings.broker_url
                            if self.system else "")


def assemble(settings, broker: dramatiq.Broker, **parts) -> Dispatch:
    """The engine wired to Dramatiq jobs on ``broker``; the actors are declared once the
    engine is whole."""
    jobs = DramatiqJobs(broker)
    jobs.system = Dispatch(settings, jobs, **parts)
    jobs.declare()
    return jobs.system
