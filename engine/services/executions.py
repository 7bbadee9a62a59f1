"""Workflow executions: start one (API side), advance it (job side), wait for it, cancel,
suspend and resume it.

An execution's durable state is its definition snapshot, its input and the records of
its *activities* (``/dispatch/activity/<org>/<execution>/<hash of id>``, see
:mod:`engine.services.activities`). ``advance_execution`` replays the definition over
the recorded results (:func:`engine.workflows.interpreter.interpret`), writes the new
state with one compare-and-swap and then starts the activities the replay waits on that
have no record yet. What is guaranteed:

* Every transition of an execution is one CAS write computed from the recorded results:
  two advances of the same results write the same state, and a task's transition is
  never applied twice (the history is recomputed, never appended to).
* An activity starts once per attempt: its record is written add-only *after* the state
  that asked for it won its CAS; only the writer that created the record submits the
  ``run_activity`` job. Its side effect is at-least-once: a worker killed mid-call leaves
  the record ``started``, and the reconciler runs it again.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import logging
import threading
import time
import uuid
from typing import Any, Callable

import jsonschema
from cryptography.fernet import MultiFernet

from .. import __version__
from .. import entities as E
from ..crypto import Unsealable, seal, unseal
from ..errors import Conflict, InvalidInput, NotFound, StaleRevision, Unavailable
from ..jobs import ADVANCE_EXECUTION, RUN_ACTIVITY, Jobs
from ..names import validate_name
from ..store import Store
from ..store.waiter import SettleWaiter
from ..workflows.definition import Workflow, load
from ..workflows.interpreter import ActivityResult, Limits, interpret
from ..workflows.problems import ERRORS
from .listeners import remove_of_execution

log = logging.getLogger("dispatch.executions")

# the Serverless Workflow spec's phases
PENDING, RUNNING, WAITING, SUSPENDED = "pending", "running", "waiting", "suspended"
CANCELLED, FAULTED, COMPLETED = "cancelled", "faulted", "completed"
FINISHED = (CANCELLED, FAULTED, COMPLETED)
ACTIVE = (PENDING, RUNNING, WAITING)
STATUSES = (PENDING, RUNNING, WAITING, SUSPENDED, CANCELLED, FAULTED, COMPLETED)

#: activity record statuses
STARTED, SUCCEEDED, FAILED = "started", "completed", "failed"

#: how long a blocking start waits at most by default (the execution goes on after)
DEFAULT_WAIT_SECONDS = 300.0
#: how often an advance that lost its compare-and-swap starts again from a fresh read
ADVANCE_ATTEMPTS = 50

NAMESPACE = uuid.UUID("0b3c1c5e-8f0e-4d7a-9a52-6f1d2b7e4c90")


def activity_name(execution: str, activity_id: str) -> str:
    """The store name of an activity record: ``<execution>/<hash of its id>``."""
    return f"{execution}/{hashlib.sha256(activity_id.encode()).hexdigest()[:32]}"


def derived_name(*parts: str) -> str:
    """A name derived from ``parts``: equal every time (a redelivered job's run or child
    execution, a schedule tick's execution)."""
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).isoformat(timespec="milliseconds")


def activity_records(store: Store, org: str, execution: str) -> list[E.Entity]:
    """The activity records of one execution."""
    return store.list(E.ACTIVITY, f"{org}/{execution}")


