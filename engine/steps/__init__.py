"""The run pipeline: steps around a function call, as Dispatch's middleware chain
``Validator ∘ SecretInjector ∘ Runnable``. Each step lives in its own module."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..drivers.base import Outcome
from ..entities import Entity


@dataclasses.dataclass
class Call:
    """One invocation on its way to the driver: steps may read and enrich it."""

    run: Entity
    #: the function version the run executes (its spec: schema, secrets, …)
    function: Entity
    context: dict[str, Any]
    payload: Any


class StepError(Exception):
    """Stops the call before (or fails it after) the function: becomes ``run.error``.

    :param type: Dispatch's error type, ``InputError`` or ``FunctionError``.
    """

    def __init__(self, type: str, message: str):
        super().__init__(message)
        self.type, self.message = type, message

    def as_error(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "stacktrace": []}


class Step:
    """A stage of the pipeline; both hooks do nothing unless overridden."""

    def before(self, call: Call) -> None:
        """Called before the function runs; may enrich ``call`` or raise StepError."""

    def after(self, call: Call, outcome: Outcome) -> None:
        """Called after a successful call; may raise StepError to fail the run."""


def run_pipeline(steps: list[Step], call: Call, invoke) -> Outcome:
    """``before`` in order, ``invoke(call)``, then ``after`` in reverse order.

    A StepError before the call means the function never runs; after it, the
    function's logs are kept and its output dropped.
    """
    try:
        for step in steps:
            step.before(call)
    except StepError as error:
        return Outcome(error=error.as_error())
    outcome = invoke(call)
    if outcome.error is None:
        try:
            for step in reversed(steps):
                step.after(call, outcome)
        except StepError as error:
            return Outcome(logs=outcome.logs, error=error.as_error(),
                           cold_start_ms=outcome.cold_start_ms)
    return outcome
