"""Runs: start one (API side), execute it (job side), wait for it to settle."""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from typing import Any

from .. import entities as E
from .. import logs, metrics
from ..store.cache import EntityCache
from ..drivers.base import Driver, Outcome
from ..errors import InvalidInput, NotFound, StaleRevision, TooLarge
from ..jobs import EXECUTE_RUN, Jobs
from ..limits import RUN_RECORD_MAX_BYTES
from ..names import validate_name, validate_names
from ..steps import Call, Step, run_pipeline
from ..store import Store
from ..store.codec import encode
from ..store.waiter import SettleWaiter
from .functions import FunctionService, serving_version, version_of

log = logging.getLogger("dispatch.runs")

DEFAULT_TIMEOUT_MS = 60_000


def system_error(message: str) -> dict[str, Any]:
    return {"type": "SystemError", "message": message, "stacktrace": []}


def function_error(message: str) -> dict[str, Any]:
    return {"type": "FunctionError", "message": message, "stacktrace": []}


def record_size(run: E.Entity) -> int:
    """The bytes ``run`` takes in the store."""
    return len(encode(run).encode())


class RunService:
    """Runs of functions. Each run is one store entity under ``/dispatch/run/<org>/<id>``."""

    def __init__(self, store: Store, jobs: Jobs, driver: Driver, functions: FunctionService,
                 attempts: int = 2, claim_grace_seconds: float = 30.0,
                 steps: list[Step] | None = None):
        self.store, self.jobs, self.driver, self.functions = store, jobs, driver, functions
        #: the pipeline around each call (Dispatch's Validator ∘ SecretInjector ∘ …)
        self.steps = list(steps or [])
        self.attempts = attempts
        #: extra time a worker's claim on a run lasts beyond the function's own timeout
        self.claim_grace_seconds = claim_grace_seconds
        self._waiter: SettleWaiter | None = None
        self._functions: EntityCache | None = None
        self._driver_name = getattr(driver, "name", None) or \
            type(driver).__name__.removesuffix("Driver").lower()
        #: the largest run record written (input, output, logs and error together)
        self.record_max_bytes = RUN_RECORD_MAX_BYTES

    # ---- API side -------------------------------------------------------------------

    def start(self, org: str, function_name: str | None, body: dict[str, Any],
              name: str | None = None) -> E.Entity:
        """Store a run ``INITIALIZED`` and queue it. 404 if no version of the function is
        READY (while an update builds, runs go to the version it replaces).

        :param name: the run's name (default: a random UUID). A caller that may start the
            same run twice (event delivery) passes a deterministic one: the second start
            then raises Conflict and queues nothing.
        """
        name = str(uuid.uuid4()) if name is None else validate_name(name)
        if not function_name:
            raise InvalidInput("functionName is required")
        fn = serving_version(self._function(org, function_name))
        if fn is None:
            raise NotFound(f"function {function_name} is not READY")
        run = E.new(
            E.RUN, org, name,
            functionName=function_name, functionId=fn["id"], faasId=fn["faasId"],
            blocking=bool(body.get("blocking")), input=body.get("input"), output=None,
            error=None, logs={"stdout": [], "stderr": []},
            # the function's secrets, then the run's own: later names win on a clash
            secrets=list(fn.get("secrets") or []) + validate_names(body.get("secrets"), "secrets"),
            services=validate_names(body.get("services"), "services"),
            tags=list(body.get("tags") or []), event=body.get("event"),
            httpContext=body.get("httpContext"), executedTime=None, finishedTime=None,
            attempts=0, waitSeconds=self.wait_seconds(fn.get("timeout") or 0),
            createdAt=time.time(),  # createdTime is whole seconds: this orders runs
        )
        size = record_size(run)
        if size > self.record_max_bytes:
            raise TooLarge(f"the run's input makes its record {size} bytes, over the limit "
                           f"of {self.record_max_bytes} bytes")
        run = self.store.add(run)
        self.jobs.submit(EXECUTE_RUN, E.key_of(run))
        return run

    def wait(self, run: E.Entity, timeout: float | None = None) -> E.Entity:
        """The run once it is READY or ERROR (or as it is after ``timeout`` seconds,
        by default the function's timeout plus the claim grace)."""
        timeout = run.get("waitSeconds", self.claim_grace_seconds) if timeout is None else timeout
        if self._waiter is None:
            self._waiter = SettleWaiter(self.store, E.prefix(E.RUN))
        org, name = run["organizationId"], run["name"]
        return self._waiter.wait(E.key_of(run), lambda: self.store.get(E.RUN, org, name), timeout)

    def _function(self, org: str, name: str) -> E.Entity:
        """The function, from the watched cache when it is READY there, else the store.

        A cached READY function is at most a watch delay old: a run may start on a
        version that is being replaced, as it would have a moment earlier.
        """
        if self._functions is None:
            self._functions = EntityCache(self.store, E.FUNCTION)
        fn = self._functions.get(org, name)
        if fn is not None and fn["status"] == E.READY:
            return fn
        return self.store.get(E.FUNCTION, org, name)

    def wait_seconds(self, fn_timeout_ms: int) -> float:
        return (fn_timeout_ms or DEFAULT_TIMEOUT_MS) / 1000 + self.claim_grace_seconds

    def get(self, org: str, name: str, function_name: str | None = None) -> E.Entity:
        run = self.store.get(E.RUN, org, name)
        if function_name and run.get("functionName") != function_name:
            raise NotFound(f"Run {name} not found")
        return run

    def list(self, org: str, function_name: str | None = None, since: int | None = None,
             tags: dict[str, str] | None = None, limit: int | None = None) -> list[E.Entity]:
        """Runs newest first, of one function if named, modified after ``since``, at most
        ``limit`` of them."""
        if limit is not None and limit < 1:
            raise InvalidInput("limit must be a positive number")
        fields = {"functionName": function_name} if function_name else None
        runs = self.store.list(E.RUN, org, tags=tags, fields=fields)
        if since is not None:
            runs = [r for r in runs if r["modifiedTime"] > since]
        runs.sort(key=lambda r: r.get("createdAt", r["createdTime"]), reverse=True)
        return runs[:limit] if limit else runs

    # ---- job side -------------------------------------------------------------------

    def execute(self, key: str) -> None:
        """The ``execute_run`` job: claim the run, call the function, record the outcome."""
        _, org, name = E.parse_key(key)
        with logs.bound(org=org, run=name):
            self._execute(key, org)

    def _execute(self, key: str, org: str) -> None:
        run = self.store.find(key)
        if run is None:
            return  # deleted meanwhile: nothing left to do
        if run["status"] != E.INITIALIZED:
            return  # claimed or finished already: at-least-once delivery made it a no-op
        try:
            fn = version_of(self._function(org, run["functionName"]), run["faasId"])
        except NotFound:
            fn = None
        if fn is None:
            self._finish(run, Outcome(error=system_error(
                f"function {run['functionName']} was deleted or replaced before the run "
                "started")))
            return
        now = time.time()
        run.update(status=E.CREATING, executedTime=int(now), executedAt=now,
                   attempts=run.get("attempts", 0) + 1,
                   claimExpires=now + self.wait_seconds(fn.get("timeout") or 0))
        try:
            run = self.store.update(run)
        except (StaleRevision, NotFound):
            return  # another worker won the claim
        if run.get("createdAt"):
            metrics.RUN_QUEUE_WAIT.labels(metrics.function_label(org, run["functionName"])) \
                .observe(max(0.0, now - run["createdAt"]))
        self._finish(run, self._invoke(run, fn))

    def _invoke(self, run: E.Entity, fn: E.Entity) -> Outcome:
        context = {"secrets": {}, "event": run.get("event"), "httpContext": run.get("httpContext")}
        trace = logs.traceparent()
        if trace:  # W3C trace context, for the function to pass on
            context["traceparent"] = trace
        if fn.get("timeout"):
            context["deadline"] = run["executedAt"] + fn["timeout"] / 1000
        call = Call(run=run, function=fn, context=context, payload=run.get("input"))
        try:
            return run_pipeline(self.steps, call, self._call_driver)
        except Exception as exc:
            log.exception("run.driver_failed key=%s", E.key_of(run))
            error = system_error(f"{type(exc).__name__}: {exc}")
            error["stacktrace"] = traceback.format_exc().splitlines()
            return Outcome(error=error)

    def _call_driver(self, call: Call) -> Outcome:
        deployment = self.functions.deployment(call.function)
        outcome = self.driver.run(deployment, call.context, call.payload)
        if outcome.cold_start_ms is not None:
            metrics.COLD_STARTS.labels(self._driver_name, deployment.language).observe(
                outcome.cold_start_ms / 1000)
        return outcome

    def _finish(self, run: E.Entity, outcome: Outcome) -> None:
        now = time.time()
        run.update(
            status=E.ERROR if outcome.error else E.READY, output=outcome.payload,
            error=outcome.error, logs=outcome.logs, finishedTime=int(now),
            reason=[outcome.error["message"]] if outcome.error else [],
        )
        if run.get("executedAt"):
            run["durationMs"] = round((now - run.pop("executedAt")) * 1000, 3)
        if outcome.cold_start_ms is not None:
            run["coldStartMs"] = round(outcome.cold_start_ms, 3)
        run.update(outcome.extra)  # the driver's own facts (e.g. OpenWhisk's activationId)
        run.pop("claimExpires", None)
        size = record_size(run)
        if size > self.record_max_bytes:  # refuse the output rather than lose the run
            self._refuse(run, function_error(
                f"the run's record would be {size} bytes with its output, over the limit of "
                f"{self.record_max_bytes} bytes: the output and logs are dropped (make the "
                "output or the input smaller)"))
        try:
            run = self.store.update(run)
        except (StaleRevision, NotFound):
            log.warning("run.result_dropped key=%s (the run changed meanwhile)", E.key_of(run))
            return
        except InvalidInput as exc:
            # the store refused the record (etcd's request limit): end the run at once
            # rather than leave it CREATING until its claim expires and it runs again
            log.warning("run.result_refused key=%s size=%d", E.key_of(run), record_size(run))
            self._refuse(run, system_error(f"the store refused the run's result: {exc.message}"))
            try:
                run = self.store.update(run)
            except (StaleRevision, NotFound):
                return
        if self._waiter is not None:
            self._waiter.settled(E.key_of(run), run)
        function = metrics.function_label(run["organizationId"], run["functionName"])
        metrics.count_run(function, run["status"], (run["error"] or {}).get("type", ""))
        if "durationMs" in run:
            metrics.RUN_DURATION.labels(function).observe(run["durationMs"] / 1000)
        log.info("run.%s key=%s", run["status"].lower(), E.key_of(run))

    @staticmethod
    def _refuse(run: E.Entity, error: dict[str, Any]) -> None:
        """Make ``run`` an ERROR without its output and logs (its input stays: it was
        stored when the run started)."""
        run.update(status=E.ERROR, output=None, error=error, reason=[error["message"]],
                   logs={"stdout": [], "stderr": []})

    def close(self) -> None:
        for follower in (self._waiter, self._functions):
            if follower is not None:
                follower.close()
