"""The deterministic replay interpreter of the DSL.

An execution's state is (definition, input, the recorded results of its activities, its
previous history). :func:`interpret` replays the definition from the start on every
advance: pure tasks (``set``, ``switch``, ``do``, ``for``, ``fork``, ``try``, ``raise``,
expressions, flow directives, data flow) are recomputed; work with side effects or
waiting is an :class:`Activity` whose recorded :class:`ActivityResult` is used when
present and otherwise asked for (``Outcome.pending``).

**Instance ids** (``Activity.id`` and history ``id``) are stable across replays::

    <task reference>[<qualifiers>]#<attempt>

- the reference is the task's JSON pointer (``/do/2/fanout/fork/branches/7/b``);
- qualifiers, comma-separated, outermost first, are present only inside repeated
  scopes: ``for=<i>`` per enclosing ``for`` iteration (always, one per enclosing loop),
  ``each=<i>`` per enclosing ``listen.foreach`` item, ``try=<n>`` for the attempt of
  every enclosing retried ``try`` but the innermost, and ``<name>*<k>`` when a task of
  a list runs for the k-th time (k ≥ 2) through a ``then`` jump back;
- the attempt is that of the innermost enclosing ``try`` (``#1`` outside any).

A task that does one activity (``call``, ``wait``, ``emit``, ``listen``, ``run``) asks
for it under its own instance id, so the history entry of a task and its activity share
the id. Timers that belong to a task have their own reference: a task's timeout timer
is ``<task reference>/timeout[…]#n``, a ``try``'s retry timer after its attempt ``k``
is ``<try reference>/catch/retry[…]#k``, the workflow's timeout ``/timeout#1``.

**Times.** The interpreter follows a virtual clock: a flow is at the ``finished`` time
of the last activity it consumed. Retry limits (``limit.duration``,
``limit.attempt.duration``), timeouts (a task whose timer finished before the task did
is timed out) and ``fork.compete`` (the branch finishing first wins; ties go to the
branch declared first) are judged on it, never on the wall clock. Decisions already
in ``previous_history`` stick: a task recorded completed is never timed out later, and
a competing fork keeps its recorded ``winner``.

**History** entries: ``{id, name, reference, status, input, output, error, attempts,
startedTime, finishedTime}`` (a competing fork adds ``winner``). ``input`` is the task's
raw input, ``attempts`` the attempts of a ``try`` (for other tasks, the attempt of the
enclosing ``try``). ``startedTime`` is kept from ``previous_history``, or taken from the
activity result, or ``now``; entries are listed by startedTime (stable, so ties keep
the start order of the replay). **Secrets**: every string value of ``secrets`` (3
characters or more) is replaced by ``********`` wherever it appears in history inputs,
outputs and errors, and in the execution's output and error; activity specs carry the
real values (the host needs them). An expression reading a secret the host did not give
faults with the spec's ``authorization`` error (403).

**Status**: ``waiting`` when every pending activity is a ``timer`` or ``listen``,
``running`` otherwise; ``completed``/``faulted``; ``cancelled`` when asked (nothing
pending, running entries cancelled). Entries still running when the execution
finishes, or in branches that lost a race or were abandoned by a fault, are
``cancelled``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import jsonschema

from engine.workflows import durations
from engine.workflows.definition import Workflow
from engine.workflows.structure import task_kind, task_name, timeout_seconds
from engine.workflows.expressions import (ExpressionError, SecretUnavailable, evaluate,
                                          evaluate_field)
from engine.workflows.problems import (LimitExceeded, WorkflowFault, error_type, fault,
                                       normalized, problem)
from engine.workflows.flow import End as _End, Scope, Waiting as _Waiting, truthy
from engine.workflows.calls import ActivityTasks
from engine.workflows.tasks import FlowTasks


@dataclass(frozen=True)
class Activity:
    """A piece of work with side effects or waiting that the execution asks the host for.

    ``id``: the instance id (module docstring); ``kind``: ``function``, ``http``,
    ``timer``, ``emit``, ``listen``, ``workflow`` or ``script``; ``reference``: the
    JSON pointer of the task that asked; ``spec``: what the host needs, expressions
    already evaluated (see :mod:`engine.workflows.calls` for each kind).
    """

    id: str
    kind: str
    reference: str
    spec: dict


@dataclass(frozen=True)
class ActivityResult:
    """The recorded result of one activity attempt (``error``: Problem Details)."""

    id: str
    ok: bool
    value: Any = None
    error: dict | None = None
    started: str | None = None
    finished: str | None = None


@dataclass
class Outcome:
    """Where an execution stands after a replay."""

    status: str
    pending: list[Activity]
    history: list[dict]
    output: Any = None
    error: dict | None = None


@dataclass(frozen=True)
class Limits:
    """Bounds on one execution; going past one faults it with a ``runtime`` error
    (status 500) whose detail names the limit. Never caught by ``try``."""

    max_history: int = 20_000
    max_state_bytes: int = 8 * 1024 * 1024
    max_branches: int = 5_000
    max_iterations: int = 10_000


log = logging.getLogger("dispatch.workflows")

WAITING_KINDS = ("timer", "listen")
REDACTED = "********"


def interpret(workflow: Workflow, input: Any, results: Mapping[str, ActivityResult], *,
              previous_history: Sequence[dict] = (), now: dt.datetime, runtime: dict,
              secrets: Mapping[str, Any] = {}, cancelled: bool = False,
              limits: Limits = Limits()) -> Outcome:
    """Replay ``workflow`` on ``input`` over the recorded ``results`` (by activity id).

    :param previous_history: the history the last replay returned (keeps start times
        and decisions stable).
    :param now: the time of this replay (start times of tasks started now).
    :param runtime: ``$runtime`` (``name``, ``version``, ``metadata``); its
        ``execution`` (``id``, ``startedAt``) feeds ``$workflow``.
    :param secrets: the values of the secrets named under ``use.secrets`` (``$secret``).
    :param cancelled: the execution is cancelled: nothing new is asked for.
    """
    return _Replay(workflow, input, results, previous_history, now, runtime, secrets,
                   limits).run(cancelled)


_JSON = json.JSONEncoder(separators=(",", ":"), default=str)


@lru_cache(maxsize=65536)
def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def _iso(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _datetime_descriptor(iso: str | None) -> dict | None:
    epoch = _epoch(iso)
    if epoch is None:
        return None
    return {"iso8601": iso, "epoch": {"seconds": int(epoch), "milliseconds": int(epoch * 1000)}}


class _Variables:
    """The runtime expression arguments of one evaluation, computed on demand."""

    __slots__ = ("replay", "scope", "task", "input", "output", "extra")

    def __init__(self, replay, scope, task=None, input=None, output=None, extra=None):
        self.replay, self.scope, self.task = replay, scope, task
        self.input, self.output, self.extra = input, output, extra

    def __call__(self, name: str) -> Any:
        if self.extra and name in self.extra:
            return self.extra[name]
        if name in self.scope.variables:
            return self.scope.variables[name]
        r = self.replay
        if name == "context":
            return r.context
        if name == "input":
            return self.input
        if name == "output":
            return self.output
        if name in ("secret", "secrets"):
            return r.secrets
        if name == "task":
            return self.task
        if name == "workflow":
            return r.workflow_descriptor
        if name == "runtime":
            return r.runtime_descriptor
        return None


class _Replay(FlowTasks, ActivityTasks):
    """One replay of an execution (single use)."""

    def __init__(self, workflow, input, results, previous_history, now, runtime, secrets,
                 limits):
        self.workflow = workflow
        self.uses = workflow.uses
        self.raw_input = input
        self.results = results
        self.previous = {e.get("id"): e for e in previous_history}
        self.now = _iso(now)
        self.limits = limits
        self.secrets = dict(secrets)
        self.pending: list[Activity] = []
        self.history: list[dict] = []
        #: ``$authorization`` ({scheme, parameter}) of http tasks, by instance id
        self.authorizations: dict[str, dict] = {}
        self.context: Any = {}
        execution = (runtime or {}).get("execution") or {}
        started = execution.get("startedAt") or min(
            (e["startedTime"] for e in previous_history if e.get("startedTime")),
            default=self.now)
        self.clock = _epoch(started) or _epoch(self.now)
        self.runtime_descriptor = {k: v for k, v in (runtime or {}).items()
                                   if k in ("name", "version", "metadata")}
        self.workflow_descriptor = {"id": execution.get("id"),
                                    "definition": workflow.document, "input": input,
                                    "startedAt": _datetime_descriptor(started)}
        self._secret_values = sorted({s for s in _strings(self.secrets) if len(s) >= 3},
                                     key=len, reverse=True)

    # -- the whole execution -------------------------------------------------------------

    def run(self, cancelled: bool) -> Outcome:
        status, output, error = "completed", None, None
        try:
            output = self._run_workflow()
        except _Waiting:
            status = "waiting" if all(a.kind in WAITING_KINDS for a in self.pending) \
                else "running"
        except (WorkflowFault, LimitExceeded) as e:
            status, error = "faulted", e.error
        except Exception as e:  # a bug here is deterministic: fault, never loop a job
            log.exception("workflow.interpreter_error workflow=%s", self.workflow.name)
            status, error = "faulted", problem(
                "runtime", f"interpreter error: {type(e).__name__}: {e}", "/")
        if status in ("completed", "faulted"):
            self.pending = []
        elif cancelled:
            status, self.pending = "cancelled", []
        if status != "running" and status != "waiting":
            for entry in self.history:
                if entry["status"] == "running":
                    entry["status"] = "cancelled"
                    entry["finishedTime"] = entry.get("finishedTime") or self.now
        self.history.sort(key=lambda e: _epoch(e["startedTime"]) or 0.0)
        return Outcome(status, self.pending, self.history,
                       self.redact(output) if status == "completed" else None,
                       self.redact(error))

    def _run_workflow(self) -> Any:
        wf = self.workflow
        schema = wf.input_schema
        if schema is not None:
            self.validate(self.raw_input, schema, "/input/schema", "workflow input")
        data = self.raw_input
        frm = wf.input.get("from")
        if frm is not None:
            data = self.expression(evaluate_field, frm, data, _Variables(self, Scope()),
                                   "/input/from", "/")
        seconds = wf.timeout
        try:
            if seconds is not None:
                out = self.with_timeout(seconds, "/timeout", Scope(), None, "the workflow",
                                        "/", lambda: self.run_list(wf.document["do"], "/do",
                                                                   data, Scope()))
            else:
                out = self.run_list(wf.document["do"], "/do", data, Scope())
        except _End as end:
            out = end.output
        as_ = wf.output.get("as")
        if as_ is not None:
            out = self.expression(evaluate_field, as_, out, _Variables(self, Scope()),
                                  "/output/as", "/")
        if wf.output_schema is not None:
            self.validate(out, wf.output_schema, "/output/schema", "workflow output")
        self.check_size(out, "the workflow output", "/")
        return out

    # -- task lists and tasks --------------------------------------------------------

    def run_list(self, items: list, path: str, data: Any, scope: Scope) -> Any:
        """Run a task list in order, following flow directives; its output."""
        index = self.workflow.index(items)
        visits: dict[str, int] = {}
        i = 0
        while i < len(items):
            name = task_name(items[i])
            count = visits[name] = visits.get(name, 0) + 1
            if count > self.limits.max_iterations:
                self.limit(f"task {name} ran {count} times in one scope; the limit is "
                           f"{self.limits.max_iterations} (max_iterations)",
                           f"{path}/{i}/{name}")
            task_scope = scope if count == 1 else scope.iteration(f"{name}*{count}")
            data, directive = self.run_task(name, items[i][name], f"{path}/{i}/{name}", data,
                                            task_scope)
            if directive == "continue":
                i += 1
            elif directive == "exit":
                break
            elif directive == "end":
                raise _End(data)
            else:
                i = index[directive]
        return data

    def run_task(self, name: str, task: dict, ref: str, raw: Any, scope: Scope):
        """Run one task with its data flow; ``(output, flow directive)``."""
        entry = self.begin(scope.instance(ref), name, ref, raw, scope)
        descriptor = {"name": name, "reference": ref, "definition": task, "input": raw,
                      "output": None,
                      "startedAt": _datetime_descriptor(entry["startedTime"])}
        try:
            if "if" in task:
                if not truthy(self.expression(evaluate, task["if"], raw,
                                              _Variables(self, scope, descriptor),
                                              f"{ref}/if", ref)):
                    self.finish(entry, "skipped", output=raw)
                    return raw, "continue"
            inp = self.task_input(task, raw, ref, _Variables(self, scope, descriptor))
            kind = task_kind(task)
            seconds = timeout_seconds(task.get("timeout"), self.uses)
            body = getattr(self, f"task_{kind}")
            if seconds is not None:
                out, directive = self.with_timeout(
                    seconds, f"{ref}/timeout", scope, entry, f"task {name}", ref,
                    lambda: body(name, task, ref, inp, scope, entry, descriptor))
            else:
                out, directive = body(name, task, ref, inp, scope, entry, descriptor)
            descriptor["output"] = out
            out = self.task_output(task, out, inp, ref, scope, descriptor)
            self.finish(entry, "completed", output=out)
            return out, directive or task.get("then", "continue")
        except WorkflowFault as f:
            f.error = normalized(f.error, ref)
            self.finish(entry, "faulted", error=f.error)
            raise
        except _End as end:
            self.finish(entry, "completed", output=end.output)
            raise

    def task_input(self, task: dict, raw: Any, ref: str, variables: _Variables) -> Any:
        spec = task.get("input") or {}
        schema = (spec.get("schema") or {}).get("document")
        if schema is not None:
            self.validate(raw, schema, ref, "task input")
        frm = spec.get("from")
        inp = raw if frm is None else self.expression(evaluate_field, frm, raw, variables,
                                                      f"{ref}/input/from", ref)
        variables.input = inp
        return inp

    def task_output(self, task: dict, out: Any, inp: Any, ref: str, scope: Scope,
                    descriptor: dict) -> Any:
        authorization = self.authorizations.get(scope.instance(ref))
        variables = _Variables(self, scope, descriptor, input=inp,
                               extra={"authorization": authorization} if authorization else None)
        spec = task.get("output") or {}
        if spec.get("as") is not None:
            out = self.expression(evaluate_field, spec["as"], out, variables,
                                  f"{ref}/output/as", ref)
        schema = (spec.get("schema") or {}).get("document")
        if schema is not None:
            self.validate(out, schema, ref, "task output")
        export = task.get("export") or {}
        if export.get("as") is not None:
            variables.output = out
            self.context = self.expression(evaluate_field, export["as"], out, variables,
                                           f"{ref}/export/as", ref)
            self.check_size(self.context, "the workflow context", ref)
            schema = (export.get("schema") or {}).get("document")
            if schema is not None:
                self.validate(self.context, schema, ref, "exported context")
        return out

    # -- history ---------------------------------------------------------------------

    def begin(self, instance: str, name: str, ref: str, raw: Any, scope: Scope) -> dict:
        if len(self.history) >= self.limits.max_history:
            self.limit(f"the history reached {self.limits.max_history} task executions "
                       f"(max_history)", ref)
        previous = self.previous.get(instance)
        result = self.results.get(instance)  # the task's own activity, if it has one
        started = (result.started if result is not None and result.started else
                   previous.get("startedTime") if previous else self.now)
        entry = {"id": instance, "name": name, "reference": ref, "status": "running",
                 "input": self.redact(raw), "output": None, "error": None,
                 "attempts": scope.attempt, "startedTime": started, "finishedTime": None}
        self.history.append(entry)
        return entry

    def finish(self, entry: dict, status: str, *, output: Any = None,
               error: dict | None = None) -> None:
        entry["status"] = status
        if status == "completed":
            self.check_size(output, f"the output of task {entry['name']}", entry["reference"])
        entry["output"] = self.redact(output)
        entry["error"] = self.redact(error)
        if not entry.get("finishedTime"):
            previous = self.previous.get(entry["id"])
            entry["finishedTime"] = (previous or {}).get("finishedTime") or self.now

    def cancel_entries(self, start: int, end: int | None = None) -> None:
        """Mark the still-running entries in ``history[start:end]`` cancelled."""
        for entry in self.history[start:end]:
            if entry["status"] == "running":
                entry["status"] = "cancelled"
                entry["finishedTime"] = self.now

    # -- activities, timers and timeouts ------------------------------------------------

    def activity(self, instance: str, kind: str, ref: str, spec: Callable[[], dict],
                 entry: dict | None = None) -> Any:
        """The recorded value of an activity, or ask for it (``_Waiting``); a failed
        one raises its error."""
        result = self.results.get(instance)
        if result is None:
            self.pending.append(Activity(instance, kind, ref, spec()))
            raise _Waiting()
        finished = _epoch(result.finished)
        if finished is not None and finished > self.clock:
            self.clock = finished
        if entry is not None:
            entry["startedTime"] = result.started or entry["startedTime"]
            entry["finishedTime"] = result.finished
        if not result.ok:
            raise WorkflowFault(normalized(result.error, ref))
        return result.value

    def with_timeout(self, seconds: float, timer_ref: str, scope: Scope, entry: dict | None,
                     what: str, instance_ref: str, body: Callable[[], Any]) -> Any:
        """Run ``body`` racing a timeout timer (asked for while ``body`` waits)."""
        timer_id = scope.instance(timer_ref)
        previous = self.previous.get(entry["id"]) if entry is not None else None
        error = problem("timeout", f"{what} timed out after {seconds:g}s", instance_ref)
        if previous and previous.get("status") == "faulted" and \
                (previous.get("error") or {}).get("type") == error_type("timeout"):
            raise WorkflowFault(error)
        settled = bool(previous and previous.get("status") == "completed")
        timer = self.results.get(timer_id)
        fired = None
        if timer is not None and timer.ok and not settled:  # a cancelled timer never fired
            fired = _epoch(timer.finished)
            if fired is None:
                started = _epoch(timer.started)
                fired = started + seconds if started is not None else float("-inf")
        mark = len(self.pending)
        try:
            out = body()
        except _Waiting:
            if fired is not None:
                del self.pending[mark:]
                self.clock = max(self.clock, fired)
                raise WorkflowFault(error) from None
            if timer is None:
                self.pending.append(Activity(timer_id, "timer", timer_ref,
                                             {"seconds": seconds, "purpose": "timeout"}))
            raise
        except WorkflowFault:
            if fired is not None and self.clock > fired:
                raise WorkflowFault(error) from None
            raise
        if fired is not None and self.clock > fired:
            raise WorkflowFault(error)
        return out

    # -- helpers ---------------------------------------------------------------------

    def expression(self, how, text, data, variables, path: str, ref: str) -> Any:
        """Evaluate with ``how`` (``evaluate``, ``evaluate_field``, ``evaluate_template``);
        a failure is the spec's ``expression`` error naming ``path``."""
        try:
            return how(text, data, variables)
        except SecretUnavailable as e:
            raise fault("authorization", f"{path}{e.where}: {e}", ref) from None
        except ExpressionError as e:
            raise fault("expression", f"{path}{e.where}: {e}", ref) from None

    def validate(self, value: Any, schema: dict, ref: str, what: str) -> None:
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as e:
            where = "/" + "/".join(str(p) for p in e.absolute_path)
            raise fault("validation", f"{what} is invalid at {where}: {e.message}",
                        ref) from None

    def limit(self, detail: str, ref: str):
        raise LimitExceeded(problem("runtime", detail, ref, title="Limit exceeded"))

    def check_size(self, value: Any, what: str, ref: str) -> None:
        if value is None or isinstance(value, (bool, int, float)):
            return
        if isinstance(value, str) and len(value) * 6 < self.limits.max_state_bytes:
            return
        if _shallow_size(value) * 6 < self.limits.max_state_bytes:
            return
        size = len(_JSON.encode(value))
        if size > self.limits.max_state_bytes:
            self.limit(f"{what} is {size} bytes of JSON; the limit is "
                       f"{self.limits.max_state_bytes} (max_state_bytes)", ref)

    def redact(self, value: Any) -> Any:
        if not self._secret_values or value is None:
            return value
        if isinstance(value, str):
            for secret in self._secret_values:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        return value

    def variables(self, scope: Scope, descriptor: dict | None = None, input: Any = None,
                  extra: Mapping[str, Any] | None = None) -> _Variables:
        return _Variables(self, scope, descriptor, input=input, extra=extra)

    def duration(self, value: Any, data: Any, variables, path: str, ref: str) -> float:
        if isinstance(value, str) and value.strip().startswith("${"):
            value = self.expression(evaluate, value, data, variables, path, ref)
        try:
            return durations.seconds(value)
        except ValueError as e:
            raise fault("expression", f"{path}: {e}", ref) from None


_SCALARS = (bool, int, float, type(None))


def _shallow_size(value: Any) -> float:
    """A bound on the characters of a small flat object or list (keys and scalar items
    at most 6 bytes of JSON per character), or infinity when it is not flat and small:
    sizing every task output with the JSON encoder would dominate a replay's time."""
    items = value.items() if isinstance(value, dict) else \
        ((None, v) for v in value) if isinstance(value, list) else None
    if items is None or len(value) > 64:
        return float("inf")
    total = 2
    for key, item in items:
        total += 4 + (len(key) if isinstance(key, str) else 0)
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, _SCALARS):
            total += 24
        else:
            return float("inf")
    return total


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


