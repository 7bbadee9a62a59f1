"""The shape of a workflow document: task kinds, task lists and their JSON paths."""

from __future__ import annotations

from typing import Any, Iterator

from engine.workflows import durations

#: task kinds, in the order a task's kind is recognized (``for`` before ``do``)
TASK_KINDS = ("call", "for", "do", "fork", "emit", "listen", "raise", "run", "set",
              "switch", "try", "wait")


def task_name(item: dict) -> str:
    """The name of a task list entry ``{name: task}``."""
    return next(iter(item))


def task_kind(task: dict) -> str | None:
    """The kind of a task definition (``"call"``, ``"for"``, …)."""
    for kind in TASK_KINDS:
        if kind in task:
            return kind
    return None


def timeout_seconds(timeout: Any, uses: dict) -> float | None:
    """Seconds of a ``timeout`` value (inline, or the name of one under
    ``use.timeouts``)."""
    if timeout is None:
        return None
    if isinstance(timeout, str):
        timeout = (uses.get("timeouts") or {}).get(timeout)
        if timeout is None:
            return None
    return durations.seconds(timeout["after"])


def children(task: dict, path: str) -> Iterator[tuple[Any, str]]:
    """The task lists directly inside ``task`` and their JSON paths."""
    kind = task_kind(task)
    if kind in ("do", "for"):
        yield task.get("do"), f"{path}/do"
    elif kind == "fork" and isinstance(task.get("fork"), dict):
        yield task["fork"].get("branches"), f"{path}/fork/branches"
    elif kind == "try":
        yield task.get("try"), f"{path}/try"
        catch = task.get("catch")
        if isinstance(catch, dict) and "do" in catch:
            yield catch["do"], f"{path}/catch/do"
    elif kind == "listen" and isinstance(task.get("foreach"), dict) and "do" in task["foreach"]:
        yield task["foreach"]["do"], f"{path}/foreach/do"
