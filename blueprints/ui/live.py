"""``/ui/live/<kind>``: server-sent events of one kind's changes in the organization, fed
by a store watch (never polling the store).

Each event is ``event: change`` with ``id:`` ``REVISION.N`` (the store revision, and the
change's place among this stream's changes of that revision: writes committed together
in one etcd transaction share a revision) and ``data:`` a JSON summary of the entity
(:data:`SUMMARIES`: only what list pages show — never a secret's values, never a run's
input or output). A stream ends after :data:`STREAM_SECONDS` so that it holds a server
thread for a bounded time; the browser's EventSource reconnects by itself with
``Last-Event-ID`` and the watch resumes just after that change, so nothing is missed in
between (``?after=REVISION``, the page's own starting point, resumes after a revision).
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


def _start() -> tuple[int | None, int]:
    """``(revision to watch from, changes of that revision already sent)``."""
    last = request.headers.get("Last-Event-ID") or request.args.get("after")
    if not last:
        return None, 0
    revision, dot, sent = last.partition(".")
    try:
        if dot:  # REVISION.N: that revision again, less the N + 1 changes sent
            return max(1, int(revision)), int(sent) + 1
        return max(1, int(revision) + 1), 0
    except ValueError:
        return None, 0


@bp.route("/<kind>")
def stream(kind: str):
    if kind not in SUMMARIES:
        abort(404, f"no live updates for {kind!r}")
    store_kind, resource, summary = SUMMARIES[kind]
    allow(resource)
    start, sent = _start()
    watch = system().store.watch(E.prefix(store_kind, org()), start)
    return Response(stream_with_context(_events(watch, summary, start, sent)),
                    mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _events(watch, summary, start: int | None = None, sent: int = 0) -> Iterator[str]:
    """The watch's changes as SSE frames, with heartbeats, for STREAM_SECONDS (the first
    ``sent`` changes of revision ``start`` left out: the browser has them)."""
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
    revision, place = None, 0  # the last change's revision, and its place in it
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
            place = place + 1 if change.revision == revision else 0
            revision = change.revision
            if revision == start and place < sent:
                continue
            _, _, name = E.parse_key(change.key)
            data = ({"name": name, "deleted": True} if change.entity is None
                    else summary(change.entity))
            yield (f"id: {revision}.{place}\nevent: change\n"
                   f"data: {json.dumps(data, separators=(',', ':'))}\n\n")
    finally:
        watch.close()
