"""Activities: the work of a workflow execution that has side effects or waits, performed
by the ``run_activity`` job and recorded once on the activity's record.

An activity record (``/dispatch/activity/<org>/<execution>/<hash of id>``) is written
``started`` by the advance that asked for it, then once with its result (``completed`` or
``failed``, with a Problem Details error) by a compare-and-swap; recording a result
queues ``advance_execution``. ``run_activity`` is idempotent:

==========  ===========================================================================
kind        what the job does
==========  ===========================================================================
function    starts a real run of the Dispatch function, named from (execution, activity)
            so a redelivered job starts nothing twice; the run's end queues this job
            again, which records the run's output or its error as Problem Details
http        the HTTP request (at-least-once: a worker killed mid-call calls again)
timer       records the timer fired once its due time has passed, else queues itself
            again for then (the reconciler fires overdue ones: no sleeping thread)
emit        emits the CloudEvent into Dispatch's event pipeline (its id derived from the
            activity unless given, so a second emit is a duplicate and delivered once)
listen      registers a listener (:mod:`engine.services.listeners`); event delivery
            records the result when matching events arrive
workflow    starts the child execution, named from (execution, activity); its end queues
            this job again, which records the child's output or error
script      runs the code as a sandboxed function (:mod:`engine.services.scripts`)
==========  ===========================================================================
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any, Callable

import requests

from .. import entities as E
from ..errors import (Conflict, DispatchError, InvalidInput, NotFound, StaleRevision,
                      TooLarge)
from ..cloudevents import normalize
from ..jobs import ADVANCE_EXECUTION, RUN_ACTIVITY, Jobs
from ..store import Store
from ..workflows.problems import ERRORS
from .executions import (FAILED, FINISHED, STARTED, SUCCEEDED, ExecutionService,
                         derived_name, iso)
from .runs import RunService

log = logging.getLogger("dispatch.activities")

#: how long one HTTP call may take before it counts as a communication error
HTTP_TIMEOUT_SECONDS = 60.0
#: extra time an activity's worker may stay silent before the reconciler runs it again
CLAIM_GRACE_SECONDS = 30.0


def problem(kind: str, status: int, title: str, detail: str | None = None,
            instance: str | None = None, **extra: Any) -> dict[str, Any]:
    """An RFC 7807 Problem Details object with a Serverless Workflow error type."""
    error = {"type": ERRORS + kind, "status": status, "title": title}
    if detail is not None:
        error["detail"] = detail
    if instance is not None:
        error["instance"] = instance
    error.update(extra)
    return error


#: a run's error type → (Serverless Workflow error kind, status)
RUN_ERRORS = {"InputError": ("validation", 400), "FunctionError": ("runtime", 500),
              "SystemError": ("communication", 503)}


def run_problem(run: E.Entity, reference: str) -> dict[str, Any]:
    """The Problem Details of a run in ERROR."""
    error = run.get("error") or {}
    kind, status = RUN_ERRORS.get(error.get("type"), ("runtime", 500))
    return problem(kind, status, f"{error.get('type') or 'Error'} in function "
                   f"{run.get('functionName')}", error.get("message"), reference,
                   run=run["name"])


class ActivityService:
    """Performs the activities of executions (the ``run_activity`` job)."""

    def __init__(self, store: Store, jobs: Jobs, runs: RunService,
                 executions: ExecutionService, emit: Callable[[str, dict], Any],
                 scripts: Any = None):
        self.store, self.jobs, self.runs = store, jobs, runs
        self.executions, self.emit, self.scripts = executions, emit, scripts
        self.kinds: dict[str, Callable[[E.Entity, E.Entity], None]] = {
            "function": self._function, "http": self._http, "timer": self._timer,
            "emit": self._emit, "listen": self._listen, "workflow": self._workflow,
            "script": self._script,
        }

    def run(self, key: str) -> None:
        """The ``run_activity`` job for the activity record at ``key``."""
        _, org, name = E.parse_key(key)
        try:
            record = self.store.get(E.ACTIVITY, org, name)
        except NotFound:
            return
        execution_key = E.key(E.EXECUTION, org, record["execution"])
        if record["status"] != STARTED:
            # recorded already: make sure the execution heard of it (a lost advance)
            self.jobs.submit(ADVANCE_EXECUTION, execution_key)
            return
        try:
            execution = self.store.get(E.EXECUTION, org, record["execution"])
        except NotFound:
            return
        if execution["status"] in FINISHED:
            return
        perform = self.kinds.get(record["activityKind"])
        if perform is None:
            self.finish(record, error=problem(
                "runtime", 501, "Unsupported activity",
                f"activity kind {record['activityKind']!r} is not supported",
                record["reference"]))
            return
        try:
            perform(record, execution)
        except (StaleRevision, NotFound):
            return  # the record moved on meanwhile: whoever moved it goes on

    # ---- recording ------------------------------------------------------------------

    def finish(self, record: E.Entity, value: Any = None, error: dict | None = None) -> bool:
        """Record the activity's result once (CAS) and queue the execution's advance.
        False if it was recorded already."""
        now = time.time()
        record = dict(record, status=FAILED if error else SUCCEEDED,
                      **self.executions.sealed_result(record, value, error),
                      finished=iso(now), finishedAt=now)
        record.pop("claimExpires", None)
        try:
            self.store.update(record)
        except StaleRevision:
            current = self.store.get(E.ACTIVITY, record["organizationId"], record["name"])
            if current["status"] != STARTED:
                return False
            record["revision"] = current["revision"]
            return self.finish(dict(current), value, error)
        except NotFound:
            return False
        self.jobs.submit(ADVANCE_EXECUTION, E.key(E.EXECUTION, record["organizationId"],
                                                  record["execution"]))
        return True

    def _claim(self, record: E.Entity, seconds: float) -> E.Entity:
        """Mark the record as being worked on until ``seconds`` (plus grace) from now, so
        that the reconciler leaves it alone meanwhile."""
        now = time.time()
        record = dict(record, claimExpires=now + seconds + CLAIM_GRACE_SECONDS,
                      attempts=record.get("attempts", 0) + 1)
        return self.store.update(record)

    # ---- the kinds ------------------------------------------------------------------

    def _function(self, record: E.Entity, execution: E.Entity) -> None:
        org, spec = record["organizationId"], self.executions.spec_of(record)
        function = spec.get("function")
        run_name = derived_name(E.key_of(execution), record["activityId"])
        try:
            run = self.runs.get(org, run_name)
        except NotFound:
            run = None
        if run is None:
            body = {"input": spec.get("input"),
                    "tags": [{"key": "workflow", "value": execution["workflowName"]},
                             {"key": "execution", "value": execution["name"]},
                             {"key": "task", "value": record["reference"][:200]}]
                    + [{"key": str(k), "value": str(v)}
                       for k, v in (spec.get("tags") or {}).items()]}
            try:
                self.runs.start(org, function, body, name=run_name,
                                notify=[RUN_ACTIVITY, E.key_of(record)])
            except Conflict:
                return  # started meanwhile by another delivery of this job
            except NotFound as exc:
                self.finish(record, error=problem(
                    "runtime", 404, "Function not found",
                    f"function {function} not found or not READY in organization {org}: "
                    f"{exc.message}", record["reference"]))
            except (InvalidInput, TooLarge) as exc:
                status = 413 if isinstance(exc, TooLarge) else 400
                self.finish(record, error=problem("validation", status, "Invalid call",
                                                  exc.message, record["reference"]))
            return  # the run's end queues this job again
        if run["status"] == E.READY:
            self.finish(record, value=run.get("output"))
        elif run["status"] == E.ERROR:
            self.finish(record, error=run_problem(run, record["reference"]))

    def _http(self, record: E.Entity, execution: E.Entity) -> None:
        spec = self.executions.spec_of(record)
        if record.get("claimExpires", 0) > time.time():
            return  # another worker is calling right now
        record = self._claim(record, HTTP_TIMEOUT_SECONDS)
        body = spec.get("body")
        try:
            response = requests.request(
                (spec.get("method") or "get").upper(), spec["endpoint"],
                headers={str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
                params=spec.get("query") or None,
                json=body if body is not None and not isinstance(body, (str, bytes)) else None,
                data=body if isinstance(body, (str, bytes)) else None,
                timeout=HTTP_TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            self.finish(record, error=problem("communication", 503, "HTTP call failed",
                                              f"{type(exc).__name__}: {exc}",
                                              record["reference"]))
            return
        content = _content(response)
        if not 200 <= response.status_code < 300:
            self.finish(record, error=problem(
                "communication", response.status_code,
                f"HTTP {response.status_code} {response.reason or ''}".strip(),
                f"{(spec.get('method') or 'get').upper()} {spec['endpoint']} answered "
                f"{response.status_code}", record["reference"],
                response={"statusCode": response.status_code,
                          "headers": dict(response.headers), "content": content}))
            return
        mode = spec.get("output") or "content"
        if mode == "raw":
            value: Any = base64.b64encode(response.content).decode("ascii")
        elif mode == "response":
            value = {"request": {"method": (spec.get("method") or "get").upper(),
                                 "uri": spec["endpoint"],
                                 "headers": dict(response.request.headers)},
                     "statusCode": response.status_code, "headers": dict(response.headers),
                     "content": content}
        else:
            value = content
        self.finish(record, value=value)

    def _timer(self, record: E.Entity, execution: E.Entity) -> None:
        remaining = record.get("due", 0) - time.time()
        if remaining > 0:
            self.jobs.submit(RUN_ACTIVITY, E.key_of(record), delay=remaining)
            return
        self.finish(record, value=None)

    def _emit(self, record: E.Entity, execution: E.Entity) -> None:
        org = record["organizationId"]
        event = dict(self.executions.spec_of(record).get("event") or {})
        event.setdefault("specversion", "1.0")
        event.setdefault("id", derived_name(E.key_of(execution), record["activityId"]))
        event.setdefault("source", f"/dispatch/workflow/{org}/{execution['workflowName']}")
        event.setdefault("time", iso(time.time()))
        if "data" in event:
            event.setdefault("datacontenttype", "application/json")
        try:
            normalized = normalize(event)
        except InvalidInput as exc:
            self.finish(record, error=problem("validation", 400, "Invalid event",
                                              exc.message, record["reference"]))
            return
        self.emit(org, normalized)
        self.finish(record, value=normalized)

    def _listen(self, record: E.Entity, execution: E.Entity) -> None:
        from .listeners import register
        register(self.store, record, self.executions.spec_of(record))

    def _workflow(self, record: E.Entity, execution: E.Entity) -> None:
        org, spec = record["organizationId"], self.executions.spec_of(record)
        child_name = derived_name(E.key_of(execution), record["activityId"])
        try:
            child = self.store.get(E.EXECUTION, org, child_name)
        except NotFound:
            try:
                self.executions.start(
                    org, spec.get("name"), {"input": spec.get("input")}, name=child_name,
                    parent=E.key_of(record),
                    trigger={"kind": "workflow", "execution": execution["name"],
                             "task": record["reference"]})
            except NotFound as exc:
                self.finish(record, error=problem("runtime", 404, "Workflow not found",
                                                  exc.message, record["reference"]))
            except (InvalidInput, Conflict) as exc:
                status = 409 if isinstance(exc, Conflict) else 400
                self.finish(record, error=problem("validation", status,
                                                  "Invalid sub-workflow input",
                                                  exc.message, record["reference"]))
            return  # the child's end queues this job again
        if child["status"] == "completed":
            self.finish(record, value=child.get("output"))
        elif child["status"] == "faulted":
            self.finish(record, error=dict(child.get("error") or problem(
                "runtime", 500, "Sub-workflow faulted"), instance=record["reference"]))
        elif child["status"] == "cancelled":
            self.finish(record, error=problem("runtime", 500, "Sub-workflow cancelled",
                                              f"execution {child_name} was cancelled",
                                              record["reference"]))

    def _script(self, record: E.Entity, execution: E.Entity) -> None:
        if self.scripts is None:
            self.finish(record, error=problem("runtime", 501, "Scripts are not supported",
                                              "run: script is not available on this "
                                              "installation", record["reference"]))
            return
        if record.get("claimExpires", 0) > time.time():
            return
        record = self._claim(record, self.scripts.timeout_seconds)
        try:
            value = self.scripts.run(self.executions.spec_of(record))
        except DispatchError as exc:
            self.finish(record, error=problem("runtime", 500, "Script failed",
                                              exc.message, record["reference"]))
            return
        self.finish(record, value=value)


def _content(response: requests.Response) -> Any:
    """A response's body: parsed JSON when it is JSON, else text."""
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type:
        try:
            return response.json()
        except ValueError:
            pass
    return response.text

