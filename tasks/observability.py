"""What a worker reports of each job: metrics, and the log context (trace, entity).

:class:`JobObservability` is a Dramatiq middleware, on every broker
(:func:`tasks.broker.make_broker`). Dramatiq's own ``dramatiq.middleware.Prometheus``
is not used: it overrides ``PROMETHEUS_MULTIPROC_DIR`` with a directory of its own
(``dramatiq_prom_db``, shared by every worker group of the host and never wiped), serves
it from a forked process on a port of its own (9191, all interfaces) that cannot answer
``/readyz``, and would switch the embedded server's in-process registry to files once
its ``process_boot`` hook ran. This one records into the metrics of
:mod:`engine.observability.metrics`, which the process's own ``/metrics`` serves with the rest.

The trace: :meth:`DramatiqJobs.submit <tasks.actors.DramatiqJobs.submit>` puts the
sender's W3C ``traceparent`` into the message's options; here it becomes the job's log
context (a new span of the same trace), so the run's log lines and the function's
``ctx["traceparent"]`` carry the trace of the request that caused them.
"""

from __future__ import annotations

import threading
import time

from dramatiq.middleware import Middleware

from engine import entities as E
from engine.observability import logs, metrics

#: the message option holding the sender's trace
TRACE_OPTION = "traceparent"
OUTCOMES = ("succeeded", "failed", "skipped")


class JobObservability(Middleware):
    """Per job: ``dispatch_jobs_total{actor,outcome}``, its duration, jobs in progress,
    dead-lettered jobs; the log context while it runs. Also notes the worker's boot, for
    readiness."""

    def __init__(self) -> None:
        self._local = threading.local()
        #: per actor: (in progress, duration, succeeded, failed, skipped), made once
        self._children: dict[str, tuple] = {}
        #: the Dramatiq worker of this process once it booted (None before, and in
        #: processes that only send)
        self.worker = None

    def after_worker_boot(self, broker, worker) -> None:
        self.worker = worker

    def after_worker_shutdown(self, broker, worker) -> None:
        self.worker = None
        metrics.mark_dead()  # this process's live gauges leave with it

    def before_process_message(self, broker, message) -> None:
        key = message.args[0] if message.args else None
        org = entity = run = None
        if isinstance(key, str) and key.count("/") >= 4:
            try:
                kind, org, name = E.parse_key(key)
                entity = key
                run = name if kind == E.RUN else None
            except ValueError:
                pass
        fields = logs.trace_fields(message.options.get(TRACE_OPTION))
        self._local.tokens = logs.bind(job=message.actor_name, org=org, entity=entity,
                                       run=run, **fields)
        self._local.started = time.perf_counter()
        self._of(message.actor_name)[0].inc()

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self._done(message, "succeeded" if exception is None else "failed")

    def after_skip_message(self, broker, message) -> None:
        self._done(message, "skipped")

    def after_nack(self, broker, message) -> None:
        metrics.JOBS_DEAD.labels(message.actor_name).inc()

    def _of(self, actor: str) -> tuple:
        children = self._children.get(actor)
        if children is None:
            children = self._children[actor] = (
                metrics.JOBS_IN_PROGRESS.labels(actor), metrics.JOB_DURATION.labels(actor),
                *(metrics.JOBS.labels(actor, outcome) for outcome in OUTCOMES))
        return children

    def _done(self, message, outcome: str) -> None:
        in_progress, duration, *counts = self._of(message.actor_name)
        counter = counts[OUTCOMES.index(outcome)]
        started = getattr(self._local, "started", None)
        if started is None:  # skipped before it started (an age limit)
            counter.inc()
            return
        self._local.started = None
        duration.observe(time.perf_counter() - started)
        in_progress.dec()
        counter.inc()
        logs.unbind(getattr(self._local, "tokens", []))
        self._local.tokens = []