class ExecutionService:
    """Executions of workflows, ``/dispatch/execution/<org>/<name>``.

    :param resolve_secrets: ``(org, [names]) -> {key: value}`` (the secret service's)
    :param limits: bounds on one execution (history, state size, branches), enforced by
        the interpreter
    """

    def __init__(self, store: Store, jobs: Jobs, resolve_secrets: Callable[..., dict],
                 cipher: MultiFernet, limits: Limits = Limits(),
                 retention_seconds: float = 7 * 86400.0):
        self.store, self.jobs = store, jobs
        self.resolve_secrets, self.cipher = resolve_secrets, cipher
        self.limits = limits
        self.retention_seconds = retention_seconds
        self._waiter: SettleWaiter | None = None
        self._definitions = _Definitions()
        #: executions being advanced in this process → whether to go round again
        self._advancing: dict[str, bool] = {}
        self._advancing_lock = threading.Lock()
        #: called with an execution that just finished (listeners cleanup, parents)
        self.on_finished: list[Callable[[E.Entity], None]] = []

    # ---- API side -------------------------------------------------------------------

    def start(self, org: str, workflow_name: str | None, body: dict[str, Any],
              name: str | None = None, parent: str | None = None,
              trigger: dict[str, Any] | None = None,
              not_before: float | None = None) -> E.Entity:
        """Store an execution ``pending`` and queue its first advance.

        Starting again with the ``name`` of an existing execution of the same workflow
        returns that execution (``existing: true``) and starts nothing.

        :param parent: the activity key of the ``run: workflow`` task that started it
        :param trigger: what started it (shown on the execution)
        :param not_before: epoch seconds before which it does not begin
        :raises NotFound: no such workflow; InvalidInput: a bad name, or input failing
            the workflow's ``input.schema``
        """
        workflow_entity = require(self.store, org, workflow_name)
        name = name or E.new_uuid()
        validate_name(name)
        existing = self._existing(org, name, workflow_name)
        if existing is not None:
            return existing
        workflow = load(workflow_entity["definition"])
        value = body.get("input")
        check_input(workflow, value)
        now = time.time()
        execution = E.new(
            E.EXECUTION, org, name, status=PENDING, workflowName=workflow_name,
            workflowId=workflow_entity["id"],
            definitionRevision=workflow_entity.get("definitionRevision", 1),
            definition=workflow.document, input=value, output=None, error=None, tasks=[],
            blocking=bool(body.get("blocking")), createdAt=now, startedTime=None,
            finishedTime=None, durationMs=None, cancelRequested=False, parent=parent,
            trigger=trigger or {"kind": "api"}, notBefore=not_before,
            tags=list(body.get("tags") or []) + [{"key": "workflow", "value": workflow_name}])
        try:
            execution = self.store.add(execution)
        except Conflict:
            existing = self._existing(org, name, workflow_name)
            if existing is None:
                raise
            return existing
        delay = 0.0 if not_before is None else max(0.0, not_before - now)
        self.jobs.submit(ADVANCE_EXECUTION, E.key_of(execution), delay=delay)
        log.info("execution.started key=%s workflow=%s", E.key_of(execution), workflow_name)
        return execution

    def _existing(self, org: str, name: str, workflow_name: str) -> E.Entity | None:
        try:
            found = self.store.get(E.EXECUTION, org, name)
        except NotFound:
            return None
        if found.get("workflowName") != workflow_name:
            raise Conflict(f"execution {name} already exists, of workflow "
                           f"{found.get('workflowName')}")
        return dict(found, existing=True)

    def wait(self, execution: E.Entity, timeout: float | None = None) -> E.Entity:
        """The execution once finished, or as it stands after ``timeout`` seconds."""
        if self._waiter is None:
            self._waiter = SettleWaiter(self.store, E.prefix(E.EXECUTION), settled=FINISHED)
        org, name = execution["organizationId"], execution["name"]
        return self._waiter.wait(E.key_of(execution),
                                 lambda: self.store.get(E.EXECUTION, org, name),
                                 DEFAULT_WAIT_SECONDS if timeout is None else timeout)

    def get(self, org: str, name: str, workflow_name: str | None = None) -> E.Entity:
        try:
            execution = self.store.get(E.EXECUTION, org, name)
        except NotFound:
            raise NotFound(f"execution {name} not found") from None
        if workflow_name and execution.get("workflowName") != workflow_name:
            raise NotFound(f"execution {name} not found")
        return execution

    def list(self, org: str, workflow_name: str | None = None, status: str | None = None,
             limit: int | None = None) -> list[E.Entity]:
        """Executions newest first, of one workflow and in one status if named."""
        if limit is not None and limit < 1:
            raise InvalidInput("limit must be a positive number")
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status {status!r} is not one of {', '.join(STATUSES)}")
        fields = {"workflowName": workflow_name} if workflow_name else None
        found = self.store.list(E.EXECUTION, org, status=status, fields=fields)
        found.sort(key=lambda e: e.get("createdAt", e["createdTime"]), reverse=True)
        return found[:limit] if limit else found

    def cancel(self, org: str, name: str, reason: str | None = None) -> E.Entity:
        """Ask the execution to stop: it starts no further task, and ends ``cancelled``.
        409 if it has finished already."""
        def change(execution: E.Entity) -> E.Entity | None:
            _refuse_finished(execution, "cancel")
            if execution.get("cancelRequested"):
                return None
            execution["cancelRequested"] = True
            _note(execution, "cancel", reason)
            return execution

        execution = self._modify(org, name, change)
        self.jobs.submit(ADVANCE_EXECUTION, E.key_of(execution))
        log.info("execution.cancel_requested key=%s", E.key_of(execution))
        return execution

    def suspend(self, org: str, name: str, reason: str | None = None) -> E.Entity:
        """Pause the execution: results of activities in flight are still recorded, but
        nothing new starts until :meth:`resume`. 409 if finished."""
        def change(execution: E.Entity) -> E.Entity | None:
            _refuse_finished(execution, "suspend")
            if execution["status"] == SUSPENDED:
                return None
            execution.update(status=SUSPENDED, suspendedFrom=execution["status"])
            _note(execution, "suspend", reason)
            return execution

        return self._modify(org, name, change)

    def resume(self, org: str, name: str, reason: str | None = None) -> E.Entity:
        """Go on with a suspended execution (409 if it is not suspended)."""
        def change(execution: E.Entity) -> E.Entity:
            if execution["status"] != SUSPENDED:
                raise Conflict(f"execution {name} is {execution['status']}, not suspended")
            execution["status"] = execution.pop("suspendedFrom", None) or RUNNING
            _note(execution, "resume", reason)
            return execution

        execution = self._modify(org, name, change)
        self.jobs.submit(ADVANCE_EXECUTION, E.key_of(execution))
        return execution

    def _modify(self, org: str, name: str, change) -> E.Entity:
        try:
            return self.store.modify(E.EXECUTION, org, name, change)
        except NotFound:
            raise NotFound(f"execution {name} not found") from None

    # ---- job side -------------------------------------------------------------------

    def advance(self, key: str) -> None:
        """The ``advance_execution`` job: replay, write the new state (CAS), then start
        the activities the execution now waits on. A lost CAS starts again from a fresh
        read; an advance that finds nothing new writes nothing.

        Advances of one execution in one process coalesce: while one replays, the others
        only ask it to go round once more (its next replay takes in every result recorded
        meanwhile), so a fork whose branches finish together costs a few replays, not
        one per branch. Across processes, the compare-and-swap decides.
        """
        with self._advancing_lock:
            if key in self._advancing:
                self._advancing[key] = True
                return
            self._advancing[key] = False
        try:
            while True:
                self._advance_once(key)
                with self._advancing_lock:
                    if not self._advancing[key]:
                        del self._advancing[key]
                        return
                    self._advancing[key] = False
        except BaseException:
            with self._advancing_lock:
                self._advancing.pop(key, None)
            raise

    def _advance_once(self, key: str) -> None:
        _, org, name = E.parse_key(key)
        for _ in range(ADVANCE_ATTEMPTS):
            try:
                execution = self.store.get(E.EXECUTION, org, name)
            except NotFound:
                return
            if execution["status"] in FINISHED:
                return
            if execution["status"] == SUSPENDED and not execution.get("cancelRequested"):
                return
            wait = (execution.get("notBefore") or 0) - time.time()
            if wait > 0 and not execution.get("cancelRequested"):
                self.jobs.submit(ADVANCE_EXECUTION, key, delay=wait)
                return
            records = activity_records(self.store, org, name)
            started = {r["activityId"] for r in records}
            finished = sum(1 for r in records if r["status"] in (SUCCEEDED, FAILED))
            if (execution["status"] != PENDING and not execution.get("cancelRequested")
                    and execution.get("resultsApplied") == finished
                    and started.issuperset(execution.get("pendingActivities") or ())):
                return  # the state already reflects every result: nothing to replay
            outcome = self._replay(execution, records)
            changed = self._apply(execution, outcome, finished)
            if changed is not None:
                try:
                    execution = self.store.update(changed)
                except StaleRevision:
                    continue  # another advance or an API edit came first: read again
                except NotFound:
                    return
                except InvalidInput as exc:  # the store refused the record (its size)
                    log.warning("execution.record_refused key=%s why=%s", key, exc.message)
                    outcome.pending = []
                    changed = dict(execution, status=FAULTED, output=None,
                                   finishedTime=int(time.time()), finishedAt=time.time(),
                                   error={"type": ERRORS + "runtime", "status": 500,
                                          "title": "Runtime error", "instance": "/",
                                          "detail": "the execution's record is too large "
                                                    f"for the store: {exc.message}"})
                    try:
                        execution = self.store.update(changed)
                    except (StaleRevision, NotFound):
                        continue
            break
        else:
            log.warning("execution.advance_gave_up key=%s", key)
            return
        if execution["status"] in FINISHED:
            self._finished(execution)
            return
        for activity in outcome.pending:
            if activity.id not in started:
                self._start_activity(execution, activity)

    def _replay(self, execution: E.Entity, records: list[E.Entity]):
        workflow = self._definitions.get(execution)
        results = {r["activityId"]: ActivityResult(
                       id=r["activityId"], ok=r["status"] == SUCCEEDED,
                       **self.result_of(r), started=r.get("started"),
                       finished=r.get("finished"))
                   for r in records if r["status"] in (SUCCEEDED, FAILED)}
        runtime = {"name": "dispatch", "version": __version__,
                   "metadata": {"organization": execution["organizationId"],
                                "execution": execution["name"],
                                "workflow": execution["workflowName"]},
                   "execution": {"id": execution["id"], "name": execution["name"],
                                 "startedAt": iso(execution.get("createdAt",
                                                                execution["createdTime"]))}}
        return interpret(workflow, execution.get("input"), results,
                         previous_history=execution.get("tasks") or (),
                         now=dt.datetime.now(dt.timezone.utc), runtime=runtime,
                         secrets=self._secrets(execution, workflow),
                         cancelled=bool(execution.get("cancelRequested")), limits=self.limits)

    @staticmethod
    def _secret_names(workflow: Workflow) -> list[str]:
        return list((workflow.document.get("use") or {}).get("secrets") or [])

    def _secrets(self, execution: E.Entity, workflow: Workflow) -> dict[str, Any]:
        """The values of the secrets the workflow names under ``use.secrets``; one that
        does not exist is left out (an expression reading it faults the execution)."""
        values = {}
        for name in self._secret_names(workflow):
            try:
                values[name] = self.resolve_secrets(execution["organizationId"], [name])
            except InvalidInput:  # MissingSecret: no such secret in the organization
                continue
        return values

    def _apply(self, execution: E.Entity, outcome, finished: int) -> E.Entity | None:
        """The execution with the outcome applied, or None if nothing changed.

        :param finished: how many recorded results the outcome reflects
        """
        status = outcome.status
        if execution["status"] == SUSPENDED and status not in FINISHED:
            status = SUSPENDED
        new = {"status": status, "tasks": outcome.history, "output": outcome.output,
               "error": outcome.error, "resultsApplied": finished,
               "pendingActivities": [a.id for a in outcome.pending]}
        if all(execution.get(k) == v for k, v in new.items()):
            return None
        now = time.time()
        changed = dict(execution, **new)
        changed.setdefault("startedTime", None)
        if changed["startedTime"] is None:
            changed["startedTime"] = int(now)
        if status in FINISHED:
            changed.update(finishedTime=int(now), finishedAt=now,
                           durationMs=round((now - execution.get("createdAt", now)) * 1000, 3))
            changed["reason"] = [_describe(outcome.error)] if outcome.error else []
        return changed

    def _start_activity(self, execution: E.Entity, activity) -> None:
        """Write the activity's record (add-only: once per attempt) and queue its job."""
        org, name = execution["organizationId"], execution["name"]
        now = time.time()
        record_name = activity_name(name, activity.id)
        # what the activity is given may hold secret values ($secret in a header, say):
        # stored sealed, like secrets, and opened only by the job that performs it
        record = E.new(E.ACTIVITY, org, record_name, status=STARTED,
                       activityId=activity.id, activityKind=activity.kind,
                       reference=activity.reference, execution=name,
                       sealedSpec=seal(self.cipher, org, record_name, {"spec": activity.spec}),
                       # a workflow that reads secrets may get them back in a result
                       # (an echoing endpoint): its results are sealed too
                       sealResult=bool(self._secret_names(self._definitions.get(execution))),
                       workflowName=execution["workflowName"], started=iso(now),
                       startedAt=now, finished=None, value=None, error=None)
        delay = 0.0
        if activity.kind == "timer":
            seconds = float(activity.spec.get("seconds") or 0)
            record["due"] = now + seconds
            delay = seconds
        try:
            record = self.store.add(record)
        except Conflict:
            return  # another advance of the same state started it
        self.jobs.submit(RUN_ACTIVITY, E.key_of(record), delay=delay)

    def spec_of(self, record: E.Entity) -> dict[str, Any]:
        """What the activity record ``record`` is to do (its sealed spec, opened)."""
        return self._open(record, "sealedSpec")["spec"]

    def result_of(self, record: E.Entity) -> dict[str, Any]:
        """``{value, error}`` of a finished activity record (opened if sealed)."""
        if record.get("sealedResult"):
            return self._open(record, "sealedResult")
        return {"value": record.get("value"), "error": record.get("error")}

    def sealed_result(self, record: E.Entity, value: Any, error: dict | None) -> dict[str, Any]:
        """The fields that record ``value`` and ``error`` on ``record``: in clear, or sealed
        when the record says its results are (see :meth:`_start_activity`)."""
        if not record.get("sealResult"):
            return {"value": value, "error": error}
        return {"value": None, "error": None, "sealedResult": seal(
            self.cipher, record["organizationId"], record["name"],
            {"value": value, "error": error})}

    def _open(self, record: E.Entity, field: str) -> dict[str, Any]:
        try:
            return unseal(self.cipher, record.get(field), record["organizationId"],
                          record["name"])
        except Unsealable:
            raise Unavailable(f"activity {record['name']} cannot be opened with the "
                              "configured key (was DISPATCH_SECRET_KEY changed?)") from None

    def _finished(self, execution: E.Entity) -> None:
        log.info("execution.%s key=%s", execution["status"], E.key_of(execution))
        if self._waiter is not None:
            self._waiter.settled(E.key_of(execution), execution)
        self.follow_up(execution)

    def follow_up(self, execution: E.Entity) -> None:
        """What a finished execution sets off — its listeners removed, the next
        ``schedule.after`` execution, its parent told — then ``followedUp`` recorded, so
        that the reconciler does it again for an execution whose worker died in between
        (every part is idempotent: the next execution's name derives from this one)."""
        failed = False
        for hook in self.on_finished:
            try:
                hook(execution)
            except Exception:
                failed = True
                log.exception("execution.finish_hook_failed key=%s", E.key_of(execution))
        if execution.get("parent"):
            self.jobs.submit(RUN_ACTIVITY, execution["parent"])
        if not failed:
            try:
                self.store.modify(E.EXECUTION, execution["organizationId"], execution["name"],
                                  lambda e: None if e.get("followedUp")
                                  else dict(e, followedUp=True))
            except NotFound:
                pass

    def prune(self, execution: E.Entity) -> None:
        """Delete a finished execution and its activity records (the reconciler, past the
        retention)."""
        org, name = execution["organizationId"], execution["name"]
        for record in activity_records(self.store, org, name):
            try:
                self.store.delete(E.ACTIVITY, org, record["name"])
            except NotFound:
                pass
        remove_of_execution(self.store, execution)
        self.store.delete(E.EXECUTION, org, name, revision=execution["revision"])

    def close(self) -> None:
        if self._waiter is not None:
            self._waiter.close()


