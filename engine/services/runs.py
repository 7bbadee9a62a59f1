"""Runs: start one (API side), execute it (job side), wait for it to settle."""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from typing import Any, Callable

from .. import entities as E
from ..observability import logs, metrics
from ..store.cache import EntityCache
from ..drivers.base import Driver, Outcome
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision, TooLarge, Unavailable
from ..jobs import EXECUTE_RUN, Jobs
from ..limits import RUN_RECORD_MAX_BYTES
from ..names import validate_name, validate_names
from ..steps import Call, Step, run_pipeline
from ..store import Page, Store, matches
from ..store.codec import encode_bytes
from ..store.waiter import SettleWaiter
from .functions import FunctionService, serving_version, version_of
from .retry_policy import RetryPolicy
from .dead_letters import DeadLetters
from .idempotency import IdempotencyKeys
from .late_claims import LateClaim, LateClaims

log = logging.getLogger("dispatch.runs")

DEFAULT_TIMEOUT_MS = 60_000
#: the most runs one list request answers (also its default: old clients send no limit)
MAX_LIST_LIMIT = 1000
#: how many runs one filtered list request may read, per run it may answer
SCAN_FACTOR = 10
#: a replayed key whose run is still absent after this long: the run was pruned
REPLAY_PRUNED_AFTER = 30.0
#: a delayed job may arrive this early (clocks of two hosts) and still start its retry
RETRY_EARLY_TOLERANCE = 0.2
#: what a run without a policy of its own is retried on (none: one attempt), so what
#: makes it dead
DEFAULT_POLICY = RetryPolicy()
#: redriven runs are named from the dead run's id, so a redrive sent twice starts one run
REDRIVE_NAMESPACE = uuid.UUID("6f1c2b1e-6a55-4f0e-9d7c-2f0c8a7d1e01")


def system_error(message: str) -> dict[str, Any]:
    return {"type": "SystemError", "message": message, "stacktrace": []}


def function_error(message: str) -> dict[str, Any]:
    return {"type": "FunctionError", "message": message, "stacktrace": []}


def record_size(run: E.Entity) -> int:
    """The bytes ``run`` takes in the store."""
    return len(encode_bytes(run))


