"""Retry policies, the dead-letter list and redrive through the CLI, against a real
embedded Dispatch (its in-process queue delivers the delayed retries)."""

from __future__ import annotations

import json

from .test_cli_e2e import eventually, unique

FLAKY = "def handle(ctx, payload):\n    raise RuntimeError('always fails')\n"


def test_a_failing_run_is_retried_then_dead_listed_and_redriven(dispatch, at_server, tmp_path):
    (tmp_path / "flaky.py").write_text(FLAKY)
    name = unique("flaky")
    created = dispatch.json("create", "function", name, tmp_path / "flaky.py",
                            "--image", "python3", "--retry-attempts", "3",
                            "--retry-on", "FunctionError", "--retry-delay", "50",
                            "--retry-backoff", "constant", "--retry-jitter", "0",
                            "--keep-runs", "50", "--wait")
    assert created["retry"] == {"attempts": 3, "backoff": "constant", "delayMs": 50,
                                "maxDelayMs": 60000, "jitter": 0.0, "on": ["FunctionError"]}
    assert created["retention"] == {"count": 50, "ageSeconds": None}
    run = json.loads(dispatch("exec", name).stdout)

    def dead():
        found = dispatch.json("get", "runs", name, run["name"])
        return found if found["status"] == "ERROR" else None

    final = eventually(dead)
    assert final and final["dead"] and final["attempts"] == 3
    assert [a["error"]["type"] for a in final["attemptHistory"]] == ["FunctionError"] * 3
    listed = dispatch.json("get", "runs", name, "--dead")
    assert [r["name"] for r in listed] == [run["name"]]
    table = dispatch("get", "runs", "--dead").stdout
    assert run["name"] in table and "FunctionError" in table

    again = json.loads(dispatch("redrive", run["name"]).stdout)
    assert again["redrivenFrom"] == run["name"] and again["name"] != run["name"]
    assert dispatch.json("get", "runs", name, run["name"])["redrivenTo"] == again["name"]
    assert dispatch.json("get", "runs", name, "--dead") == []
    result = dispatch("redrive", run["name"], expect=1)
    assert "redriven already" in result.stderr


def test_retry_flags_without_attempts_are_refused(dispatch, at_server, tmp_path):
    (tmp_path / "flaky.py").write_text(FLAKY)
    result = dispatch("create", "function", unique("flaky"), tmp_path / "flaky.py",
                      "--image", "python3", "--retry-delay", "50", expect=2)
    assert "--retry-attempts" in result.stderr
