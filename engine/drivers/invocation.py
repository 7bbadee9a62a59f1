"""One call to a warm instance, and what its result means for the run and the instance.

Turns every way a call can end into an :class:`~.base.Outcome`: a reply, a timeout, a
crash, an oversized reply, or a limit the instance reached (its processes, its memory),
and says whether the instance may serve again. One that may not is killed here, so the
logs read afterwards are complete; the caller removes it from its pool.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
from typing import Any

from .. import fastjson
from ..errors import BuildError, Unavailable
from .base import Deployment, Outcome
from .instance import Instance, ReplyTooLarge, describe_exit
from .pool import Retired, WarmPools

#: a function's timeout when it sets none
DEFAULT_TIMEOUT_MS = 60_000

log = logging.getLogger("dispatch.driver.local")

#: the result cap the servers enforce, named in the driver's own message
OUTPUT_CAP_BYTES = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Limits:
    """The per-instance limits a run's error names."""

    memory_mb: int
    max_processes: int


def function_error(message: str, stacktrace: list[str] | None = None) -> dict[str, Any]:
    """Dispatch's error object for something the function did."""
    return {"type": "FunctionError", "message": message, "stacktrace": stacktrace or []}


def run_pooled(pools: WarmPools, deployment: Deployment, context: dict[str, Any], payload: Any,
               *, limits: Limits) -> Outcome:
    """One run on a warm instance of ``pools`` (started if needed), with the semantics
    every pooled driver shares: a retired version or an unreachable engine is a
    SystemError, a function that cannot start a FunctionError; the instance is reused
    only if the call left it sound."""
    body = fastjson.dumpb({"context": context, "payload": payload})
    try:
        pool = pools.prepared(deployment, for_run=True)
        pools.stop_older_idle(pool)
        inst, cold_ms = pools.acquire(pool)
    except (Retired, Unavailable) as exc:  # not the function's fault
        return Outcome(error={"type": "SystemError", "message": exc.message, "stacktrace": []})
    except BuildError as exc:
        return Outcome(error=function_error(exc.message))
    outcome, reusable = invoke(inst, body, timeout_ms=deployment.timeout_ms or DEFAULT_TIMEOUT_MS,
                               limits=limits, function=deployment.id)
    outcome.cold_start_ms = cold_ms
    if reusable:
        pools.release(pool, inst)
    else:
        pools.discard(pool, inst)
    return outcome


def invoke(inst: Instance, body: bytes, *, timeout_ms: int, limits: Limits, function: str) -> tuple[Outcome, bool]:
    """Call ``inst`` once with the request ``body``: ``(outcome, whether it may serve again)``.

    :param function: the deployment's id, for the log
    """
    try:
        status, data = inst.call(body, timeout_ms / 1000)
    except TimeoutError:
        inst.kill()
        logs = inst.captured_logs()
        error = _limit_error(inst, logs, limits) or function_error(f"function timed out after {timeout_ms} ms")
        log.warning("run.timeout function=%s instance=%s timeout_ms=%d", function, inst.iid, timeout_ms)
        return Outcome(logs=logs, error=error), False
    except ReplyTooLarge as exc:
        inst.kill()
        log.warning("run.reply_too_large function=%s instance=%s bytes=%d", function, inst.iid, exc.args[0])
        message = f"output is larger than {OUTPUT_CAP_BYTES} bytes: the function's reply was {exc.args[0]} bytes"
        return Outcome(error=function_error(message)), False
    except (OSError, http.client.HTTPException):
        code = inst.exit_code(wait_s=2.0)
        inst.kill()
        logs = inst.captured_logs()
        error = _limit_error(inst, logs, limits) or function_error(
            f"function process {describe_exit(code)}", logs["stderr"][-20:])
        log.warning("run.crash function=%s instance=%s exit=%s", function, inst.iid, code)
        return Outcome(logs=logs, error=error), False
    try:
        reply = fastjson.loads(data)
        if status != 200:
            raise ValueError(reply.get("error") if isinstance(reply, dict) else status)
        ctx = reply.get("context") or {}
        outcome = Outcome(payload=reply.get("payload"), logs=ctx.get("logs") or {"stdout": [], "stderr": []},
                          error=ctx.get("error"))
    except (ValueError, AttributeError) as exc:
        return Outcome(error={"type": "SystemError", "stacktrace": [],
                              "message": f"the function server answered badly ({status}): {exc}"}), True
    if inst.reached_task_limit():
        # a fork bomb's survivors, or a pool it started, must not linger into other runs
        inst.kill()
        log.warning("run.process_limit function=%s instance=%s", function, inst.iid)
        outcome.payload, outcome.error = None, _process_limit_error(limits)
        return outcome, False
    if _is_memory_error(inst, outcome.error):
        inst.kill()  # whatever the function holds on to would fail its next runs too
        return outcome, False
    return outcome, True


def _limit_error(inst: Instance, logs: dict[str, list[str]], limits: Limits) -> dict[str, Any] | None:
    """The error of a killed or crashed run that reached a limit of its instance, if it did."""
    if inst.reached_task_limit():
        return _process_limit_error(limits)
    stderr = logs.get("stderr") or []
    if inst.ran_out_of_memory(stderr):
        return function_error(f"function ran out of memory (limit {limits.memory_mb} MB)", stderr[-20:])
    return None


def _process_limit_error(limits: Limits) -> dict[str, Any]:
    return function_error(f"function reached its limit of {limits.max_processes} processes")


def _is_memory_error(inst: Instance, error: dict[str, Any] | None) -> bool:
    """Whether the handler raised its language's out-of-memory exception."""
    prefix = inst.runtime.memory_error_prefix
    return bool(prefix and error and str(error.get("message", "")).startswith(prefix))


__all__ = ["Limits", "function_error", "invoke"]
