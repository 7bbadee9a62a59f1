"""Every Prometheus metric Dispatch exports, defined once, and their exposition.

Metric objects live at module level (prometheus-client's registry is per process), so
recording one is a label lookup and an add: no per-call objects beyond
prometheus-client's own. Label values are bounded: routes are URL rule templates, never
raw paths; functions are ``<org>/<name>``; statuses, outcomes and actions come from
fixed sets.

**Several processes** (gunicorn's workers, Dramatiq's worker processes): set
``PROMETHEUS_MULTIPROC_DIR`` to a directory of its own for each process group (a pod's
``emptyDir``; the Procfile gives api, gateway, worker and scheduler one each). Every
process then writes its samples there and :func:`exposition` sums them, so any process
answers ``/metrics`` for all. The gauges of a process that died (live-sum gauges: jobs
in progress, warm instances) are dropped at the next scrape; its counters and histograms
stay, so totals never go backwards (prometheus-client's ``mark_process_dead``).
Without the variable, each process exports its own samples.
"""

from __future__ import annotations

import glob
import os
import re

# the directory must exist before a sample is created in it (at import, for metrics
# without labels): made here, before prometheus_client is used
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_dir = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
if _dir:
    os.makedirs(_dir, exist_ok=True)

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
    generate_latest,
)

#: seconds: from a sub-millisecond store read to a function's ten-minute run
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)
#: seconds: a store operation is a fraction of a millisecond to a few seconds
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0, 5.0)

# ---- HTTP (api and gateway processes) ---------------------------------------------------

HTTP_REQUESTS = Counter(
    "dispatch_http_requests_total", "HTTP requests answered, by server, route template, "
    "method and status code.", ["server", "route", "method", "code"])
HTTP_LATENCY = Histogram(
    "dispatch_http_request_duration_seconds", "Time to answer an HTTP request, by server, "
    "route template and method.", ["server", "route", "method"], buckets=LATENCY_BUCKETS)

# ---- jobs (worker processes) ------------------------------------------------------------

JOBS = Counter(
    "dispatch_jobs_total", "Jobs a worker processed, by actor and outcome (succeeded, "
    "failed: raised and left to Dramatiq's retries, skipped).", ["actor", "outcome"])
JOBS_DEAD = Counter(
    "dispatch_jobs_dead_lettered_total", "Jobs Dramatiq gave up on (out of retries), by "
    "actor; the reconciler re-drives their entities.", ["actor"])
JOB_DURATION = Histogram(
    "dispatch_job_duration_seconds", "Time a worker spent on one job, by actor.",
    ["actor"], buckets=LATENCY_BUCKETS)
JOBS_IN_PROGRESS = Gauge(
    "dispatch_jobs_in_progress", "Jobs being processed now, by actor.", ["actor"],
    multiprocess_mode="livesum")

# ---- runs (worker processes) ------------------------------------------------------------

RUNS = Counter(
    "dispatch_runs_total", "Runs finished, by function (org/name) and status (READY, "
    "ERROR) and error type (InputError, FunctionError, SystemError; empty when READY).",
    ["function", "status", "error_type"])
RUN_DURATION = Histogram(
    "dispatch_run_duration_seconds", "Time from a run's claim by a worker to its result, "
    "by function.", ["function"], buckets=LATENCY_BUCKETS)
RUN_QUEUE_WAIT = Histogram(
    "dispatch_run_queue_wait_seconds", "Time from a run's creation to its claim by a "
    "worker (the queue's backlog as a run sees it), by function.", ["function"],
    buckets=LATENCY_BUCKETS)
COLD_STARTS = Histogram(
    "dispatch_cold_start_seconds", "Time to start a function instance that a run had to "
    "wait for, by driver and language.", ["driver", "language"], buckets=LATENCY_BUCKETS)
WARM_INSTANCES = Gauge(
    "dispatch_warm_instances", "Function instances kept by a driver's warm pools, by "
    "driver, function (org/name) and state (idle, busy).",
    ["driver", "function", "state"], multiprocess_mode="livesum")

# ---- the store (every process) ----------------------------------------------------------

STORE_LATENCY = Histogram(
    "dispatch_store_operation_seconds", "Time of one store operation, by backend and "
    "operation; failures included.", ["backend", "operation"], buckets=STORE_BUCKETS)
STORE_ERRORS = Counter(
    "dispatch_store_operation_errors_total", "Store operations that raised, by backend, "
    "operation and error (Conflict, StaleRevision and NotFound are answers, not "
    "failures: Unavailable is the one to watch).", ["backend", "operation", "error"])

# ---- the scheduler ----------------------------------------------------------------------

RECONCILER_REDRIVES = Counter(
    "dispatch_reconciler_redrives_total", "Entities the reconciler moved on, by kind and "
    "action (resubmitted_<job>, retried_run, failed_run, rebuilt_function, …).",
    ["kind", "action"])
CRON_TICKS = Counter(
    "dispatch_cron_ticks_total", "Cron ticks, by outcome: fired (an event emitted), "
    "missed (later than the grace: reported on the driver, fired only with catchup).",
    ["outcome"])

for _outcome in ("fired", "missed"):  # present from the start: rate() needs a zero
    CRON_TICKS.labels(_outcome)

# ---- the process ------------------------------------------------------------------------

READY = Gauge(
    "dispatch_ready", "1 when this process is ready (store, broker and, on workers, actors "
    "all fine), else 0, by role.", ["role"], multiprocess_mode="livemin")


def function_label(org: str, name: str) -> str:
    return f"{org}/{name}"


#: a run's (status, error type) pairs; each function's are made at its first run
RUN_OUTCOMES = (("READY", ""), ("ERROR", "InputError"), ("ERROR", "FunctionError"),
                ("ERROR", "SystemError"))
_counted: set[str] = set()


def expect_runs(function: str) -> None:
    """Make ``function``'s run series in this process, at zero, so that ``rate()`` sees
    its first error too (a series born at 1 shows no increase). Called when a run is
    accepted as well as when one finishes: the process that accepts a blocking run may
    execute it itself, and its series must exist a scrape before that run ends."""
    if function not in _counted:
        _counted.add(function)
        for outcome in RUN_OUTCOMES:
            RUNS.labels(function, *outcome)


def count_run(function: str, status: str, error_type: str) -> None:
    """One finished run (see :func:`expect_runs`)."""
    expect_runs(function)
    RUNS.labels(function, status, error_type).inc()


# ---- exposition -------------------------------------------------------------------------

_PID = re.compile(r"_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def reap_dead_processes(path: str) -> list[int]:
    """Drop the live gauges of processes of ``path`` that are gone (a worker killed with
    SIGKILL never says so itself); returns their pids."""
    from prometheus_client import multiprocess

    dead = set()
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _PID.search(file)
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)
    return sorted(dead)


def mark_dead(pid: int | None = None) -> None:
    """This process (or ``pid``) is stopping: drop its live gauges from the directory."""
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid(), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exposition() -> tuple[bytes, str]:
    """``(body, content type)`` of ``/metrics``: every process of the group in
    multiprocess mode, else this process."""
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        reap_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
