"""The job queue port. ``tasks/`` implements it with Dramatiq actors.

Every job names one entity by its store key and is idempotent: the entity's status
and revision say what still has to happen, so a job delivered twice does its work once.

How a job starts, and what it does when it loses a race — the same for every job:

* It reads its entity with :meth:`engine.store.Store.find`; gone means nothing is left
  to do, and it returns.
* It moves the entity on only by compare-and-swap on the revision it read. If another
  writer came first (:class:`~engine.errors.StaleRevision`), the job **ends quietly**: the
  winner's write moved the entity on, and whatever is still due was submitted by that
  writer or is re-driven by the reconciler from the status. A lost race is never retried
  by the queue (``tasks/`` ends such a job as done), so it cannot run a second time
  against a state it did not read.
"""

from __future__ import annotations

import abc

CREATE_FUNCTION = "create_function"
DELETE_FUNCTION = "delete_function"
EXECUTE_RUN = "execute_run"
CHECK_BASE_IMAGE = "check_base_image"
DELETE_BASE_IMAGE = "delete_base_image"
BUILD_IMAGE = "build_image"
DELETE_IMAGE = "delete_image"
#: start one run per matching subscription of a received event
DELIVER_EVENT = "deliver_event"
#: move a subscription on from CREATING / UPDATING / DELETING
SYNC_SUBSCRIPTION = "sync_subscription"
#: move an event driver on from CREATING / UPDATING / DELETING (custom drivers: the
#: scheduler's supervisor starts and stops their processes)
SYNC_EVENT_DRIVER = "sync_event_driver"
#: move a gateway API on from CREATING / UPDATING / DELETING
SYNC_API = "sync_api"
#: replay a workflow execution over its recorded activities, write its new state and
#: start the activities it now waits on
ADVANCE_EXECUTION = "advance_execution"
#: perform one activity of an execution (a function run, an HTTP call, a timer, …) and
#: record its result
RUN_ACTIVITY = "run_activity"


class Jobs(abc.ABC):
    """Submits jobs for workers."""

    @abc.abstractmethod
    def submit(self, job: str, key: str, delay: float = 0.0) -> None:
        """Queue ``job`` for the entity at ``key``, to be delivered after ``delay``
        seconds; returns once the queue has it.

        A delayed job is only a timely wake-up: the entity records when it is due, so
        that the reconciler fires it if the queue loses it.
        """

    def check(self) -> str:
        """Say where jobs go if the queue answers now; raise Unavailable if it does not
        (readiness)."""
        return "in-process"


class RecordingJobs(Jobs):
    """Keeps submitted jobs in a list; for unit tests of services."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []
        #: the delay of each delayed submission, in the order made
        self.delayed: list[tuple[str, str, float]] = []

    def submit(self, job: str, key: str, delay: float = 0.0) -> None:
        self.submitted.append((job, key))
        if delay:
            self.delayed.append((job, key, delay))
