"""Waiting for an entity to settle (``READY`` or ``ERROR``), with a spinner on a terminal.

Create and update commands return once the server has taken the change, as Dispatch's
CLI did: scripts then poll ``get KIND NAME`` for ``READY`` or ``ERROR``. ``--wait``
(:data:`wait_option`) waits here instead, showing progress, and exits non-zero when the
entity ends in ``ERROR``.
"""

from __future__ import annotations

import itertools
import sys
import time
from typing import Any, Callable, TextIO

import click

from engine.entities import ERROR, SETTLED

#: how often to ask the server again; short, since a warm create takes well under a second
POLL_INTERVAL_S = 0.2

#: the kinds that settle after a create or an update, as messages name them
KIND_WORDS = {"Function": "function", "Image": "image", "BaseImage": "base image",
              "Subscription": "subscription", "Driver": "event driver", "API": "api"}
#: how long a kind may take to settle before the CLI stops waiting: builds may install
#: dependencies (pip, npm, docker), so those are generous
WAIT_SECONDS = {"Function": 300.0, "Image": 900.0, "BaseImage": 900.0}
DEFAULT_WAIT_SECONDS = 120.0

#: ``--wait`` of the create and update commands
wait_option = click.option(
    "--wait", is_flag=True,
    help="Wait until it is READY, showing progress; exit 1 if it ends in ERROR.")
#: ``--no-wait``, the opt-out of when these commands waited by default: still accepted
no_wait_option = click.option("--no-wait", is_flag=True, hidden=True, expose_value=False)


def wait_options(f: Callable) -> Callable:
    """Add ``--wait`` (and the hidden, now idle ``--no-wait``) to a command."""
    return wait_option(no_wait_option(f))


def settled(client: Any, kind: str, entity: dict[str, Any], doing: str,
            wait: bool) -> dict[str, Any]:
    """``entity`` as the server answered, or, with ``wait``, once it is READY.

    :param doing: ``Creating`` or ``Updating``, for the progress line
    :raises click.ClickException: waited, and it ended in ERROR (the message has the
        reasons)
    """
    if not wait:
        return entity
    entity = wait_settled(client, kind, entity.get("name") or "", doing)
    failure = settle_failure(entity, kind)
    if failure:
        raise click.ClickException(failure)
    return entity


def fetcher(client: Any, kind: str, name: str) -> Callable[[], dict[str, Any]]:
    """How to read entity ``name`` of ``kind`` again."""
    get = {"Function": client.get_function, "Image": client.get_image,
           "BaseImage": client.get_base_image, "Subscription": client.get_subscription,
           "Driver": client.get_driver, "API": client.get_api}[kind]
    return lambda: get(name)


def wait_settled(client: Any, kind: str, name: str, doing: str) -> dict[str, Any]:
    """Poll the entity until READY or ERROR, showing ``<doing> <kind> <name>``."""
    return wait_until_settled(fetcher(client, kind, name), f"{doing} {KIND_WORDS[kind]} {name}",
                              WAIT_SECONDS.get(kind, DEFAULT_WAIT_SECONDS))


def settle_failure(entity: dict[str, Any], kind: str | None = None) -> str | None:
    """``<kind> NAME failed: REASONS`` if the entity ended in ERROR, else None."""
    if entity.get("status") != ERROR:
        return None
    kind = kind or entity.get("kind") or ""
    word = KIND_WORDS.get(kind, str(kind or "entity").lower())
    reasons = "; ".join(entity.get("reason") or []) or "no reason given"
    return f"{word} {entity.get('name')} failed: {reasons}"


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
