"""The tasks that ask the host for work — ``call``, ``wait``, ``emit``, ``listen``,
``run`` — as a mixin of the interpreter's replay. Each asks for one activity under
the task's own instance id.

Activity specs (``Activity.spec``) by kind, every expression already evaluated:

- ``function`` — ``{"function": name, "input": any, "tags": {}}``: a ``call:`` of a
  Dispatch function (``with`` is its input; without ``with``, the task's input), or
  ``call: dispatch`` with ``with: {function: NAME, input: …}`` (input defaults to the
  task's input), or a name declared under ``use.functions`` as ``{call: dispatch, with:
  {function: NAME}}`` (the call site's ``with`` is the input); ``tags`` are the task's
  ``metadata.tags`` if any.
- ``http`` — ``{"method" (upper case), "endpoint" (final URL), "headers", "query",
  "body", "output": "content|response|raw", "redirect": bool}``; an endpoint
  ``authentication`` (basic or bearer, inline, ``use:``d, or from a secret) becomes the
  ``Authorization`` header.
- ``timer`` — ``{"seconds": float, "purpose": "wait|retry|timeout"}``.
- ``emit`` — ``{"event": {"specversion": "1.0", …the event's attributes and data}}``
  (``id`` and ``time`` are the host's to fill when absent).
- ``listen`` — ``{"to": the DSL's listen.to as written, "read": "data|envelope|raw"}``;
  its value is the consumed events (a single event is taken as a list of one); the
  task's output is that list, or with ``foreach``, the list of each item's output.
- ``workflow`` — ``{"name", "namespace", "version" ("latest" by default), "input"}``
  (``input`` defaults to the task's input).
- ``script`` — ``{"language": "python|js", "code", "arguments", "environment",
  "stdin", "return": "stdout|stderr|code|all|none", "await": bool}``.

With ``run.await: false`` the host records the result once the process started; the
task's output is then its input.
"""

from __future__ import annotations

import base64

from engine.workflows.expressions import (ExpressionError, evaluate, evaluate_template,
                                          expand_uri_template, is_expression)
from engine.workflows.problems import fault
from engine.workflows.structure import task_kind
from engine.workflows.subset import SCRIPT_LANGUAGES


