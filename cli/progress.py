"""Waiting for an entity to settle (``READY`` or ``ERROR``), with a spinner on a terminal."""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any, Callable, TextIO

import click

from engine.entities import SETTLED

#: how often to ask the server again; short, since a warm create takes well under a second
POLL_INTERVAL_S = 0.2


class Spinner:
    """A one-line ``label… STATUS |`` indicator on ``stream``, drawn only on a terminal.

    Off a terminal (pipes, CI logs) it prints nothing, so the output stays a clean record
    of results; the caller prints the outcome either way.
    """

    FRAMES = "|/-\\"

    def __init__(self, label: str, stream: TextIO | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = _isatty(self.stream)
        self._frames = itertools.cycle(self.FRAMES)
        self._width = 0

    def update(self, status: str) -> None:
        """Redraw the line with the latest status."""
        if not self.enabled:
            return
        line = f"{self.label}... {status} {next(self._frames)}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = max(self._width, len(line))

    def clear(self) -> None:
        """Erase the line, so the outcome prints on a clean one."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> "Spinner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.clear()


def wait_until_settled(
    fetch: Callable[[], dict[str, Any]],
    label: str,
    timeout_s: float,
) -> dict[str, Any]:
    """Call ``fetch`` until the entity it returns is ``READY`` or ``ERROR``; return it.

    The REST API offers no watch, so this polls; the wait is capped by ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    with Spinner(label) as spinner:
        while True:
            entity = fetch()
            status = entity.get("status", "")
            if status in SETTLED:
                return entity
            if time.monotonic() >= deadline:
                spinner.clear()
                raise click.ClickException(
                    f"{entity.get('kind', 'entity')} {entity.get('name')} is still {status} "
                    f"after {timeout_s:g} s; it may yet settle"
                )
            spinner.update(status)
            time.sleep(POLL_INTERVAL_S)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
