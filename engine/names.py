"""Entity names: one rule for every kind, checked in one place.

A name is what Dispatch's Go pattern ``^[\\w\\d][\\w\\d\\-]*$`` allows — ASCII letters,
digits, underscores and dashes, not starting with a dash — matched against the whole
string (a trailing newline is refused), and at most :data:`NAME_MAX` characters: a
Kubernetes DNS label's 63, so that a name fits in a URL segment, a container or action
name and a log line. It holds for functions, runs, secrets, images, base images, APIs,
subscriptions, event drivers and their types, organizations, service accounts and
policies. Event drivers (which become process and container names) are in addition
lower-case only.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidInput

#: the longest name of any entity kind (a Kubernetes DNS label's limit)
NAME_MAX = 63

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*")
NAME_MESSAGE = (
    "should start with letter or number and may only contain letters, numbers, "
    "underscores and dashes"
)
LOWER_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9\-]*")
LOWER_NAME_MESSAGE = (
    "must start with a lower-case letter or a number and may only contain lower-case "
    "letters, numbers and dashes"
)


def is_name(value: Any) -> bool:
    """Whether ``value`` is a well-formed name (a malformed one names nothing stored)."""
    return (isinstance(value, str) and 0 < len(value) <= NAME_MAX
            and NAME_PATTERN.fullmatch(value) is not None)


def validate_name(name: Any, field: str = "name", *, lower: bool = False) -> str:
    """``name`` if it is a well-formed name, else :class:`InvalidInput` naming ``field``.

    :param lower: lower-case letters only (event drivers)
    """
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{field} is required")
    if len(name) > NAME_MAX:
        raise InvalidInput(f"{field} {name[:NAME_MAX]!r}... is {len(name)} characters long, "
                           f"over the limit of {NAME_MAX}")
    pattern, message = ((LOWER_NAME_PATTERN, LOWER_NAME_MESSAGE) if lower
                        else (NAME_PATTERN, NAME_MESSAGE))
    if not pattern.fullmatch(name):
        raise InvalidInput(f"{field} {name!r} {message}")
    return name


def validate_names(value: Any, field: str = "secrets") -> list[str]:
    """A list of names (``None``: none), each checked as :func:`validate_name` does;
    the message names the list and the position: ``secrets[1] 'a b' should …``."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{field} must be a list of names")
    return [validate_name(item, f"{field}[{i}]") for i, item in enumerate(value)]


__all__ = ["NAME_MAX", "NAME_MESSAGE", "NAME_PATTERN", "is_name", "validate_name",
           "validate_names"]
