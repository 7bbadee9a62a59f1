"""The UI's pure parts: run figures, chart geometry, the workflow graph, form fields."""

from __future__ import annotations

import pytest

from blueprints.ui import charts, forms
from blueprints.ui.graph import task_graph
from engine.errors import InvalidInput
from engine.services.run_stats import percentile, summarize


def run(fn, created, status="READY", duration=None):
    return {"functionName": fn, "createdAt": created, "createdTime": int(created),
            "status": status, "durationMs": duration}


def test_figures_of_the_last_hour_per_function():
    now = 10_000.0
    runs = [run("a", now - 30, "READY", 10), run("a", now - 30, "ERROR", 30),
            run("a", now - 90, "READY", 20), run("a", now - 3700, "READY", 99),
            run("b", now - 5, "CREATING")]
    a, b = summarize(runs, now)
    assert (a.function, a.total, a.errors, a.error_rate) == ("a", 3, 1, pytest.approx(1 / 3))
    assert a.per_minute[-1] == 2 and a.per_minute[-2] == 1 and sum(a.per_minute) == 3
    assert a.errors_per_minute[-1] == 1
    assert (a.p50, a.p90, a.p99) == (20, 30, 30)
    assert (b.total, b.total_settled, b.error_rate, b.p50) == (1, 0, 0.0, None)


def test_nearest_rank_percentiles():
    values = sorted(float(v) for v in range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50, 99)
    assert percentile([], 0.5) is None


def test_minute_bars_scale_to_the_busiest_minute_with_failures_on_top():
    bars = charts.minute_bars([0, 2, 4], [0, 1, 0], width=30, height=40)
    ok = [b for b in bars if b.css == "ok"]
    err = [b for b in bars if b.css == "err"]
    assert [b.height for b in ok] == [10, 40] and [b.height for b in err] == [10]
    assert err[0].y == 20 and "1 failed" in err[0].label


def test_the_graph_nests_tasks_and_takes_each_latest_status():
    definition = {"do": [
        {"first": {"call": "f"}},
        {"fan": {"fork": {"branches": [{"left": {"set": {}}}, {"right": {"call": "g"}}]}}},
        {"loop": {"for": {"each": "x", "in": "${ .xs }"}, "do": [{"inner": {"wait": {}}}]}},
        {"guard": {"try": [{"risky": {"call": "h"}}],
                   "catch": {"do": [{"recover": {"set": {}}}]}}},
    ]}
    history = [{"reference": "/do/0/first", "status": "faulted"},
               {"reference": "/do/0/first", "status": "completed"},
               {"reference": "/do/1/fan/fork/branches/1/right", "status": "running"}]
    first, fan, loop, guard = task_graph(definition, history)
    assert (first.status, len(first.entries)) == ("completed", 2)
    assert fan.parallel and [s[0].reference for s in fan.children] == [
        "/do/1/fan/fork/branches/0/left", "/do/1/fan/fork/branches/1/right"]
    assert fan.children[1][0].status == "running" and fan.children[0][0].status == "pending"
    assert loop.children[0][0].reference == "/do/2/loop/do/0/inner"
    assert guard.labels == ["try", "catch"] and [c[0].reference for c in guard.children] == [
        "/do/3/guard/try/0/risky", "/do/3/guard/catch/do/0/recover"]


@pytest.mark.parametrize("handler, language, file", [
    ("hello.handle", "python3", "hello.py"), ("pkg.mod.fn", "python3", "pkg/mod.py"),
    ("hello", "nodejs", "hello.js"), ("./lib/x.js", "nodejs", "lib/x.js")])
def test_editor_code_is_saved_under_the_handlers_file(handler, language, file):
    assert forms.source_file_name(handler, language) == file
    assert forms.single_file(forms.pack_text(file, "code")) == (file, "code")


def test_tags_must_be_key_value():
    assert forms.tags_field({"tags": "app=x, team = y"}) == [
        {"key": "app", "value": "x"}, {"key": "team", "value": "y"}]
    with pytest.raises(InvalidInput, match="tag 'oops' must be key=value"):
        forms.tags_field({"tags": "oops"})