class ActivityTasks:
    """The task kinds backed by activities; mixed into the interpreter's replay."""

    def task_wait(self, name, task, ref, inp, scope, entry, descriptor):
        variables = self.variables(scope, descriptor, inp)
        seconds = self.duration(task["wait"], inp, variables, f"{ref}/wait", ref)
        self.activity(scope.instance(ref), "timer", ref,
                      lambda: {"seconds": seconds, "purpose": "wait"}, entry)
        return inp, None

    def task_emit(self, name, task, ref, inp, scope, entry, descriptor):
        variables = self.variables(scope, descriptor, inp)

        def spec():
            event = self.expression(evaluate_template, task["emit"]["event"].get("with") or {},
                                    inp, variables, f"{ref}/emit/event/with", ref)
            return {"event": {"specversion": "1.0", **event}}

        self.activity(scope.instance(ref), "emit", ref, spec, entry)
        return inp, None

    def task_listen(self, name, task, ref, inp, scope, entry, descriptor):
        listen = task["listen"]
        value = self.activity(scope.instance(ref), "listen", ref,
                              lambda: {"to": listen["to"], "read": listen.get("read", "data")},
                              entry)
        events = value if isinstance(value, list) else [] if value is None else [value]
        foreach = task.get("foreach")
        if not foreach:
            return events, None
        if len(events) > self.limits.max_iterations:
            self.limit(f"listen.foreach over {len(events)} events; the limit is "
                       f"{self.limits.max_iterations} (max_iterations)", ref)
        item_name, at = foreach.get("item", "item"), foreach.get("at", "index")
        outputs = []
        for i, event in enumerate(events):
            iteration = scope.iteration(f"each={i}", {item_name: event, at: i})
            out = event
            if foreach.get("do"):
                out = self.run_list(foreach["do"], f"{ref}/foreach/do", event, iteration)
            out = self.task_output(foreach, out, event, f"{ref}/foreach", iteration,
                                   descriptor)
            outputs.append(out)
        return outputs, None

    def task_run(self, name, task, ref, inp, scope, entry, descriptor):
        run = task["run"]
        variables = self.variables(scope, descriptor, inp)
        wait = run.get("await", True)
        if "workflow" in run:
            target = run["workflow"]

            def spec():
                given = self.expression(evaluate_template, target.get("input", inp), inp,
                                        variables, f"{ref}/run/workflow/input", ref)
                return {"name": target["name"], "namespace": target["namespace"],
                        "version": target.get("version", "latest"), "input": given,
                        "await": wait}

            value = self.activity(scope.instance(ref), "workflow", ref, spec, entry)
        else:
            script = run["script"]

            def spec():
                evaluated = self.expression(
                    evaluate_template, {k: script.get(k) for k in
                                        ("arguments", "environment", "stdin")},
                    inp, variables, f"{ref}/run/script", ref)
                return {"language": SCRIPT_LANGUAGES[script["language"]],
                        "code": script["code"], "arguments": evaluated["arguments"] or [],
                        "environment": evaluated["environment"] or {},
                        "stdin": evaluated["stdin"], "return": run.get("return", "stdout"),
                        "await": wait}

            value = self.activity(scope.instance(ref), "script", ref, spec, entry)
        return (value if wait else inp), None

    def task_call(self, name, task, ref, inp, scope, entry, descriptor):
        call = task["call"]
        variables = self.variables(scope, descriptor, inp)
        if call == "http":
            return self._http(task["with"], ref, inp, scope, entry, variables), None
        function = (self.uses.get("functions") or {}).get(call)
        args = task.get("with")

        def given():
            return inp if args is None else self.expression(
                evaluate_template, args, inp, variables, f"{ref}/with", ref)

        if function is not None:
            return self._custom_function(call, function, ref, given(), scope, entry,
                                         descriptor), None
        if call == "dispatch":
            # call: dispatch, with: {function: NAME, input: ANY}
            def given():
                if "input" not in args:
                    return inp
                return self.expression(evaluate_template, args["input"], inp, variables,
                                       f"{ref}/with/input", ref)
            return self._dispatch_function(args["function"], given, task, ref, scope,
                                           entry), None
        return self._dispatch_function(call, given, task, ref, scope, entry), None

    def _dispatch_function(self, function, given, task, ref, scope, entry):
        """Ask for the Dispatch function ``function``; ``given()`` is its input (only
        evaluated when the activity is asked for: a replay over a recorded result does
        not re-evaluate the arguments)."""
        tags = ((task.get("metadata") or {}).get("tags")) or {}
        return self.activity(scope.instance(ref), "function", ref,
                             lambda: {"function": function, "input": given(),
                                      "tags": dict(tags)}, entry)

    def _custom_function(self, fname, function, ref, given, scope, entry, descriptor):
        """A function under ``use.functions``: its task definition runs in place of the
        call (its activities carry the call site's id), with its own input and output
        handling; ``{call: dispatch, with: {function: N}}`` is the Dispatch function N."""
        if function.get("call") == "dispatch":
            return self._dispatch_function(function["with"]["function"], lambda: given,
                                           function, ref, scope, entry)
        variables = self.variables(scope, descriptor, given)
        finp = self.task_input(function, given, ref, variables)
        body = getattr(self, f"task_{task_kind(function)}")
        out, _ = body(fname, function, ref, finp, scope, entry, descriptor)
        return self.task_output(function, out, finp, ref, scope, descriptor)

    def _http(self, args, ref, inp, scope, entry, variables):
        endpoint = args["endpoint"]
        authorization = None
        if isinstance(endpoint, dict) and endpoint.get("authentication") is not None:
            authorization = self._authorization(endpoint["authentication"], inp, variables, ref)
            scheme, _, parameter = authorization.partition(" ")
            self.authorizations[scope.instance(ref)] = {"scheme": scheme,
                                                        "parameter": parameter}

        def spec():
            path = f"{ref}/with"
            endpoint = args["endpoint"]
            if isinstance(endpoint, dict):
                endpoint = endpoint["uri"]
            if is_expression(endpoint):
                url = self.expression(evaluate, endpoint, inp, variables, f"{path}/endpoint",
                                      ref)
                if not isinstance(url, str):
                    raise fault("expression", f"{path}/endpoint: the endpoint expression "
                                              f"gave {type(url).__name__}, not a string", ref)
            else:
                try:
                    url = expand_uri_template(endpoint, inp)
                except ExpressionError as e:
                    raise fault("expression", f"{path}/endpoint: {e}", ref) from None
            rest = self.expression(evaluate_template, {k: args.get(k) for k in
                                                       ("method", "headers", "query", "body")},
                                   inp, variables, path, ref)
            headers = dict(rest["headers"] or {})
            if authorization is not None:
                headers["Authorization"] = authorization
            return {"method": str(rest["method"]).upper(), "endpoint": url,
                    "headers": headers, "query": rest["query"] or {}, "body": rest["body"],
                    "output": args.get("output", "content"),
                    "redirect": bool(args.get("redirect", False))}

        return self.activity(scope.instance(ref), "http", ref, spec, entry)

    def _authorization(self, auth, inp, variables, ref) -> str:
        """The ``Authorization`` header of a basic or bearer policy."""
        if "use" in auth:
            auth = self.uses["authentications"][auth["use"]]
        path = f"{ref}/with/endpoint/authentication"
        for scheme in ("basic", "bearer"):
            policy = auth.get(scheme)
            if policy is None:
                continue
            if isinstance(policy, dict) and "use" in policy:
                secret = self.secrets.get(policy["use"])
                if not isinstance(secret, dict):
                    raise fault("authorization", f"secret {policy['use']!r} is not available",
                                ref)
                policy = secret
            policy = self.expression(evaluate_template, policy, inp, variables, path, ref)
            if scheme == "basic":
                raw = f"{policy.get('username', '')}:{policy.get('password', '')}"
                return "Basic " + base64.b64encode(raw.encode()).decode()
            token = policy.get("token") if isinstance(policy, dict) else policy
            return f"Bearer {token}"
        raise fault("configuration", f"{path}: no basic or bearer policy", ref)
