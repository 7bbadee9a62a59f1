"""Stem cells: function-server processes started before any function needs them.

OpenWhisk's answer to cold starts: a pre-warmed container per runtime that receives its
code at ``/init``. Here a stem cell is a sandboxed function server (:mod:`.instance`)
started with everything of a launch but the function — the same sandbox, cgroups and
limits, an empty function directory of its own, no handler. A cold start then takes one,
fills its directory with the version's files and has it load the handler
(:meth:`.Instance.become`): the interpreter's and the sandbox's start-up are already paid.
A cell is used once, for one function version, and is that version's instance from then
on; nothing of one function ever runs in a cell another function had.

Cells are kept per launch (:func:`launch_key`: everything of a :class:`.LaunchSpec` but
the handler and the source), ``per_launch`` of each, refilled by a thread in the
background. A launch is learnt from its first cold start (that one starts the usual
way), and forgotten, its cells stopped, once no cold start has wanted it for
``idle_seconds``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from ..errors import BuildError
from .instance import Instance, LaunchSpec

log = logging.getLogger("dispatch.driver.stemcells")


def launch_key(spec: LaunchSpec) -> tuple:
    """What cells of ``spec`` share with every other version launched alike: every field
    but the handler and the source (objects by identity: one driver's runtimes and
    cgroups are its own)."""
    return tuple(value if isinstance(value, (str, int, float, bool, tuple, type(None)))
                 else ("id", id(value))
                 for field in dataclasses.fields(spec) if field.name not in ("handler", "src_dir")
                 for value in [getattr(spec, field.name)])


class StemCells:
    """Ready cells per launch key, and the thread that keeps them ready.

    :param start: starts a cell for a launch spec (``start_instance(..., stem=True)``)
    """

    def __init__(self, start: Callable[[LaunchSpec], Instance], *, per_launch: int,
                 idle_seconds: float):
        self._start = start
        self._per_launch = per_launch
        self._idle_s = idle_seconds
        self._lock = threading.Lock()
        self._ready: dict[tuple, list[Instance]] = {}
        self._wanted: dict[tuple, float] = {}
        #: a launch spec per key, to start its cells from
        self._specs: dict[tuple, LaunchSpec] = {}
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._fill, name="dispatch-stem-cells", daemon=True)
        self._thread.start()

    def take(self, spec: LaunchSpec) -> Instance | None:
        """A ready cell for ``spec``'s launch, or None (then start the usual way)."""
        key = launch_key(spec)
        cell = None
        with self._lock:
            if self._closed:
                return None
            self._wanted[key] = time.monotonic()
            self._specs[key] = spec
            cells = self._ready.setdefault(key, [])
            while cells and cell is None:
                candidate = cells.pop(0)  # the oldest first: its idle time is the longest
                if candidate.alive():
                    cell = candidate
                else:
                    candidate.stop()
        self._wake.set()
        return cell

    def ready(self) -> int:
        """How many cells are waiting, over every launch."""
        with self._lock:
            return sum(len(cells) for cells in self._ready.values())

    def close(self) -> None:
        """Stop the refilling and every waiting cell."""
        with self._lock:
            self._closed = True
            cells = [cell for group in self._ready.values() for cell in group]
            self._ready.clear()
        self._wake.set()
        self._thread.join(timeout=30)
        for cell in cells:
            cell.stop()

    def _fill(self) -> None:
        while True:
            self._wake.wait(timeout=max(1.0, min(self._idle_s / 4, 30.0)))
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                forgotten = [key for key, at in self._wanted.items() if now - at > self._idle_s]
                stale = []
                for key in forgotten:
                    del self._wanted[key]
                    del self._specs[key]
                    stale += self._ready.pop(key, [])
                short = [(key, self._specs[key]) for key in self._wanted
                         if len(self._ready.get(key, ())) < self._per_launch]
            for cell in stale:
                cell.stop()
            for key, spec in short:
                try:
                    cell = self._start(spec)
                except BuildError as exc:  # the launch itself cannot start: the next take retries
                    log.warning("stem_cell.failed reason=%r", exc.message)
                    continue
                with self._lock:
                    if self._closed or key not in self._wanted:
                        cell_to_stop = cell
                    else:
                        self._ready.setdefault(key, []).append(cell)
                        cell_to_stop = None
                        if len(self._ready[key]) < self._per_launch:
                            self._wake.set()  # more to start for this launch
                if cell_to_stop is not None:
                    cell_to_stop.stop()


__all__ = ["StemCells", "launch_key"]