class RunService:
    """Runs of functions. Each run is one store entity under ``/dispatch/run/<org>/<id>``."""

    def __init__(self, store: Store, jobs: Jobs, driver: Driver, functions: FunctionService,
                 attempts: int = 2, claim_grace_seconds: float = 30.0,
                 steps: list[Step] | None = None, idempotency_seconds: float = 86400.0,
                 run_here: bool = True, claim_after_seconds: float = 0.1):
        self.store, self.jobs, self.driver, self.functions = store, jobs, driver, functions
        #: the pipeline around each call (Dispatch's Validator ∘ SecretInjector ∘ …)
        self.steps = list(steps or [])
        self.attempts = attempts
        #: extra time a worker's claim on a run lasts beyond the function's own timeout
        self.claim_grace_seconds = claim_grace_seconds
        self._waiter: SettleWaiter | None = None
        self._functions: EntityCache | None = None
        #: execute a blocking run in the process that accepted it when the driver has
        #: warm instances of its version here (see :meth:`start`)
        self.run_here = run_here
        #: the claim of such a run is written only if its call lasts this long (0: before
        #: the call): :mod:`engine.services.late_claims`
        self._late_claims = (LateClaims(store.add, claim_after_seconds)
                             if claim_after_seconds > 0 else None)
        self._warming: set[str] = set()
        self._warming_lock = threading.Lock()
        self._driver_name = getattr(driver, "name", None) or \
            type(driver).__name__.removesuffix("Driver").lower()
        #: the largest run record written (input, output, logs and error together)
        self.record_max_bytes = RUN_RECORD_MAX_BYTES
        self.keys = IdempotencyKeys(store, idempotency_seconds)
        self.dead_letters = DeadLetters(store)

    # ---- API side -------------------------------------------------------------------

    def start(self, org: str, function_name: str | None, body: dict[str, Any],
              name: str | None = None, **extra: Any) -> E.Entity:
        """Store a run ``INITIALIZED`` and queue it. 404 if no version of the function is
        READY (while an update builds, runs go to the version it replaces).

        :param name: the run's name (default: a random UUID). A caller that may start the
            same run twice (event delivery) passes a deterministic one: the second start
            then raises Conflict and queues nothing.

        A blocking run whose version has warm instances in this process (the driver's
        :meth:`~engine.drivers.base.Driver.warm_here`) is executed here, now: it is
        claimed (``CREATING``, its claim expiring as a worker's would), called (waiting
        for a free instance if all are busy, as a worker's call would), and recorded;
        the run returned is then settled. The claim makes a lost process harmless as it
        does for a worker: the reconciler queues the run again once the claim expires.
        A run without a name of the caller's has its claim stored only if the call lasts
        (:mod:`engine.services.late_claims`): most are written once, with their result.
        A version with no instance here gets one prepared in the background, for the
        blocking runs after this one.
        """
        # a name of the caller's is how a second start finds the first: stored at once
        named = name is not None
        name = E.new_uuid() if name is None else validate_name(name)
        if not function_name:
            raise InvalidInput("functionName is required")
        fn = serving_version(self._function(org, function_name))
        if fn is None:
            raise NotFound(f"function {function_name} is not READY")
        metrics.expect_runs(metrics.function_label(org, function_name))
        run = E.new(
            E.RUN, org, name,
            functionName=function_name, functionId=fn["id"], faasId=fn["faasId"],
            blocking=bool(body.get("blocking")), input=body.get("input"), output=None,
            error=None, logs={"stdout": [], "stderr": []},
            # the function's secrets, then the run's own: later names win on a clash
            secrets=list(dict.fromkeys(list(fn.get("secrets") or [])
                                       + validate_names(body.get("secrets"), "secrets"))),
            services=validate_names(body.get("services"), "services"),
            tags=list(body.get("tags") or []), event=body.get("event"),
            httpContext=body.get("httpContext"), executedTime=None, finishedTime=None,
            attempts=0, waitSeconds=self.wait_seconds(fn.get("timeout") or 0),
            createdAt=time.time(),  # createdTime is whole seconds: this orders runs
            retry=fn.get("retry"),  # the policy as it was when the run started
            **extra,
        )
        size = record_size(run)
        if size > self.record_max_bytes:
            raise TooLarge(f"the run's input makes its record {size} bytes, over the limit "
                           f"of {self.record_max_bytes} bytes")
        if run["blocking"] and self.run_here:
            deployment = self.functions.deployment(fn)
            if self.driver.warm_here(deployment):
                now = time.time()
                run.update(status=E.CREATING, executedTime=int(now), executedAt=now, attempts=1,
                           claimExpires=now + self.wait_seconds(fn.get("timeout") or 0))
                claim = None
                if named or self._late_claims is None:
                    run = self.store.add(run)
                else:
                    claim = self._late_claims.defer(run)
                return self._finish(run, self._invoke(run, fn), claim=claim) or run
            self._warm(deployment)
        run = self.store.add(run)
        self.jobs.submit(EXECUTE_RUN, E.key_of(run))
        return run

    def _warm(self, deployment) -> None:
        """Prepare the version on this process's driver in the background, once."""
        with self._warming_lock:
            if deployment.id in self._warming:
                return
            self._warming.add(deployment.id)

        def prepare() -> None:
            try:
                self.driver.prepare(deployment)
            except Exception as exc:  # the worker's own run of it reports what is wrong
                log.info("run.warm_failed function=%s reason=%r", deployment.id, exc)

        threading.Thread(target=prepare, name="dispatch-warm", daemon=True).start()

    def invoke(self, org: str, function_name: str | None, body: dict[str, Any],
               idempotency_key: str | None = None) -> tuple[E.Entity, bool]:
        """Start a run at most once per idempotency key: ``(run, replayed)``.

        The key is ``idempotency_key`` (an ``Idempotency-Key`` header: remembered for
        the window, per organization and function) and/or the client-chosen run
        ``body["name"]`` (unique in the organization while the run is kept). A request
        repeating a key gets the run the first one started, ``replayed`` True, and
        nothing runs again; the same name for another function is a Conflict.
        """
        name = body.get("name")
        if name is not None:
            validate_name(name, "name")
        if not function_name:
            raise InvalidInput("functionName is required")
        if idempotency_key is None and name is None:
            return self.start(org, function_name, body), False
        claim = None
        if idempotency_key is not None:
            claim = self.keys.claim(org, function_name, idempotency_key,
                                    name or E.new_uuid())
            name = claim.run_name
            if claim.replay:
                try:
                    return self._same_function(self.store.get(E.RUN, org, name),
                                               function_name), True
                except NotFound:
                    if claim.age > REPLAY_PRUNED_AFTER:
                        raise Conflict(f"the run {name} this Idempotency-Key started is "
                                       "no longer kept") from None
                    # the first request is between its claim and its run: race it below
        try:
            return self.start(org, function_name, body, name=name), False
        except Conflict:
            return self._same_function(self.store.get(E.RUN, org, name), function_name), True
        except Exception:
            if claim is not None and not claim.replay:
                self.keys.release(org, function_name, idempotency_key, name)
            raise

    @staticmethod
    def _same_function(run: E.Entity, function_name: str) -> E.Entity:
        if run.get("functionName") != function_name:
            raise Conflict(f"Run {run['name']} already exists (a run of function "
                           f"{run.get('functionName')})")
        return run

    def wait(self, run: E.Entity, timeout: float | None = None) -> E.Entity:
        """The run once it is READY or ERROR (or as it is after ``timeout`` seconds,
        by default the function's timeout plus the claim grace)."""
        if run["status"] in (E.READY, E.ERROR):
            return run  # executed where it was started
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
        """Runs newest first (see :meth:`page`), the first page only."""
        return self.page(org, function_name, since, tags, limit).items

    def page(self, org: str, function_name: str | None = None, since: int | None = None,
             tags: dict[str, str] | None = None, limit: int | None = None,
             token: str | None = None) -> Page:
        """Runs newest first, of one function if named, modified after ``since``, with
        ``tags``: at most ``limit`` (default and most :data:`MAX_LIST_LIMIT`) from the
        store's creation index, and the token of the next page if there is one.

        ``since`` and ``tags`` filter the pages read: a page may then come back short,
        with a token (at most ``SCAN_FACTOR × limit`` runs are read per request).
        """
        if limit is not None and limit < 1:
            raise InvalidInput("limit must be a positive number")
        limit = min(limit or MAX_LIST_LIMIT, MAX_LIST_LIMIT)
        field = ("functionName", function_name) if function_name else None
        items: list[E.Entity] = []
        scanned = 0
        while True:
            page = self.store.page(E.RUN, org, limit=limit - len(items), token=token,
                                   field=field)
            scanned += len(page.items)
            items += [r for r in page.items
                      if (since is None or r["modifiedTime"] > since)
                      and matches(r, None, tags, None)]
            token = page.token
            if token is None or len(items) >= limit or scanned >= SCAN_FACTOR * limit:
                return Page(items, token)

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
        if (run.get("retryAt") or 0) > time.time() + RETRY_EARLY_TOLERANCE:
            return  # a retry not due yet: its delayed job (or the reconciler) starts it
        try:
            fn = version_of(self._function(org, run["functionName"]), run["faasId"])
        except NotFound:
            fn = None
        if fn is None:
            self._finish(run, Outcome(error=system_error(
                f"function {run['functionName']} was deleted or replaced before the run "
                "started")), retry=False)
            return
        now = time.time()
        run.pop("retryAt", None)
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

    def _finish(self, run: E.Entity, outcome: Outcome, retry: bool = True,
                claim: LateClaim | None = None) -> E.Entity | None:
        """Record the outcome of an attempt: the run settles, or (``retry`` and its policy
        allowing) goes back to wait for its next attempt. Returns the run as stored when
        it settled, None when it did not (a retry is due, or it changed meanwhile: its
        claim expired and the reconciler took it back). ``claim``: the run's late claim
        (:meth:`start`), which may not be written."""
        now = time.time()
        # a result the store cannot take now is tried again until the claim expires
        until = run.get("claimExpires") or now
        policy = RetryPolicy.of(run)
        error_type = (outcome.error or {}).get("type")
        if policy is not None:
            run["attemptHistory"] = list(run.get("attemptHistory") or []) + [{
                "attempt": run.get("attempts", 1), "executedTime": run.get("executedTime"),
                "finishedTime": int(now), "status": E.ERROR if outcome.error else E.READY,
                "error": _brief(outcome.error)}]
            if retry and outcome.error and policy.retries(error_type) \
                    and run.get("attempts", 1) < policy.attempts:
                self._retry_later(run, outcome, policy, now, until, claim)
                return None
        dead = bool(outcome.error) and (policy or DEFAULT_POLICY).retries(error_type)
        if dead:
            run["dead"] = True
            self._while_unavailable(lambda: self.dead_letters.add(dict(run, error=outcome.error)),
                                    until)
        run.update(
            status=E.ERROR if outcome.error else E.READY, output=outcome.payload,
            error=outcome.error, logs=outcome.logs, finishedTime=int(now),
            reason=[outcome.error["message"]] if outcome.error else [],
        )
        if run.get("executedAt"):
            executed = run.pop("executedAt")
            run["durationMs"] = round((now - executed) * 1000, 3)
            if run.get("createdAt"):  # from the API's write to a worker's claim
                run["queueWaitMs"] = round(max(0.0, executed - run["createdAt"]) * 1000, 3)
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
            run = self._record(run, until, claim)
        except (StaleRevision, NotFound):
            log.warning("run.result_dropped key=%s (the run changed meanwhile)", E.key_of(run))
            return None
        except InvalidInput as exc:
            # the store refused the record (etcd's request limit): end the run at once
            # rather than leave it CREATING until its claim expires and it runs again
            log.warning("run.result_refused key=%s size=%d", E.key_of(run), record_size(run))
            self._refuse(run, system_error(f"the store refused the run's result: {exc.message}"))
            try:
                run = self._record(run, until, claim)
            except (StaleRevision, NotFound):
                return None
        if self._waiter is not None:
            self._waiter.settled(E.key_of(run), run)
        notify_settled(self.jobs, run)
        function = metrics.function_label(run["organizationId"], run["functionName"])
        metrics.count_run(function, run["status"], (run["error"] or {}).get("type", ""))
        if "durationMs" in run:
            metrics.RUN_DURATION.labels(function).observe(run["durationMs"] / 1000)
        log.info("run.%s key=%s", run["status"].lower(), E.key_of(run))
        return run

    def _record(self, run: E.Entity, until: float, claim: LateClaim | None) -> E.Entity:
        """Write an attempt's outcome over its claim (tried again while the store is
        unavailable, see :meth:`_while_unavailable`); with a late claim not written, as
        the run's first record."""
        if claim is not None:
            revision = claim.settle()
            if revision is None:
                try:
                    return self._while_unavailable(lambda: self.store.add(run), until)
                except Conflict:  # the claim's write failed after it had applied
                    revision = self.store.get(E.RUN, run["organizationId"], run["name"])[
                        "revision"]
            run["revision"] = revision
        return self._while_unavailable(lambda: self.store.update(run), until)

    @staticmethod
    def _while_unavailable(write: Callable[[], Any], until: float) -> Any:
        """``write()``, tried again while the store is unavailable (etcd restarting, a
        leader election) until ``until``, the run's claim expiry: a function's result is
        kept rather than its run executed again. After the claim expires the reconciler
        may start the run again, and the write would lose its compare-and-swap anyway."""
        pause = 0.05
        while True:
            try:
                return write()
            except Unavailable:
                if time.time() + pause >= until:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _retry_later(self, run: E.Entity, outcome: Outcome, policy: RetryPolicy,
                     now: float, until: float, claim: LateClaim | None = None) -> None:
        """Put a failed attempt's run back to INITIALIZED with the time its next attempt
        is due; a delayed job starts it then (the reconciler, if the job is lost)."""
        delay = policy.delay(run.get("attempts", 1))
        message = (f"attempt {run.get('attempts', 1)} of {policy.attempts} failed "
                   f"({outcome.error['type']}: {outcome.error['message']}); "
                   f"retrying in {delay:.3g}s")
        run.update(status=E.INITIALIZED, retryAt=now + delay, error=outcome.error,
                   logs=outcome.logs, reason=[message])
        run.pop("claimExpires", None)
        run.pop("executedAt", None)
        try:
            run = self._record(run, until, claim)
        except (StaleRevision, NotFound):
            log.warning("run.retry_dropped key=%s (the run changed meanwhile)", E.key_of(run))
            return
        self.jobs.submit(EXECUTE_RUN, E.key_of(run), delay=delay)
        log.info("run.retry key=%s attempt=%s delay=%.3f", E.key_of(run),
                 run.get("attempts"), delay)

    def redrive(self, org: str, name: str) -> E.Entity:
        """Start a run in ERROR again as a new run (``redrivenFrom`` names the old one,
        whose ``redrivenTo`` names the new); it leaves the dead-letter list.

        Conflict if the run is not in ERROR or was redriven already; a redrive sent twice
        at once starts one run.
        """
        old = self.store.get(E.RUN, org, name)
        if old["status"] != E.ERROR:
            raise Conflict(f"Run {name} is {old['status']}: only a run in ERROR can be "
                           "redriven")
        if old.get("redrivenTo"):
            raise Conflict(f"Run {name} was redriven already, as {old['redrivenTo']}")
        new_name = str(uuid.uuid5(REDRIVE_NAMESPACE, old["id"]))
        body = {"input": old.get("input"), "secrets": old.get("secrets"),
                "event": old.get("event"), "httpContext": old.get("httpContext"),
                "tags": old.get("tags")}
        try:
            new = self.start(org, old["functionName"], body, name=new_name,
                             redrivenFrom=name)
        except Conflict:
            new = self.store.get(E.RUN, org, new_name)
        self.store.modify(E.RUN, org, name,
                          lambda run: None if run.get("redrivenTo")
                          else dict(run, redrivenTo=new_name))
        self.dead_letters.remove(org, name)
        log.info("run.redriven key=%s as=%s", E.key_of(old), new_name)
        return new

    def dead(self, org: str, function_name: str | None = None,
             limit: int | None = None) -> list[E.Entity]:
        """The dead-letter list: dead runs not redriven, most recently dead first."""
        return self.dead_letters.runs(org, function_name, limit)

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


def notify_settled(jobs: Jobs, run: E.Entity) -> None:
    """Submit the job a settled run was started to notify, if any."""
    if run.get("notify"):
        job, key = run["notify"]
        jobs.submit(job, key)


def _brief(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """An error without its stack trace, for the attempt history."""
    return None if error is None else {"type": error.get("type"), "message": error.get("message")}
