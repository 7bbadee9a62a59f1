"""A durable timer survives a restart: an embedded Dispatch stopped while an execution
waits on ``wait`` picks it up again from the store when it starts on the same home."""

from __future__ import annotations

import requests

from api.embedded import start_embedded

from .conftest import wait_until

DEFINITION = {"document": {"dsl": "1.0.0", "namespace": "t", "name": "nap", "version": "1.0.0"},
              "do": [{"nap": {"wait": {"seconds": 3}}}, {"after": {"set": {"woke": True}}}]}


def test_a_waiting_execution_completes_after_a_restart(tmp_path):
    home = str(tmp_path / "home")
    options = dict(port=0, reconcile_seconds=0.5, stuck_seconds=2, auth="off")
    server = start_embedded(home, **options)
    try:
        base = server.url
        assert requests.post(f"{base}/v1/workflow",
                             json={"name": "nap", "definition": DEFINITION}).status_code == 201
        execution = requests.post(f"{base}/v1/executions", params={"workflowName": "nap"},
                                  json={"input": {}}).json()
        wait_until(lambda: requests.get(f"{base}/v1/executions/{execution['name']}").json()
                   ["status"] == "waiting", what="the execution waiting on its timer")
    finally:
        server.stop()  # the in-process queue, and the timer's delayed message, are gone

    server = start_embedded(home, **options)
    try:
        done = wait_until(lambda: (lambda e: e if e["status"] == "completed" else None)(
            requests.get(f"{server.url}/v1/executions/{execution['name']}").json()),
            what="the execution to complete after the restart")
        assert done["output"] == {"woke": True}
        assert [t["name"] for t in done["tasks"]] == ["nap", "after"]
    finally:
        server.stop()