def require(store: Store, org: str, name: str | None) -> E.Entity:
    """The READY workflow ``name`` of ``org``; 400 without a name, 404 if absent."""
    if not name:
        raise InvalidInput("workflowName is required")
    try:
        return store.get(E.WORKFLOW, org, name)
    except NotFound:
        raise NotFound(f"workflow {name} not found") from None


def check_input(workflow: Workflow, value: Any) -> None:
    """InvalidInput if ``value`` fails the workflow's ``input.schema``."""
    schema = ((workflow.document.get("input") or {}).get("schema") or {})
    document = schema.get("document") if isinstance(schema, dict) else None
    if not document:
        return
    try:
        jsonschema.validate(value, document)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise InvalidInput(f"input{'/' + where if where else ''} does not match the "
                           f"workflow's input.schema: {exc.message}") from None
    except jsonschema.SchemaError as exc:
        raise InvalidInput(f"the workflow's input.schema is not a valid JSON Schema: "
                           f"{exc.message}") from None


def _note(execution: E.Entity, action: str, reason: str | None) -> None:
    """Keep why an execution was cancelled, suspended or resumed in its ``reason``."""
    if reason:
        execution["reason"] = list(execution.get("reason") or []) + [f"{action}: {reason}"]


def _refuse_finished(execution: E.Entity, action: str) -> None:
    if execution["status"] in FINISHED:
        raise Conflict(f"cannot {action} execution {execution['name']}: it is "
                       f"{execution['status']} already")


def _describe(error: dict | None) -> str:
    if not error:
        return ""
    return " ".join(str(p) for p in (error.get("title"), error.get("detail")) if p) or \
        str(error.get("type"))


class _Definitions:
    """Checked definitions of executions, loaded once per process (loading compiles every
    jq expression); an execution's snapshot never changes, so its id is the key."""

    def __init__(self, size: int = 256):
        self.size = size
        self._loaded: collections.OrderedDict[str, Workflow] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, execution: E.Entity) -> Workflow:
        with self._lock:
            found = self._loaded.get(execution["id"])
            if found is not None:
                self._loaded.move_to_end(execution["id"])
                return found
        workflow = load(execution["definition"])
        with self._lock:
            self._loaded[execution["id"]] = workflow
            while len(self._loaded) > self.size:
                self._loaded.popitem(last=False)
        return workflow
