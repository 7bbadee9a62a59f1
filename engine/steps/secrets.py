"""Secret injection: the function's and the run's named secrets, merged into
``ctx["secrets"]`` at run time. Values exist only in the call's context: never in the
run record, its logs or its errors."""

from __future__ import annotations

from typing import Callable

from ..errors import DispatchError
from . import Call, Step, StepError

#: resolves (org, names) to the merged key/values; raises for a missing secret
Resolver = Callable[[str, list[str]], dict[str, str]]


class SecretInjection(Step):
    """A missing secret is an ``InputError`` naming it; the function does not run."""

    def __init__(self, resolve: Resolver):
        self.resolve = resolve

    def before(self, call: Call) -> None:
        names = list(dict.fromkeys(call.run.get("secrets") or []))  # de-duplicated, ordered
        if not names:
            return
        try:
            call.context["secrets"] = self.resolve(call.run["organizationId"], names)
        except DispatchError as error:
            raise StepError("InputError", error.message) from None
