"""The DSL's errors: RFC 7807 Problem Details with the spec's standard types.

An error that a task raises is a :class:`WorkflowFault` carrying the Problem Details
dict (``type``, ``status``, ``title``, ``detail``, ``instance``); ``try``/``catch``
matches on that dict, and an uncaught one becomes the execution's ``error``. The
``instance`` is always the JSON pointer of the task the error comes from.
"""

from __future__ import annotations

from typing import Any

ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"

#: the spec's standard error types and their default status
STANDARD = {
    "configuration": 400,
    "validation": 400,
    "expression": 400,
    "authentication": 401,
    "authorization": 403,
    "timeout": 408,
    "communication": 500,
    "runtime": 500,
}

TITLES = {
    "configuration": "Configuration error",
    "validation": "Validation error",
    "expression": "Expression error",
    "authentication": "Authentication error",
    "authorization": "Authorization error",
    "timeout": "Timeout",
    "communication": "Communication error",
    "runtime": "Runtime error",
}


def error_type(kind: str) -> str:
    """The URI of the standard error type ``kind`` (``"timeout"`` → ``…/errors/timeout``)."""
    return ERRORS + kind


def problem(kind: str, detail: str, instance: str, *, status: int | None = None,
            title: str | None = None) -> dict:
    """Problem Details of the standard type ``kind``."""
    return {
        "type": error_type(kind),
        "status": STANDARD[kind] if status is None else status,
        "title": title or TITLES[kind],
        "detail": detail,
        "instance": instance,
    }


class WorkflowFault(Exception):
    """A task raised an error (catchable by ``try``); ``.error`` is the Problem Details."""

    def __init__(self, error: dict):
        super().__init__(error.get("detail") or error.get("title") or error.get("type"))
        self.error = error


class LimitExceeded(Exception):
    """An execution went past one of its :class:`Limits`; never caught by ``try``."""

    def __init__(self, error: dict):
        super().__init__(error["detail"])
        self.error = error


def fault(kind: str, detail: str, instance: str, **kwargs: Any) -> WorkflowFault:
    """A :class:`WorkflowFault` of the standard type ``kind``."""
    return WorkflowFault(problem(kind, detail, instance, **kwargs))


def normalized(error: Any, instance: str) -> dict:
    """Problem Details from whatever an activity recorded, with ``type``, ``status`` and
    ``instance`` always set (instance defaults to the task's reference)."""
    if not isinstance(error, dict):
        error = {"detail": str(error) if error is not None else None}
    out = dict(error)
    out.setdefault("type", error_type("runtime"))
    if not isinstance(out.get("status"), int):
        kind = out["type"].rsplit("/", 1)[-1] if out["type"].startswith(ERRORS) else "runtime"
        out["status"] = STANDARD.get(kind, 500)
    if not out.get("instance"):
        out["instance"] = instance
    return {k: v for k, v in out.items() if v is not None}
