"""``/ui/live/<kind>``: server-sent events of one kind's changes in the organization, fed
by a store watch (never polling the store).

Each event is ``event: change`` with ``id:`` the store revision and ``data:`` a JSON
summary of the entity (:data:`SUMMARIES`: only what list pages show — never a secret's
values, never a run's input or output). A stream ends after :data:`STREAM_SECONDS` so
that it holds a server thread for a bounded time; the browser's EventSource reconnects
by itself with ``Last-Event-ID`` and the watch resumes after that revision, so nothing
is missed in between.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any, Callable, Iterator

from flask import Blueprint, Response, abort, request, stream_with_context

from engine import entities as E

from .session import allow, org, system

bp = Blueprint("live", __name__, url_prefix="/live")

STREAM_SECONDS = 60.0
HEARTBEAT_SECONDS = 15.0
RETRY_MS = 1000


def _run(run: dict[str, Any]) -> dict[str, Any]:
    return {"name": run["name"], "functionName": run.get("functionName"),
            "status": run.get("status"), "createdTime": run.get("createdTime"),
            "durationMs": run.get("durationMs"), "tags": run.get("tags") or [],
            "errorType": (run.get("error") or {}).get("type")}


def _plain(entity: dict[str, Any]) -> dict[str, Any]:
    return {"name": entity["name"], "status": entity.get("status"),
            "reason": entity.get("reason") or []}


def _execution(execution: dict[str, Any]) -> dict[str, Any]:
    return {**_plain(execution), "workflowName": execution.get("workflowName"),
            "tasks": [{"name": t.get("name"), "reference": t.get("reference"),
                       "status": t.get("status")}
                      for t in execution.get("tasks") or () if isinstance(t, dict)]}


#: kind in the URL → (store kind, REST resource the reader must be allowed to get, summary)
SUMMARIES: dict[str, tuple[str, str, Callable[[dict], dict]]] = {
    "run": (E.RUN, "run", _run),
    "function": (E.FUNCTION, "function", _plain),
    "image": (E.IMAGE, "image", _plain),
    "baseimage": (E.BASE_IMAGE, "baseimage", _plain),
    "subscription": (E.SUBSCRIPTION, "subscription", _plain),
    "driver": (E.DRIVER, "driver", _plain),
    "api": (E.API, "api", _plain),
    "workflow": ("workflow", "workflow", _plain),
    "execution": ("execution", "executions", _execution),
}


def _start_revision() -> int | None:
    last = request.headers.get("Last-Event-ID") or request.args.get("after")
    try:
        return max(1, int(last) + 1) if last else None
    except ValueError:
        return None


@bp.route("/<kind>")
def stream(kind: str):
    if kind not in SUMMARIES:
        abort(404, f"no live updates for {kind!r}")
    store_kind, resource, summary = SUMMARIES[kind]
    allow(resource)
    watch = system().store.watch(E.prefix(store_kind, org()), _start_revision())
    return Response(stream_with_context(_events(watch, summary)),
                    mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _events(watch, summary) -> Iterator[str]:
    """The watch's changes as SSE frames, with heartbeats, for STREAM_SECONDS."""
    changes: queue.Queue = queue.Queue()

    def pump():
        try:
            for change in watch:
                changes.put(change)
        except Exception as exc:  # noqa: BLE001 - the stream ends; the browser reconnects
            changes.put(exc)
        changes.put(None)

    threading.Thread(target=pump, name="ui-live", daemon=True).start()
    deadline = time.monotonic() + STREAM_SECONDS
    try:
        yield f"retry: {RETRY_MS}\n\n"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                change = changes.get(timeout=min(left, HEARTBEAT_SECONDS))
            except queue.Empty:
                yield ": heartbeat\n\n"
                continue
            if change is None or isinstance(change, Exception):
                return
            _, _, name = E.parse_key(change.key)
            data = ({"name": name, "deleted": True} if change.entity is None
                    else summary(change.entity))
            yield (f"id: {change.revision}\nevent: change\n"
                   f"data: {json.dumps(data, separators=(',', ':'))}\n\n")
    finally:
        watch.close()
