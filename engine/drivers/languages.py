"""How the ``local`` driver starts each language's function server: one table.

Every server (``engine/runtimes/<language>/``) takes the same command line and speaks
the same protocol; what differs is the interpreter, its options and environment, how
the server captures output, and what running out of memory looks like.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from typing import Callable

_RUNTIMES_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "runtimes")


@dataclasses.dataclass(frozen=True)
class LanguageRuntime:
    """One language's function server, as the local driver runs it."""

    language: str
    #: the server on this host (bound read-only into the sandbox)
    server_file: str
    #: the interpreter when the image names none (None: not installed here)
    default_interpreter: str | None
    #: the interpreter's own options, given the instance's memory limit in MB
    interpreter_options: Callable[[int], list[str]]
    #: the environment beyond ``PATH``, ``HOME`` and ``LANG``
    environment: dict[str, str]
    #: the driver opens the capture files as the server's fds 1 and 2 (for a server
    #: that cannot redirect its own descriptors); otherwise the server does it itself
    stdio_is_capture: bool
    #: text in the server's output that means its heap ran out
    out_of_memory_marks: tuple[str, ...] = ()
    #: the start of the error message of a handler's own out-of-memory exception; the
    #: instance is replaced after one, as whatever it holds on to may stay
    memory_error_prefix: str | None = None


def _node_options(memory_mb: int) -> list[str]:
    # V8 cannot run under RLIMIT_AS (it reserves far more address space than it uses),
    # so its heap gets its own limit, below the instance's memory limit: what is left is
    # for Node itself (about 40 MB) and buffers outside the heap
    return [f"--max-old-space-size={max(16, memory_mb * 3 // 4)}"]


RUNTIMES: dict[str, LanguageRuntime] = {
    "python3": LanguageRuntime(
        language="python3",
        server_file=os.path.join(_RUNTIMES_DIR, "python", "server.py"),
        default_interpreter=sys.executable,
        interpreter_options=lambda memory_mb: ["-I"],
        environment={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"},
        stdio_is_capture=False,
        memory_error_prefix="MemoryError",
    ),
    "nodejs": LanguageRuntime(
        language="nodejs",
        server_file=os.path.join(_RUNTIMES_DIR, "nodejs", "server.js"),
        default_interpreter=shutil.which("node"),
        interpreter_options=_node_options,
        environment={},
        stdio_is_capture=True,
        out_of_memory_marks=("JavaScript heap out of memory", "Fatal process out of memory"),
    ),
}


def runtime_for(language: str) -> LanguageRuntime | None:
    """The runtime of ``language``, or None when the local driver has none."""
    return RUNTIMES.get(language)


__all__ = ["LanguageRuntime", "RUNTIMES", "runtime_for"]
