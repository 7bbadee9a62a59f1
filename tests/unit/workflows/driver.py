"""A fake host for interpreter tests: answers activities at a fake clock and replays."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

from engine.workflows.definition import Workflow, load
from engine.workflows.interpreter import Activity, ActivityResult, Limits, Outcome, interpret
from engine.workflows.problems import error_type

START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
RUNTIME = {"name": "dispatch", "version": "test", "metadata": {"organization": "o"},
           "execution": {"id": "exec-1", "name": "e", "startedAt": "2026-01-01T00:00:00Z"}}


def document(do: list, **top) -> dict:
    """A workflow document with ``do`` and any other top-level sections."""
    return {"document": {"dsl": "1.0.3", "namespace": "test", "name": "wf",
                         "version": "0.1.0"}, "do": do, **top}


def iso(when: dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass
class Fail:
    """An answer that fails the activity with Problem Details."""

    error: dict


def communication(status: int, detail: str = "failed") -> Fail:
    return Fail({"type": error_type("communication"), "status": status, "title": "HTTP",
                 "detail": detail})


class Host:
    """Answers each pending activity with ``answer(activity)`` — a value, a
    :class:`Fail`, or ``None`` to leave it pending — and replays until the execution
    settles. Each answer starts at the fake clock and lasts ``duration(activity)``
    seconds (timers: their seconds; others: 1 s by default)."""

    def __init__(self, definition: dict | Workflow, input: Any = None,
                 answer: Callable[[Activity], Any] = lambda a: None, *,
                 secrets: dict | None = None, limits: Limits = Limits(),
                 duration: Callable[[Activity], float] | None = None):
        self.workflow = definition if isinstance(definition, Workflow) else load(definition)
        self.input = input
        self.answer = answer
        self.secrets = secrets or {}
        self.limits = limits
        self.duration = duration or (lambda a: a.spec["seconds"] if a.kind == "timer" else 1.0)
        self.clock = START
        self.results: dict[str, ActivityResult] = {}
        self.history: list[dict] = []
        self.asked: list[Activity] = []
        self.outcome: Outcome | None = None

    def replay(self, cancelled: bool = False) -> Outcome:
        self.outcome = interpret(self.workflow, self.input, self.results,
                                 previous_history=self.history, now=self.clock,
                                 runtime=RUNTIME, secrets=self.secrets, cancelled=cancelled,
                                 limits=self.limits)
        self.history = self.outcome.history
        return self.outcome

    def record(self, activity: Activity, answer: Any, *, started: dt.datetime | None = None,
               seconds: float | None = None) -> None:
        started = started or self.clock
        seconds = self.duration(activity) if seconds is None else seconds
        finished = started + dt.timedelta(seconds=seconds)
        if isinstance(answer, Fail):
            result = ActivityResult(activity.id, False, error=answer.error,
                                    started=iso(started), finished=iso(finished))
        else:
            result = ActivityResult(activity.id, True, value=answer, started=iso(started),
                                    finished=iso(finished))
        self.results[activity.id] = result

    def step(self) -> bool:
        """Replay once and answer what is newly pending; whether anything was answered."""
        outcome = self.replay()
        answered = []
        for activity in outcome.pending:
            if activity.id in self.results:
                continue
            if activity.id not in [a.id for a in self.asked]:
                self.asked.append(activity)
            value = self.answer(activity)
            if value is None:
                continue
            seconds = self.duration(activity)
            self.record(activity, value, seconds=seconds)
            answered.append(seconds)
        if answered:
            self.clock += dt.timedelta(seconds=max(answered))
        return bool(answered)

    def run(self, max_steps: int = 500) -> Outcome:
        for _ in range(max_steps):
            if not self.step():
                break
        return self.replay()


def run(definition: dict | Workflow, input: Any = None, answer=lambda a: None,
        **kwargs) -> Outcome:
    return Host(definition, input, answer, **kwargs).run()


def echo(activity: Activity) -> Any:
    """Answer functions with their input, timers and emits with null-ish values."""
    if activity.kind == "function":
        return {"echo": activity.spec["input"]}
    if activity.kind == "timer":
        return True
    return {"kind": activity.kind}
