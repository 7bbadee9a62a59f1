"""The deterministic replay interpreter (skeleton: the interface is final)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class Activity:
    """A piece of work with side effects or waiting that the execution asks the host for."""

    id: str
    kind: str
    reference: str
    spec: dict


@dataclass(frozen=True)
class ActivityResult:
    """The recorded result of one activity attempt."""

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
    """Bounds on one execution; exceeding one faults it with a runtime error."""

    max_history: int = 10_000
    max_state_bytes: int = 4 * 1024 * 1024
    max_branches: int = 10_000
    max_iterations: int = 10_000


def interpret(workflow, input: Any, results: Mapping[str, ActivityResult], *,
              previous_history: Sequence[dict] = (), now: datetime, runtime: dict,
              secrets: Mapping[str, Any] = {}, cancelled: bool = False,
              limits: Limits = Limits()) -> Outcome:
    """Replay ``workflow`` on ``input`` over the recorded ``results``."""
    raise NotImplementedError("interpreter under construction")
