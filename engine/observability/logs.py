"""Logging for every Dispatch process: one set-up, text or JSON lines, with the context
of the request, job or run being served.

:func:`configure_logging` is the only place a process sets logging up (the API, the
gateway, the worker, the scheduler and ``dispatch up`` call it once at start). With
``DISPATCH_LOG_FORMAT=json`` each record is one JSON object on one line::

    {"time": "2026-12-06T04:12:00.123Z", "level": "INFO", "logger": "dispatch.runs",
     "message": "run.ready key=/dispatch/run/default/…", "trace_id": "4bf9…",
     "request_id": "…", "org": "default", "run": "…"}

The context fields come from :data:`context` variables that the API sets per request,
the worker per job and the run service per run; a thread or task that set none logs
none. Records carry only what the code logs: no request headers, bodies or settings, so
secrets and tokens never reach a line (their holders never log them either).

Traces follow W3C Trace Context: a ``traceparent`` header (``00-<trace id>-<parent
id>-<flags>``) on an API request is taken, a new trace started otherwise; the trace goes
with the job (a Dramatiq message option) and reaches the function as
``ctx["traceparent"]``.
"""

from __future__ import annotations

import collections
import contextvars
import datetime
import json
import logging
import os
import re
import random
import sys
import threading
import time
import weakref
from typing import Any, Mapping

#: ``$DISPATCH_LOG_FORMAT``'s values
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

#: the longest an INFO line waits to be written (:class:`LineWriter`)
LINE_DELAY = 0.02

#: the fields a record may carry from the current request, job or run, in output order
FIELDS = ("trace_id", "span_id", "request_id", "org", "run", "job", "entity")
_vars: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"dispatch_log_{name}", default=None) for name in FIELDS}

_random = random.Random()
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def log_format(env: Mapping[str, str] | None = None) -> str:
    """``$DISPATCH_LOG_FORMAT`` (``text``, the default, or ``json``); ValueError otherwise."""
    env = os.environ if env is None else env
    value = (env.get("DISPATCH_LOG_FORMAT") or "text").strip().lower()
    if value not in FORMATS:
        raise ValueError(f"DISPATCH_LOG_FORMAT must be one of {', '.join(FORMATS)}, "
                         f"not {value!r}")
    return value


