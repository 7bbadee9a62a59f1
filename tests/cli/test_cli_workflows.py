"""The workflow commands against a real embedded Dispatch: the examples of
``examples/workflows/`` seeded with ``create -f``, executed with ``exec-workflow --wait``;
create/get/update/delete workflow NAME FILE; get and cancel executions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WORKFLOWS = EXAMPLES / "workflows"


@pytest.fixture
def seeded(dispatch, own_org):
    dispatch("create", "-f", EXAMPLES / "seed.yaml", "-w", EXAMPLES, "--wait")
    result = dispatch("create", "-f", WORKFLOWS / "seed.yaml")
    assert "Created Workflow: greet-both" in result.stdout
    return own_org


def execute(dispatch, workflow, payload, expect=0):
    result = dispatch("exec-workflow", workflow, "--input", json.dumps(payload), "--wait",
                      expect=expect)
    return json.loads(result.stdout), result.stderr


def test_examples_run_with_progress(dispatch, seeded):
    execution, progress = execute(dispatch, "greet-both", {"name": "Jon", "place": "Winterfell"})
    assert execution["status"] == "completed"
    assert sorted(execution["output"]["greetings"]) == ["Hello, Jon from Winterfell"] * 2
    assert "completed /do/0/greet" in " ".join(progress.split())
    assert progress.strip().splitlines()[-1] == "completed"

    execution, _ = execute(dispatch, "greet-each", {"people": ["Arya", "Sansa"]})
    assert execution["output"] == {"greetings": ["Hello, Arya from Winterfell",
                                                 "Hello, Sansa from Winterfell"]}

    execution, _ = execute(dispatch, "greet-or-fallback", {"place": "the Wall"})
    assert execution["output"] == {"myField": "Hello, stranger from the Wall"}

    execution, _ = execute(dispatch, "remind-later", {"what": "feed the direwolves"})
    assert execution["status"] == "completed"
    listed = dispatch("get", "executions", "--workflow", "remind-later").stdout
    assert execution["name"] in listed and "completed" in listed


def test_bad_input_fails_the_wait_with_exit_status_1(dispatch, seeded):
    result = dispatch("exec-workflow", "greet-both", "--input", "{}", expect=1)
    assert "name" in result.stderr or "name" in result.stdout


def test_create_get_update_delete_workflow_from_a_file(dispatch, own_org, tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text("document: {dsl: '1.0.0', namespace: t, name: wf, version: '1.0.0'}\n"
                    "do:\n  - a:\n      set:\n        v: 1\n")
    assert "Created workflow: wf" in dispatch("create", "workflow", "wf", path).stdout
    assert "READY" in dispatch("get", "workflow", "wf").stdout
    path.write_text("document: {dsl: '1.0.0', namespace: t, name: wf, version: '2.0.0'}\n"
                    "schedule: {on: {one: {with: {type: t.never}}}}\n"
                    "do:\n  - a:\n      set:\n        v: 2\n")
    updated = dispatch.json("update", "workflow", "wf", path)
    assert updated["definition"]["schedule"] == {"on": {"one": {"with": {"type": "t.never"}}}}
    execution, _ = execute(dispatch, "wf", {})
    assert execution["output"] == {"v": 2}
    bad = tmp_path / "bad.yaml"
    bad.write_text("document: {dsl: '1.0.0', namespace: t, name: bad, version: '1.0.0'}\n"
                   "do:\n  - a:\n      set:\n        v: ${ .x | }\n")
    result = dispatch("create", "workflow", "bad", bad, expect=1)
    assert "/do/0/a/set/v" in result.stderr
    assert "Deleted workflow: wf" in dispatch("delete", "workflow", "wf").stdout


def test_cancel_execution(dispatch, own_org, tmp_path):
    path = tmp_path / "slow.yaml"
    path.write_text("document: {dsl: '1.0.0', namespace: t, name: slow, version: '1.0.0'}\n"
                    "do:\n  - nap:\n      wait: {minutes: 10}\n")
    dispatch("create", "workflow", "slow", path)
    execution = json.loads(dispatch("exec-workflow", "slow", "--name", "nap-1").stdout)
    assert execution["name"] == "nap-1"
    assert "Cancelling execution: nap-1" in dispatch("cancel", "execution", "nap-1").stdout
    from tests.cli.test_cli_e2e import eventually

    eventually(lambda: dispatch.json("get", "execution", "nap-1")["status"] == "cancelled")
    result = dispatch("cancel", "execution", "nap-1", expect=1)
    assert "cancelled already" in result.stderr


def test_a_subscription_may_start_a_workflow(dispatch, own_org, tmp_path):
    path = tmp_path / "on-event.yaml"
    path.write_text("document: {dsl: '1.0.0', namespace: t, name: on-event, version: '1.0.0'}\n"
                    "do:\n  - a:\n      set:\n        got: ${ .n }\n")
    dispatch("create", "workflow", "on-event", path)
    dispatch("create", "subscription", "--workflow", "on-event", "--event-type", "t.ping",
             "--name", "pings")
    from tests.cli.test_cli_e2e import eventually

    assert eventually(lambda: dispatch.json("get", "subscription", "pings")["status"]
                      == "READY")
    dispatch("emit", "t.ping", "--data", '{"n": 5}')
    done = eventually(lambda: [e for e in dispatch.json("get", "executions", "--workflow",
                                                        "on-event")
                               if e["status"] == "completed"])
    assert done and done[0]["output"] == {"got": 5}
    result = dispatch("create", "subscription", "f", "--workflow", "on-event",
                      "--event-type", "t.x", expect=2)
    assert "one of them" in result.stderr
