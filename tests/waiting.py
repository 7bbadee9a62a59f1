"""Waiting in tests for what happens in the background (a watch-fed cache catching up, a
server listening, a process ending): poll until it holds. The limit is no speed bound —
it only keeps something broken from hanging the suite — so it is generous, and a loaded
machine passes as a quiet one does."""

from __future__ import annotations

import threading
from typing import Callable

#: how long a condition may take before the test fails
PATIENCE_SECONDS = 60.0


def settles(condition: Callable[[], object], what: str,
            seconds: float = PATIENCE_SECONDS, interval: float = 0.02) -> object:
    """``condition()``'s first true value; AssertionError(``what``) if it never comes."""
    tick = threading.Event()
    for _ in range(max(1, int(seconds / interval))):
        value = condition()
        if value:
            return value
        tick.wait(interval)
    raise AssertionError(what)


def raises(exc_type: type[BaseException], call: Callable[[], object]) -> bool:
    """Whether ``call()`` raises ``exc_type`` (for :func:`settles`)."""
    try:
        call()
    except exc_type:
        return True
    return False