def configure_logging(fmt: str | None = None, level: int = logging.INFO,
                      stream: Any = None) -> str:
    """Send every log record of this process to ``stream`` (stderr by default) as text or
    JSON lines, replacing handlers set before (Dramatiq's CLI sets its own first).

    :param fmt: ``text`` or ``json``; None reads ``$DISPATCH_LOG_FORMAT`` (an unknown
        value falls back to text and is reported once, so that logging itself works).
    :returns: the format in use.
    """
    problem = None
    if fmt is None:
        try:
            fmt = log_format()
        except ValueError as exc:
            fmt, problem = "text", str(exc)
    handler = LineWriter(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    # neither format shows where a record was made nor its thread or process: the
    # logging HOWTO's "Optimization" settings spare every record looking them up
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if problem:
        logging.getLogger("dispatch.logs").error("logs.bad_format %s; logging as text",
                                                 problem)
    return fmt


class LineWriter(logging.StreamHandler):
    """A stream handler that writes lines in batches, as a web server's buffered access
    log does: a record is formatted by the thread that logs it and joins the lines
    waiting; a writer thread of the handler's own writes every waiting line with one call,
    at most :data:`LINE_DELAY` seconds after the first of them came. A record of level
    WARNING or above is written at once, with every line waiting before it (so order is
    kept). :meth:`flush` (called by ``logging.shutdown`` at exit) writes what waits.

    ``StreamHandler`` writes each record under a lock, and the thread writing lets the
    interpreter lock go for the system call: under 16 clients every other thread logging
    meanwhile waited on the handler's lock, and took the interpreter lock back only after
    a wait of its own (README "Performance", cut 18)."""

    def __init__(self, stream: Any = None, delay: float | None = None):
        super().__init__(stream)
        self.delay = LINE_DELAY if delay is None else delay
        # appended to and emptied without a lock (a deque's ends are thread-safe): a
        # thread logging never waits for another
        self._waiting: collections.deque[str] = collections.deque()
        self._after_fork()
        _writers.add(self)

    def _after_fork(self) -> None:
        """Fresh locks and no writer thread, and none of the lines waiting (in a forked
        child: the parent's locks may have been held, its thread is not there, and it
        writes its own lines)."""
        self._waiting.clear()
        self._came = threading.Event()  # lines wait: the writer thread's wake-up
        self._write_lock = threading.Lock()  # one write at a time: lines stay in order
        self._start_lock = threading.Lock()
        self._writer_started = False  # in this process

    def handle(self, record: logging.LogRecord) -> bool:
        # as Handler.handle, without the handler's lock around emit
        keep = self.filter(record)
        if isinstance(keep, logging.LogRecord):
            record = keep
        if keep:
            self.emit(record)
        return bool(keep)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._waiting.append(line)
        if record.levelno >= logging.WARNING or self.delay <= 0:
            self._write_waiting(record)
            return
        if not self._writer_started:
            self._start_writer()
        if not self._came.is_set():
            self._came.set()

    def _start_writer(self) -> None:
        with self._start_lock:
            if not self._writer_started:
                self._writer_started = True
                threading.Thread(target=self._write_now_and_then, daemon=True,
                                 name="log-writer").start()

    def _write_waiting(self, record: logging.LogRecord | None = None) -> None:
        with self._write_lock:
            lines = []
            try:
                while True:
                    lines.append(self._waiting.popleft())
            except IndexError:
                pass
            if not lines:
                return
            try:
                self.stream.write("".join(lines))
                if hasattr(self.stream, "flush"):
                    self.stream.flush()
            except Exception:
                if record is not None:
                    self.handleError(record)

    def _write_now_and_then(self) -> None:
        came = self._came
        while True:
            came.wait()
            came.clear()  # before taking the lines: one that comes after is woken for
            time.sleep(self.delay)  # the lines of the next moments go in the same write
            self._write_waiting()

    def flush(self) -> None:
        self._write_waiting()


#: every LineWriter, for the fork hook below
_writers: "weakref.WeakSet[LineWriter]" = weakref.WeakSet()


def _writers_after_fork() -> None:
    for writer in list(_writers):
        writer._after_fork()


os.register_at_fork(after_in_child=_writers_after_fork)


def current() -> dict[str, str]:
    """The context fields set in this thread or task (those that are not None)."""
    values = {}
    for name, var in _vars.items():
        value = var.get()
        if value is not None:
            values[name] = value
    return values


class bound:
    """Set context fields for a block (``with bound(org="a", run="r"): …``); the previous
    values come back at its end. Fields given as None are left as they are."""

    def __init__(self, **fields: str | None):
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown log context fields: {', '.join(sorted(unknown))}")
        self._fields = {k: v for k, v in fields.items() if v is not None}
        self._tokens: list[tuple[contextvars.ContextVar, contextvars.Token]] = []

    def __enter__(self) -> "bound":
        self._tokens = [(_vars[k], _vars[k].set(v)) for k, v in self._fields.items()]
        return self

    def __exit__(self, *exc: Any) -> None:
        for var, token in reversed(self._tokens):
            var.reset(token)
        self._tokens = []


def bind(**fields: str | None) -> list[tuple[contextvars.ContextVar, contextvars.Token]]:
    """Set context fields until :func:`unbind` is given what this returned (for hooks
    that open and close a context in two calls, like Flask's and Dramatiq's)."""
    return [(_vars[k], _vars[k].set(v)) for k, v in fields.items() if v is not None]


def unbind(tokens: list[tuple[contextvars.ContextVar, contextvars.Token]]) -> None:
    for var, token in reversed(tokens):
        try:
            var.reset(token)
        except ValueError:  # set in another context (a hook pair split across threads)
            var.set(None)


# ---- W3C trace context ------------------------------------------------------------------

def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """``(trace_id, parent_id)`` of a valid W3C ``traceparent``, else None (version ff,
    and all-zero ids, are invalid)."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version, trace_id, parent_id, _flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, parent_id


def new_trace_id() -> str:
    # ids need to be unique, not secret: the fast generator (os.urandom is a syscall)
    return "%032x" % (_random.getrandbits(128) or 1)


def new_span_id() -> str:
    return "%016x" % (_random.getrandbits(64) or 1)


def traceparent(trace_id: str | None = None, span_id: str | None = None) -> str | None:
    """The ``traceparent`` to pass on from the current context (or the ids given); None
    when there is no trace."""
    trace_id = trace_id or _vars["trace_id"].get()
    if trace_id is None:
        return None
    return f"00-{trace_id}-{span_id or _vars['span_id'].get() or new_span_id()}-01"


def trace_fields(header: str | None) -> dict[str, str]:
    """The trace fields for work that received ``header``: its trace, a new span of ours
    (a missing or invalid header starts a new trace)."""
    parsed = parse_traceparent(header)
    return {"trace_id": parsed[0] if parsed else new_trace_id(), "span_id": new_span_id()}


# ---- formatters -------------------------------------------------------------------------

class TextFormatter(logging.Formatter):
    """The classic line, with the context fields appended as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = current()
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if k != "span_id")
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the context fields, and
    the exception's traceback as ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(current())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
