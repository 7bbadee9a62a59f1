"""``/ui/``: the last hour per function — runs per minute, error rate, latency
percentiles — as small server-drawn charts."""

from __future__ import annotations

import time

from flask import Blueprint, render_template

from engine.services.run_stats import BUCKET_SECONDS, WINDOW_SECONDS, summarize

from . import charts
from .session import allow, org, system

bp = Blueprint("overview", __name__)


@bp.route("/")
def index():
    allow("run")
    now = time.time()
    runs = system().runs.list(org(), since=int(now - WINDOW_SECONDS) - 1)
    stats = summarize(runs, now)
    rows = [{"stats": s, "bars": charts.minute_bars(s.per_minute, s.errors_per_minute),
             "latency": charts.latency_bars(s.p50, s.p90, s.p99)} for s in stats]
    return render_template("ui/overview.html", rows=rows,
                           minutes=WINDOW_SECONDS // BUCKET_SECONDS)
