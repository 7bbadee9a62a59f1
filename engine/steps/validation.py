"""Schema validation: a function's ``schema.in`` checks its input, ``schema.out`` its
output, with any JSON Schema draft ``jsonschema`` knows ($schema picks it)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, best_match

from ..drivers.base import Outcome
from ..errors import InvalidInput
from . import Call, Step, StepError


def check_schema(schema: Any, field: str) -> None:
    """Refuse (InvalidInput naming ``field``) anything that is not a valid JSON Schema."""
    if schema is None:
        return
    if not isinstance(schema, (dict, bool)):
        raise InvalidInput(f"{field} must be a JSON Schema object")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except SchemaError as error:
        raise InvalidInput(f"{field} is not a valid JSON Schema: {_describe(error)}") from None


def _describe(error: jsonschema.ValidationError | SchemaError) -> str:
    path = error.json_path if hasattr(error, "json_path") else "$"
    return f"{path}: {error.message}"


class SchemaValidation(Step):
    """Input invalid → ``InputError``; output invalid → ``FunctionError``; each message
    names the failing path (``$.name: 'name' is a required property``)."""

    #: compiled validators kept per process; past it the least recently used goes (a
    #: retired version's are never used again, and retirement happens in another process)
    MAX_VALIDATORS = 1024

    def __init__(self, max_validators: int = MAX_VALIDATORS) -> None:
        # compiled validators by (function version, direction): a schema changes only
        # with a new version, so each is compiled once per process while it is used
        self._validators: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._max = max_validators
        self._lock = threading.Lock()

    def _validator(self, function: dict, direction: str):
        schema = (function.get("schema") or {}).get(direction)
        if schema is None:
            return None
        cache_key = (function.get("faasId", ""), direction)
        with self._lock:
            validator = self._validators.get(cache_key)
            if validator is None:
                cls = jsonschema.validators.validator_for(schema)
                validator = self._validators[cache_key] = cls(schema)
                if len(self._validators) > self._max:
                    self._validators.popitem(last=False)
            else:
                self._validators.move_to_end(cache_key)
        return validator

    def before(self, call: Call) -> None:
        self._check(call.function, "in", call.payload, "InputError", "Input")

    def after(self, call: Call, outcome: Outcome) -> None:
        self._check(call.function, "out", outcome.payload, "FunctionError", "Output")

    def _check(self, function: dict, direction: str, value: Any, error_type: str,
               what: str) -> None:
        validator = self._validator(function, direction)
        if validator is None:
            return
        error = best_match(validator.iter_errors(value))
        if error is not None:
            raise StepError(error_type, f"{what} invalid against schema: {_describe(error)}")
