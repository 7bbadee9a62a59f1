"""Upper bounds on what a client may send, in one place (the README lists them).

Every bound is refused with :class:`~engine.errors.InvalidInput` naming the field and the
limit, before anything is stored: a 400, never a 500 or a server out of memory.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InvalidInput

#: the deepest nesting of arrays and objects in a JSON body or a run's input
JSON_DEPTH_MAX = 100
#: a function's ``timeout`` in milliseconds: 15 minutes (a worker's job limit is an hour)
TIMEOUT_MAX_MS = 15 * 60 * 1000
#: a function's ``concurrency``: instances at once
CONCURRENCY_MAX = 256
#: ``limit`` of a list request
LIST_LIMIT_MAX = 10_000
#: the largest stored run (its input, output, logs and error together, as JSON): under
#: etcd's default request limit of 1.5 MiB with room for the key and the transaction
RUN_RECORD_MAX_BYTES = 1_310_720
#: ``since`` (Unix seconds) and other times given by a client: within ± the year 10000
TIME_MAX = 253_402_300_799


def load_json(data: bytes | str, what: str = "request body") -> Any:
    """Parse untrusted JSON; :class:`InvalidInput` if it is not JSON or nests deeper than
    :data:`JSON_DEPTH_MAX` (Python's parser would otherwise raise ``RecursionError``)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise InvalidInput(depth_message(what)) from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{what} is not json") from None
    return check_depth(value, what)


def depth_message(what: str) -> str:
    return f"{what} nests arrays and objects deeper than {JSON_DEPTH_MAX} levels"


def check_depth(value: Any, what: str = "request body") -> Any:
    """``value`` if its arrays and objects nest at most :data:`JSON_DEPTH_MAX` deep
    (checked without recursion), else :class:`InvalidInput`."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > JSON_DEPTH_MAX:
            raise InvalidInput(depth_message(what))
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list, tuple)))
    return value


def check_count(value: Any, field: str, maximum: int, unit: str = "") -> int:
    """A whole number in ``0..maximum`` (``None`` and ``0``: 0), else :class:`InvalidInput`
    naming ``field`` and the bound."""
    value = value or 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{field} must be a non-negative number{unit and ' of ' + unit}")
    if value > maximum:
        raise InvalidInput(f"{field} must be at most {maximum}{unit and ' ' + unit}")
    return value


__all__ = ["CONCURRENCY_MAX", "JSON_DEPTH_MAX", "LIST_LIMIT_MAX", "RUN_RECORD_MAX_BYTES",
           "TIMEOUT_MAX_MS",
           "TIME_MAX", "check_count", "check_depth", "load_json"]
