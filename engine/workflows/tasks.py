"""The flow and data tasks during a replay (a mixin of the interpreter's replay):
``set``, ``switch``, ``do``, ``for``, ``fork``, ``try``, ``raise``.

Each ``task_<kind>(name, task, ref, input, scope, entry, descriptor)`` gets the task's
transformed input and returns ``(raw output, flow directive or None)``. The tasks that
ask the host for work are in :mod:`engine.workflows.calls`.
"""

from __future__ import annotations

import random

from engine.workflows.expressions import evaluate, evaluate_template
from engine.workflows.flow import End, Waiting, truthy
from engine.workflows.problems import WorkflowFault, fault
from engine.workflows.structure import task_name


class FlowTasks:
    """The flow and data task kinds; mixed into the interpreter's replay."""

    # -- data and flow ---------------------------------------------------------------

    def task_set(self, name, task, ref, inp, scope, entry, descriptor):
        value = task["set"]
        how = evaluate if isinstance(value, str) else evaluate_template
        variables = self.variables(scope, descriptor, inp)
        return self.expression(how, value, inp, variables, f"{ref}/set", ref), None

    def task_switch(self, name, task, ref, inp, scope, entry, descriptor):
        variables = self.variables(scope, descriptor, inp)
        default = None
        for j, case in enumerate(task["switch"]):
            cname, body = next(iter(case.items()))
            when = body.get("when")
            if when is None:
                default = body
            elif truthy(self.expression(evaluate, when, inp, variables,
                                        f"{ref}/switch/{j}/{cname}/when", ref)):
                return inp, body.get("then", "continue")
        return inp, (default or {}).get("then", "continue")

    def task_do(self, name, task, ref, inp, scope, entry, descriptor):
        return self.run_list(task["do"], f"{ref}/do", inp, scope), None

    def task_for(self, name, task, ref, inp, scope, entry, descriptor):
        loop = task["for"]
        variables = self.variables(scope, descriptor, inp)
        items = self.expression(evaluate, loop["in"], inp, variables, f"{ref}/for/in", ref)
        if items is None:
            items = []
        if isinstance(items, dict):
            items = list(items.values())
        if not isinstance(items, list):
            raise fault("expression", f"{ref}/for/in: expected an array to iterate, got "
                                      f"{type(items).__name__}", ref)
        if len(items) > self.limits.max_iterations:
            self.limit(f"for over {len(items)} items; the limit is "
                       f"{self.limits.max_iterations} (max_iterations)", ref)
        each, at = loop.get("each", "item"), loop.get("at", "index")
        data = inp
        for i, item in enumerate(items):
            iteration = scope.iteration(f"for={i}", {each: item, at: i})
            if "while" in task and not truthy(self.expression(
                    evaluate, task["while"], data,
                    self.variables(iteration, descriptor, inp), f"{ref}/while", ref)):
                break
            data = self.run_list(task["do"], f"{ref}/do", data, iteration)
        return data, None

    def task_fork(self, name, task, ref, inp, scope, entry, descriptor):
        fork = task["fork"]
        branches = fork["branches"]
        compete = bool(fork.get("compete"))
        if len(branches) > self.limits.max_branches:
            self.limit(f"fork with {len(branches)} branches; the limit is "
                       f"{self.limits.max_branches} (max_branches)", ref)
        start_clock, start_context = self.clock, self.context
        pending_mark = len(self.pending)
        outcomes = []  # (state, value, clock, context, history start, history end)
        for i, item in enumerate(branches):
            bname = task_name(item)
            self.clock = start_clock
            if compete:
                self.context = start_context
            hist = len(self.history)
            try:
                out, directive = self.run_task(bname, item[bname],
                                               f"{ref}/fork/branches/{i}/{bname}", inp, scope)
                if directive == "end":
                    raise End(out)
                outcomes.append(("done", out, self.clock, self.context, hist,
                                 len(self.history)))
            except Waiting:
                outcomes.append(("waiting", None, None, None, hist, len(self.history)))
            except WorkflowFault as f:
                outcomes.append(("fault", f.error, self.clock, None, hist, len(self.history)))
        if compete:
            return self._compete(branches, outcomes, ref, entry, pending_mark, start_context)
        faults = [(o[2], i) for i, o in enumerate(outcomes) if o[0] == "fault"]
        if faults:
            # the branch that failed first; the one already recorded as the fork's error
            # if there is one (a branch recorded later cannot change the outcome)
            recorded = (self.previous.get(entry["id"]) or {}).get("error")
            sticky = [(c, i) for c, i in faults if outcomes[i][1] == recorded]
            clock, i = min(sticky or faults)
            del self.pending[pending_mark:]
            self._abandon(outcomes, keep=None)
            self.clock = clock
            raise WorkflowFault(outcomes[i][1])
        if any(o[0] == "waiting" for o in outcomes):
            raise Waiting()
        self.clock = max([start_clock] + [o[2] for o in outcomes])
        return [o[1] for o in outcomes], None

    def _compete(self, branches, outcomes, ref, entry, pending_mark, start_context):
        previous = self.previous.get(entry["id"]) or {}
        names = [task_name(item) for item in branches]
        winner = None
        if previous.get("winner") in names:
            i = names.index(previous["winner"])
            if outcomes[i][0] == "done":
                winner = i
        if winner is None:
            done = [(o[2], i) for i, o in enumerate(outcomes) if o[0] == "done"]
            if done:
                winner = min(done)[1]
        if winner is not None:
            state, out, clock, context, _, _ = outcomes[winner]
            del self.pending[pending_mark:]
            self._abandon(outcomes, keep=winner)
            self.clock, self.context = clock, context
            entry["winner"] = names[winner]
            return out, None
        self.context = start_context
        if all(o[0] == "fault" for o in outcomes):
            clock, i = min((o[2], i) for i, o in enumerate(outcomes))
            self.clock = clock
            raise WorkflowFault(outcomes[i][1])
        raise Waiting()

    def _abandon(self, outcomes, keep):
        for i, o in enumerate(outcomes):
            if i != keep:
                self.cancel_entries(o[4], o[5])

    def task_try(self, name, task, ref, inp, scope, entry, descriptor):
        """Run the ``try`` list; an error the ``catch`` matches (``errors.with``,
        ``when``, ``exceptWhen``) runs ``catch.do`` (on the attempt's input, with the
        error as ``$error`` or the ``as`` name; its output is the try's output, or with a
        retry, the next attempt's input). With a ``retry`` policy the attempt is retried
        after the backoff delay while the policy allows, and once it does not the error
        propagates (as the reference implementation does). Without a policy the error is
        caught: the output is catch.do's, or the input."""
        catch = task.get("catch") or {}
        retry = catch.get("retry")
        if isinstance(retry, str):
            retry = (self.uses.get("retries") or {})[retry]
        as_name = catch.get("as", "error")
        first_start = self.clock
        attempt, data = 1, inp
        while True:
            attempt_start = self.clock
            attempt_scope = scope.try_attempt(attempt)
            entry["attempts"] = attempt
            try:
                return self.run_list(task["try"], f"{ref}/try", data, attempt_scope), None
            except WorkflowFault as f:
                error = f.error
                variables = self.variables(scope, descriptor, data, {as_name: error})
                if not self._catches(catch, error, data, variables, ref):
                    raise
                handled = data
                if catch.get("do"):
                    caught = attempt_scope.with_variables({as_name: error})
                    handled = self.run_list(catch["do"], f"{ref}/catch/do", data, caught)
                if not retry:
                    return handled, None
                timer_id = attempt_scope.instance(f"{ref}/catch/retry")
                delay = self._retry_delay(retry, attempt, timer_id, data, variables, ref)
                if not self._retries(retry, error, attempt, delay, first_start,
                                     attempt_start, data, variables, ref):
                    raise
                self.activity(timer_id, "timer", f"{ref}/catch/retry",
                              lambda: {"seconds": delay, "purpose": "retry"})
                attempt, data = attempt + 1, handled

    def _catches(self, catch, error, inp, variables, ref) -> bool:
        wanted = (catch.get("errors") or {}).get("with") or {}
        for key, expected in wanted.items():
            actual = error.get("detail" if key == "details" else key)
            if actual != expected:
                return False
        if "when" in catch and not truthy(self.expression(
                evaluate, catch["when"], inp, variables, f"{ref}/catch/when", ref)):
            return False
        if "exceptWhen" in catch and truthy(self.expression(
                evaluate, catch["exceptWhen"], inp, variables, f"{ref}/catch/exceptWhen", ref)):
            return False
        return True

    def _retry_delay(self, retry, attempt, timer_id, inp, variables, ref) -> float:
        """The wait after failed attempt ``attempt``: ``delay`` × 1 (constant), ×
        attempt (linear) or × 2^(attempt-1) (exponential), plus a jitter drawn
        deterministically (seeded by the retry timer's id) within ``jitter``."""
        path = f"{ref}/catch/retry"
        base = self.duration(retry["delay"], inp, variables, f"{path}/delay", ref) \
            if "delay" in retry else 0.0
        backoff = retry.get("backoff") or {}
        if "exponential" in backoff:
            base *= 2 ** (attempt - 1)
        elif "linear" in backoff:
            base *= attempt
        jitter = retry.get("jitter")
        if jitter:
            low = self.duration(jitter["from"], inp, variables, f"{path}/jitter/from", ref)
            high = self.duration(jitter["to"], inp, variables, f"{path}/jitter/to", ref)
            base += random.Random(timer_id).uniform(min(low, high), max(low, high))
        return round(base, 3)

    def _retries(self, retry, error, attempt, delay, first_start, attempt_start, inp,
                 variables, ref) -> bool:
        """Whether failed attempt ``attempt`` is retried: ``limit.attempt.count`` is the
        number of retries (attempts = count + 1); ``limit.duration`` bounds the time
        from the first attempt's start to the next attempt's start;
        ``limit.attempt.duration`` stops retrying after an attempt that lasted longer;
        ``when``/``exceptWhen`` see the error as ``$error`` (or the ``catch.as`` name)."""
        path = f"{ref}/catch/retry"
        limit = retry.get("limit") or {}
        count = (limit.get("attempt") or {}).get("count")
        if count is not None and attempt > count:
            return False
        if "duration" in limit:
            most = self.duration(limit["duration"], inp, variables, f"{path}/limit/duration",
                                 ref)
            if self.clock - first_start + delay > most:
                return False
        if "duration" in (limit.get("attempt") or {}):
            most = self.duration(limit["attempt"]["duration"], inp, variables,
                                 f"{path}/limit/attempt/duration", ref)
            if self.clock - attempt_start > most:
                return False
        retry_variables = self.variables(variables.scope, variables.task, inp,
                                         {**(variables.extra or {}), "error": error})
        if "when" in retry and not truthy(self.expression(
                evaluate, retry["when"], inp, retry_variables, f"{path}/when", ref)):
            return False
        if "exceptWhen" in retry and truthy(self.expression(
                evaluate, retry["exceptWhen"], inp, retry_variables, f"{path}/exceptWhen",
                ref)):
            return False
        return True

    def task_raise(self, name, task, ref, inp, scope, entry, descriptor):
        error = task["raise"]["error"]
        if isinstance(error, str):
            error = self.uses["errors"][error]
        variables = self.variables(scope, descriptor, inp)
        error = self.expression(evaluate_template, error, inp, variables, f"{ref}/raise/error",
                                ref)
        error = {k: v for k, v in error.items() if v is not None}
        error.setdefault("instance", ref)
        raise WorkflowFault(error)
