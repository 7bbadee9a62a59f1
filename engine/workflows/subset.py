"""What Dispatch supports of the DSL, and the checks the official schema cannot make.

:class:`Checker` walks a document (after the schema) and raises
:class:`engine.errors.InvalidInput` whose message starts with the JSON path:

- supported: ``call`` of ``http``, of a function under ``use.functions``, or of a
  **Dispatch function** (any other name without ``:``, ``/`` or ``@``, or ``call:
  dispatch``); ``run: workflow`` and ``run: script`` (``python`` or ``js``, inline
  ``code``); every flow and data task; ``basic``/``bearer`` authentication;
- unsupported (the message says "unsupported" and names the task's path): ``call`` of
  ``grpc``, ``openapi``, ``asyncapi``, ``a2a``, ``mcp`` or a catalog function, ``run:
  container`` and ``run: shell``, ``use.extensions``, ``oauth2``/``oidc``/``digest``/
  ``certificate`` authentication, external schema resources, event ``correlate``, and
  ``evaluate`` other than ``jq``/``strict``;
- every ``${ }`` expression, and every field the spec types as a runtime expression,
  compiles with jq, and reads (``$secret.NAME``) only secrets declared under
  ``use.secrets``;
- every ``then`` (and switch case ``then``) names ``continue``, ``exit``, ``end`` or a
  task of its own list; names are unique in a list; a switch has at most one default;
  reusable errors, retries, timeouts and authentications that are named exist; every
  duration parses.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import jsonschema

from engine.errors import InvalidInput
from engine.workflows import durations
from engine.workflows.expressions import ExpressionError, compile_expression, expressions_in
from engine.workflows.structure import TASK_KINDS, children, task_kind, task_name

BUILTIN_CALLS = ("http", "grpc", "openapi", "asyncapi", "a2a", "mcp")
DIRECTIVES = ("continue", "exit", "end")
SCRIPT_LANGUAGES = {"python": "python", "js": "js", "javascript": "js"}
_CATALOG_CALL = re.compile(r"[:/@]")


def _fail(path: str, message: str):
    raise InvalidInput(f"{path}: {message}")


class Checker:
    """Walks a document, checking what the schema cannot (module docstring)."""

    def __init__(self, document: dict):
        self.document = document
        self.uses = document.get("use") or {}
        if not isinstance(self.uses, dict):
            self.uses = {}

    # -- structure (before the schema, for clearer messages) -------------------------

    def check_structure(self) -> None:
        schedule = self.document.get("schedule")
        if isinstance(schedule, dict) and True in schedule:
            _fail("/schedule", "the key `on` was read as the boolean true (YAML 1.1): read "
                               "workflow documents with YAML 1.2 booleans "
                               "(engine.workflows.yaml12.load)")
        for path, items in self._task_lists_raw(self.document.get("do"), "/do"):
            if not isinstance(items, list):
                _fail(path, "a task list must be a list of single-key objects {name: task}")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or len(item) != 1:
                    _fail(f"{path}/{i}", "a task list entry must be one {name: task} object")
                name, task = next(iter(item.items()))
                if not isinstance(task, dict) or task_kind(task) is None:
                    _fail(f"{path}/{i}/{name}", "not a task: expected one of "
                          + ", ".join(sorted(TASK_KINDS)))

    def tasks(self) -> Iterator[tuple[str, dict]]:
        """Every task of the document's task lists (also inside ``use.functions``)."""
        roots = [(self.document.get("do"), "/do")]
        for name, function in (self.uses.get("functions") or {}).items():
            if isinstance(function, dict):
                roots.extend((sub, subpath) for sub, subpath in
                             children(function, f"/use/functions/{name}"))
        for items, path in roots:
            for lpath, lst in self._task_lists_raw(items, path):
                for i, item in enumerate(lst):
                    name, task = next(iter(item.items()))
                    yield f"{lpath}/{i}/{name}", task

    def _task_lists_raw(self, items, path) -> Iterator[tuple[str, Any]]:
        yield path, items
        if not isinstance(items, list):
            return
        for i, item in enumerate(items):
            if isinstance(item, dict) and len(item) == 1:
                name, task = next(iter(item.items()))
                if isinstance(task, dict):
                    for sub, subpath in children(task, f"{path}/{i}/{name}"):
                        yield from self._task_lists_raw(sub, subpath)

    # -- semantics --------------------------------------------------------------------

    def check(self) -> None:
        doc = self.document
        evaluate = doc.get("evaluate") or {}
        if evaluate.get("language", "jq") != "jq":
            _fail("/evaluate/language", f"unsupported: expression language "
                  f"{evaluate['language']!r} (Dispatch evaluates jq)")
        if evaluate.get("mode", "strict") != "strict":
            _fail("/evaluate/mode", "unsupported: loose evaluation mode (Dispatch is strict)")
        if self.uses.get("extensions"):
            first = task_name(self.uses["extensions"][0])
            _fail(f"/use/extensions/0/{first}", "unsupported: extensions")
        for name, auth in (self.uses.get("authentications") or {}).items():
            self._check_authentication(auth, f"/use/authentications/{name}", top=True)
        for name, timeout in (self.uses.get("timeouts") or {}).items():
            self._duration(timeout.get("after"), f"/use/timeouts/{name}/after")
        for name, retry in (self.uses.get("retries") or {}).items():
            self._check_retry(retry, f"/use/retries/{name}")
        for name, error in (self.uses.get("errors") or {}).items():
            self._compile_all(error, f"/use/errors/{name}")
        self._check_io(doc, "")
        self._check_timeout(doc.get("timeout"), "/timeout")
        self._compile_all(doc.get("schedule"), "/schedule")
        for name, function in (self.uses.get("functions") or {}).items():
            self._check_task(f"/use/functions/{name}", name, function)
        self._check_list(doc["do"], "/do")

    def _check_list(self, items: list, path: str, *, branches: bool = False) -> None:
        names = [task_name(item) for item in items]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                _fail(f"{path}/{i}/{name}", f"duplicate task name {name!r} in this list")
            seen.add(name)
        for i, item in enumerate(items):
            name = names[i]
            tpath = f"{path}/{i}/{name}"
            task = item[name]
            self._check_then(task.get("then"), names, f"{tpath}/then", branches)
            if "switch" in task:
                defaults = 0
                for j, case in enumerate(task["switch"]):
                    cname, body = next(iter(case.items()))
                    cpath = f"{tpath}/switch/{j}/{cname}"
                    self._check_then(body.get("then"), names, f"{cpath}/then", branches)
                    if body.get("when") is None:
                        defaults += 1
                        if defaults > 1:
                            _fail(cpath, "a switch may have only one default case (no when)")
                    else:
                        self._expression(body["when"], f"{cpath}/when")
            self._check_task(tpath, name, task)

    def _check_then(self, then, names, path, branches) -> None:
        if then is None or then in DIRECTIVES:
            return
        if branches:
            _fail(path, f"a fork branch cannot jump to {then!r}; use continue, exit or end")
        if then not in names:
            _fail(path, f"then: {then!r} is not a task of this list "
                        f"(flow directives may only target tasks of their own scope: "
                        f"{', '.join(names)})")

    def _check_task(self, path: str, name: str, task: dict) -> None:
        kind = task_kind(task)
        if "if" in task:
            self._expression(task["if"], f"{path}/if")
        self._check_io(task, path)
        self._check_timeout(task.get("timeout"), f"{path}/timeout")
        getattr(self, f"_check_{kind}")(path, task)

    def _check_io(self, node: dict, path: str) -> None:
        for section, key in (("input", "from"), ("output", "as"), ("export", "as")):
            spec = node.get(section)
            if not spec:
                continue
            schema = spec.get("schema")
            if schema is not None:
                if "resource" in schema and "document" not in schema:
                    _fail(f"{path}/{section}/schema", "unsupported: external schema "
                          "resources (give the schema inline as document)")
                if schema.get("format", "json").split(":")[0] != "json":
                    _fail(f"{path}/{section}/schema/format", "unsupported: only json schemas")
                try:
                    jsonschema.validators.validator_for(schema["document"]).check_schema(
                        schema["document"])
                except jsonschema.SchemaError as e:
                    _fail(f"{path}/{section}/schema/document", f"not a JSON Schema: {e.message}")
            value = spec.get(key)
            if isinstance(value, str):
                self._expression(value, f"{path}/{section}/{key}")
            elif value is not None:
                self._compile_all(value, f"{path}/{section}/{key}")

    def _check_timeout(self, timeout, path: str) -> None:
        if timeout is None:
            return
        if isinstance(timeout, str):
            if timeout not in (self.uses.get("timeouts") or {}):
                _fail(path, f"no timeout named {timeout!r} under use.timeouts")
            return
        self._duration(timeout.get("after"), f"{path}/after")

    def _duration(self, value, path: str) -> None:
        if isinstance(value, str) and value.strip().startswith("${"):
            self._expression(value, path)
            return
        try:
            durations.seconds(value)
        except ValueError as e:
            _fail(path, str(e))

    def _expression(self, text: str, path: str) -> None:
        try:
            compile_expression(text)
        except ExpressionError as e:
            _fail(path, f"jq compile error: {e}")
        declared = self.uses.get("secrets") or []
        for name in compile_expression(text).secrets:
            if name not in declared:
                _fail(path, f"secret {name!r} is not declared under use.secrets")

    def _compile_all(self, value: Any, path: str) -> None:
        for p, text in expressions_in(value, path):
            self._expression(text, p)

    # -- per kind ---------------------------------------------------------------------

    def _check_call(self, path: str, task: dict) -> None:
        call = task["call"]
        args = task.get("with") or {}
        if call == "http":
            self._check_endpoint(args.get("endpoint"), f"{path}/with/endpoint")
            self._compile_all(args, f"{path}/with")
        elif call in BUILTIN_CALLS:
            _fail(path, f"unsupported: call: {call} (Dispatch supports call: http, "
                        "Dispatch functions and functions declared under use.functions)")
        elif call in (self.uses.get("functions") or {}):
            self._compile_all(args, f"{path}/with")
        elif call == "dispatch":
            if not isinstance(args.get("function"), str) or not args["function"]:
                _fail(f"{path}/with/function", "call: dispatch needs with.function, "
                                               "the name of a Dispatch function")
        elif _CATALOG_CALL.search(call):
            _fail(path, f"unsupported: call of the catalog or external function {call!r}")
        else:
            self._compile_all(args, f"{path}/with")

    def _check_endpoint(self, endpoint, path: str) -> None:
        if isinstance(endpoint, dict) and endpoint.get("authentication") is not None:
            self._check_authentication(endpoint["authentication"], f"{path}/authentication")

    def _check_authentication(self, auth: dict, path: str, top: bool = False) -> None:
        if "use" in auth and not top:
            if auth["use"] not in (self.uses.get("authentications") or {}):
                _fail(f"{path}/use", f"no authentication named {auth['use']!r} under "
                                     "use.authentications")
            return
        for scheme in ("oauth2", "oidc", "digest", "certificate"):
            if scheme in auth:
                _fail(f"{path}/{scheme}", f"unsupported: {scheme} authentication "
                                          "(Dispatch supports basic and bearer)")
        for scheme in ("basic", "bearer"):
            policy = auth.get(scheme)
            if isinstance(policy, dict) and "use" in policy:
                if policy["use"] not in (self.uses.get("secrets") or []):
                    _fail(f"{path}/{scheme}/use", f"secret {policy['use']!r} is not "
                                                  "declared under use.secrets")
        self._compile_all(auth, path)

    def _check_do(self, path: str, task: dict) -> None:
        self._check_list(task["do"], f"{path}/do")

    def _check_for(self, path: str, task: dict) -> None:
        self._expression(task["for"]["in"], f"{path}/for/in")
        if "while" in task:
            self._expression(task["while"], f"{path}/while")
        self._check_list(task["do"], f"{path}/do")

    def _check_fork(self, path: str, task: dict) -> None:
        self._check_list(task["fork"]["branches"], f"{path}/fork/branches", branches=True)

    def _check_emit(self, path: str, task: dict) -> None:
        self._compile_all(task["emit"], f"{path}/emit")

    def _check_listen(self, path: str, task: dict) -> None:
        self._check_consumption(task["listen"]["to"], f"{path}/listen/to")
        foreach = task.get("foreach")
        if foreach:
            self._check_io(foreach, f"{path}/foreach")
            if foreach.get("do"):
                self._check_list(foreach["do"], f"{path}/foreach/do")

    def _check_consumption(self, to: dict, path: str) -> None:
        filters = []
        if "one" in to:
            filters.append(("one", to["one"]))
        for key in ("all", "any"):
            for i, f in enumerate(to.get(key) or []):
                filters.append((f"{key}/{i}", f))
        for sub, f in filters:
            if f.get("correlate"):
                _fail(f"{path}/{sub}/correlate", "unsupported: event correlation")
            self._compile_all(f.get("with"), f"{path}/{sub}/with")
        until = to.get("until")
        if isinstance(until, str):
            self._expression(until, f"{path}/until")
        elif isinstance(until, dict):
            self._check_consumption(until, f"{path}/until")

    def _check_raise(self, path: str, task: dict) -> None:
        error = task["raise"]["error"]
        if isinstance(error, str):
            if error not in (self.uses.get("errors") or {}):
                _fail(f"{path}/raise/error", f"no error named {error!r} under use.errors")
        else:
            self._compile_all(error, f"{path}/raise/error")

    def _check_run(self, path: str, task: dict) -> None:
        run = task["run"]
        if "container" in run or "shell" in run:
            what = "container" if "container" in run else "shell"
            _fail(path, f"unsupported: run: {what} (Dispatch runs workflows and scripts)")
        if "script" in run:
            script = run["script"]
            if script.get("language") not in SCRIPT_LANGUAGES:
                _fail(f"{path}/run/script/language", f"unsupported: script language "
                      f"{script.get('language')!r} (python or js)")
            if "code" not in script:
                _fail(f"{path}/run/script", "unsupported: script source resources "
                                            "(give the code inline)")
        self._compile_all(run, f"{path}/run")

    def _check_set(self, path: str, task: dict) -> None:
        if isinstance(task["set"], str):
            self._expression(task["set"], f"{path}/set")
        else:
            self._compile_all(task["set"], f"{path}/set")

    def _check_switch(self, path: str, task: dict) -> None:
        pass  # cases are checked with their list (their then targets its tasks)

    def _check_try(self, path: str, task: dict) -> None:
        self._check_list(task["try"], f"{path}/try")
        catch = task.get("catch") or {}
        for key in ("when", "exceptWhen"):
            if key in catch:
                self._expression(catch[key], f"{path}/catch/{key}")
        retry = catch.get("retry")
        if isinstance(retry, str):
            if retry not in (self.uses.get("retries") or {}):
                _fail(f"{path}/catch/retry", f"no retry policy named {retry!r} under "
                                             "use.retries")
        elif retry is not None:
            self._check_retry(retry, f"{path}/catch/retry")
        if catch.get("do"):
            self._check_list(catch["do"], f"{path}/catch/do")

    def _check_retry(self, retry: dict, path: str) -> None:
        for key in ("when", "exceptWhen"):
            if key in retry:
                self._expression(retry[key], f"{path}/{key}")
        if "delay" in retry:
            self._duration(retry["delay"], f"{path}/delay")
        limit = retry.get("limit") or {}
        if "duration" in limit:
            self._duration(limit["duration"], f"{path}/limit/duration")
        if "duration" in (limit.get("attempt") or {}):
            self._duration(limit["attempt"]["duration"], f"{path}/limit/attempt/duration")
        for key in ("from", "to"):
            if key in (retry.get("jitter") or {}):
                self._duration(retry["jitter"][key], f"{path}/jitter/{key}")

    def _check_wait(self, path: str, task: dict) -> None:
        self._duration(task["wait"], f"{path}/wait")
