"""``/ui/runs``: the runs of the organization (filtered, newest first, paginated, live)
and one run's page (input, output, error, logs, timings, what started it)."""

from __future__ import annotations

import time

from flask import Blueprint, render_template, request, url_for

from engine import entities as E
from engine.errors import InvalidInput

from .session import allow, org, system

bp = Blueprint("runs", __name__, url_prefix="/runs")

PAGE_SIZE = 25
#: the time filter's choices: (value, label, seconds back)
PERIODS = (("", "any time", None), ("5m", "last 5 minutes", 300),
           ("1h", "last hour", 3600), ("24h", "last 24 hours", 86400),
           ("7d", "last 7 days", 7 * 86400))
STATUSES = (E.INITIALIZED, E.CREATING, E.READY, E.ERROR)


def _tag_filter(text: str) -> dict[str, str] | None:
    if not text.strip():
        return None
    tags = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise InvalidInput(f"tag filter {item.strip()!r} must be key=value")
        tags[key] = value
    return tags


@bp.route("/")
def index():
    allow("run")
    args = request.args
    function = args.get("function", "").strip()
    status = args.get("status", "")
    period = args.get("since", "")
    tag_text = args.get("tags", "")
    seconds = dict((p[0], p[2]) for p in PERIODS).get(period)
    try:
        page = max(1, int(args.get("page", "1")))
    except ValueError:
        page = 1
    runs = system().runs.list(org(), function or None, tags=_tag_filter(tag_text))
    if status in STATUSES:
        runs = [r for r in runs if r["status"] == status]
    if seconds:
        since = time.time() - seconds
        runs = [r for r in runs if r.get("createdAt", r["createdTime"]) >= since]
    total = len(runs)
    shown = runs[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    pages = max(1, -(-total // PAGE_SIZE))
    query = {k: v for k, v in (("function", function), ("status", status), ("since", period),
                               ("tags", tag_text)) if v}
    return render_template(
        "ui/runs.html", runs=shown, total=total, page=page, pages=pages,
        function=function, status=status, period=period, tag_text=tag_text,
        periods=PERIODS, statuses=STATUSES,
        functions=[f["name"] for f in system().functions.list(org())],
        newer=url_for(".index", page=page - 1, **query) if page > 1 else None,
        older=url_for(".index", page=page + 1, **query) if page < pages else None)


@bp.route("/<name>")
def show(name: str):
    allow("run")
    run = system().runs.get(org(), name)
    return render_template("ui/run.html", run=run)
