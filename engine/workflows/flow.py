"""Flow control shared by the interpreter and the task kinds: scopes and signals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


class Waiting(Exception):
    """The flow needs an activity result that is not recorded yet."""


class End(Exception):
    """``then: end``: the workflow ends gracefully with ``output``."""

    def __init__(self, output: Any):
        super().__init__("end")
        self.output = output


@dataclass(frozen=True)
class Scope:
    """Where in the execution a task runs: qualifiers, attempt and scope variables."""

    qualifiers: tuple = ()
    attempt: int = 1
    in_try: bool = False
    variables: Mapping[str, Any] = field(default_factory=dict)

    def instance(self, reference: str) -> str:
        quals = f"[{','.join(self.qualifiers)}]" if self.qualifiers else ""
        return f"{reference}{quals}#{self.attempt}"

    def iteration(self, qualifier: str, variables: Mapping[str, Any] | None = None) -> Scope:
        merged = {**self.variables, **variables} if variables else self.variables
        return Scope(self.qualifiers + (qualifier,), self.attempt, self.in_try, merged)

    def try_attempt(self, attempt: int) -> Scope:
        quals = self.qualifiers + ((f"try={self.attempt}",) if self.in_try else ())
        return Scope(quals, attempt, True, self.variables)

    def with_variables(self, variables: Mapping[str, Any]) -> Scope:
        return Scope(self.qualifiers, self.attempt, self.in_try,
                     {**self.variables, **variables})


def truthy(value: Any) -> bool:
    """jq's truthiness: everything but ``false`` and ``null``."""
    return value is not None and value is not False


