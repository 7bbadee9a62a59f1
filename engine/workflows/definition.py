"""Loading a workflow document: the official schema, then what Dispatch supports.

:func:`load` checks a document (a dict, e.g. parsed from JSON, or from YAML with
:func:`engine.workflows.yaml12.load`) and raises :class:`engine.errors.InvalidInput`
whose message starts with the JSON path of the problem
(``/do/1/check/switch/0/high/when: jq compile error: …``):

1. every task list entry is one named task of a kind the DSL knows;
2. the official JSON Schema of the DSL 1.0.3 (``schema/workflow.yaml``, shipped as
   package data), each task against its own kind's schema;
3. what Dispatch supports, expressions, flow targets (:mod:`engine.workflows.subset`).

Dispatch functions can also be named explicitly: a task ``{call: dispatch, with:
{function: NAME, input: …}}``, or a function declared under ``use.functions`` as
``{call: dispatch, with: {function: NAME}}`` (so a workflow can give it another name;
the call site's ``with`` is the input).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import jsonschema

from engine.errors import InvalidInput
from engine.workflows import yaml12
from engine.workflows.structure import (TASK_KINDS, task_kind, task_name,  # noqa: F401
                                        timeout_seconds)
from engine.workflows.subset import Checker


@dataclass(frozen=True)
class Workflow:
    """A checked workflow definition (build it with :func:`load`)."""

    document: dict
    #: per task list (by id()), the index of each task name — the interpreter's jump table
    _indexes: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def dsl(self) -> str:
        return self.document["document"]["dsl"]

    @property
    def name(self) -> str:
        return self.document["document"]["name"]

    @property
    def namespace(self) -> str:
        return self.document["document"]["namespace"]

    @property
    def version(self) -> str:
        return self.document["document"]["version"]

    @property
    def input(self) -> dict:
        """The workflow's ``input`` section (``schema``, ``from``), or ``{}``."""
        return self.document.get("input") or {}

    @property
    def output(self) -> dict:
        """The workflow's ``output`` section (``schema``, ``as``), or ``{}``."""
        return self.document.get("output") or {}

    @property
    def input_schema(self) -> dict | None:
        """The JSON Schema the raw input must satisfy, if any."""
        return (self.input.get("schema") or {}).get("document")

    @property
    def output_schema(self) -> dict | None:
        return (self.output.get("schema") or {}).get("document")

    @property
    def schedule(self) -> dict | None:
        """The ``schedule`` section (``cron``, ``every``, ``after``, ``on``), if any."""
        return self.document.get("schedule")

    @property
    def uses(self) -> dict:
        """The ``use`` section: ``functions``, ``errors``, ``retries``, ``secrets``, …"""
        return self.document.get("use") or {}

    @property
    def secrets(self) -> list[str]:
        """The secret names the workflow declares under ``use.secrets``."""
        return list(self.uses.get("secrets") or [])

    @property
    def functions(self) -> dict:
        return self.uses.get("functions") or {}

    @property
    def timeout(self) -> float | None:
        """The workflow's timeout in seconds, if any."""
        return timeout_seconds(self.document.get("timeout"), self.uses)

    def index(self, tasks: list) -> dict[str, int]:
        """The position of each task name in the task list ``tasks`` (a list of this
        document)."""
        key = id(tasks)
        found = self._indexes.get(key)
        if found is None:
            found = self._indexes[key] = {task_name(item): i for i, item in enumerate(tasks)}
        return found


_CALL_TITLES = {"CallAsyncAPI": "asyncapi", "CallGRPC": "grpc", "CallHTTP": "http",
                "CallOpenAPI": "openapi", "CallA2A": "a2a", "CallMCP": "mcp",
                "CallFunction": "*"}


@lru_cache(maxsize=1)
def _validators():
    """The schema's validators: the document with task lists left shallow, and one per
    task kind (and per call kind). Validating each task against its own kind's schema
    once, instead of the schema's ``oneOf`` over every kind at every depth, keeps a
    1,000-task document to well under a second."""
    text = resources.files("engine.workflows").joinpath("schema/workflow.yaml").read_text()
    schema = yaml12.load(text)  # the schema has an `on` property (schedule.on)
    shallow = copy.deepcopy(schema)
    shallow["$defs"]["taskList"]["items"]["additionalProperties"] = {"type": "object"}
    root = jsonschema.Draft202012Validator(shallow)
    base = schema["$id"]
    kinds = {k: root.evolve(schema={"$ref": f"{base}#/$defs/{k}Task"})
             for k in TASK_KINDS if k != "call"}
    calls = {_CALL_TITLES[alt["title"]]: root.evolve(
                 schema={"$ref": f"{base}#/$defs/callTask/oneOf/{i}"})
             for i, alt in enumerate(schema["$defs"]["callTask"]["oneOf"])}
    return root, kinds, calls


def load(document: dict) -> Workflow:
    """Check ``document`` and return the :class:`Workflow`; raises ``InvalidInput``
    whose message starts with the JSON path of the first problem found."""
    if not isinstance(document, dict):
        raise InvalidInput("/: a workflow definition must be an object")
    document = copy.deepcopy(document)
    checker = Checker(document)
    checker.check_structure()
    root, kinds, calls = _validators()
    error = _best(root.iter_errors(document))
    if error is not None:
        raise InvalidInput(f"{_pointer(error.absolute_path)}: {error.message}")
    for path, task in checker.tasks():
        kind = task_kind(task)
        validator = (calls.get(task["call"], calls["*"]) if kind == "call" else kinds[kind])
        error = _best(validator.iter_errors(task))
        if error is not None:
            where = _pointer(error.absolute_path) if error.absolute_path else ""
            raise InvalidInput(f"{path}{where}: {error.message}")
    checker.check()
    return Workflow(document)


def _best(errors) -> jsonschema.ValidationError | None:
    """The most telling schema error: a property "not evaluated" only because its own
    value was invalid says less than that value's error."""
    errors = list(errors)
    telling = [e for e in errors if e.validator != "unevaluatedProperties"]
    return jsonschema.exceptions.best_match(telling or errors)


def _pointer(path) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)
