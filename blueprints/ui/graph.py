"""An execution's graph: the definition's tasks as nested nodes (``do`` in order, ``fork``
branches side by side, ``for``/``try`` bodies inside), each with the status of its latest
history entry, matched by the task's JSON pointer ``reference``."""

from __future__ import annotations

import dataclasses
from typing import Any

@dataclasses.dataclass
class Node:
    name: str
    reference: str
    kind: str
    status: str = "pending"
    entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: nested sequences (a fork's branches are several; a do, for or try body one)
    children: list[list["Node"]] = dataclasses.field(default_factory=list)
    parallel: bool = False
    #: a caption per child sequence (a try's "try" and "catch"), else empty
    labels: list[str] = dataclasses.field(default_factory=list)


def _kind(task: dict[str, Any]) -> str:
    for key in ("call", "do", "fork", "for", "try", "switch", "set", "wait", "emit",
                "listen", "raise", "run"):
        if key in task:
            return key
    return "task"


def _sequence(tasks: Any, base: str, history: dict[str, list[dict]]) -> list[Node]:
    nodes = []
    if not isinstance(tasks, list):
        return nodes
    for index, item in enumerate(tasks):
        if not isinstance(item, dict) or len(item) != 1:
            continue
        (name, task), = item.items()
        if not isinstance(task, dict):
            continue
        reference = f"{base}/{index}/{name}"
        node = Node(name, reference, _kind(task))
        entries = history.get(reference, [])
        node.entries = entries
        if entries:
            node.status = entries[-1].get("status") or "running"
        if "fork" in task and isinstance(task["fork"], dict):
            node.parallel = True
            # each branch is its own one-task sequence, at its own index
            node.children = [
                _sequence_at(branch, f"{reference}/fork/branches", i, history)
                for i, branch in enumerate(task["fork"].get("branches") or [])]
        elif "do" in task:
            node.children = [_sequence(task["do"], f"{reference}/do", history)]
        elif "for" in task:
            node.children = [_sequence(task.get("do"), f"{reference}/do", history)]
        elif "try" in task:
            node.children = [_sequence(task["try"], f"{reference}/try", history)]
            handler = (task.get("catch") or {}).get("do")
            if handler:
                node.children.append(_sequence(handler, f"{reference}/catch/do", history))
                node.labels = ["try", "catch"]
        nodes.append(node)
    return nodes


def _sequence_at(item: Any, base: str, index: int, history) -> list[Node]:
    """One fork branch (``{name: task}`` at ``index``) as a sequence of one node."""
    return _sequence([None] * index + [item], base, history)


def task_graph(definition: dict[str, Any], tasks: list[dict[str, Any]]) -> list[Node]:
    """The top-level sequence of the definition's tasks with their statuses."""
    history: dict[str, list[dict]] = {}
    for entry in tasks or ():
        if isinstance(entry, dict) and entry.get("reference"):
            history.setdefault(entry["reference"], []).append(entry)
    return _sequence(definition.get("do"), "/do", history)
