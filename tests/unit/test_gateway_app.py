"""The gateway's answers for run outcomes the e2e tests cannot stage on demand (a run
that does not settle in time), with the engine's run service replaced by a script."""

from __future__ import annotations

import pytest

from api.gateway.app import create_gateway_app
from engine import entities as E
from engine.jobs import RecordingJobs
from engine.services.apis import ApiService
from engine.services.routes import RouteTable
from engine.settings import Settings
from engine.store import open_store


class ScriptedRuns:
    def __init__(self, status, error=None):
        self.status, self.error, self.started = status, error, []

    def start(self, org, function, body):
        self.started.append((org, function, body))
        return E.new(E.RUN, org, "run-1", functionName=function)

    def wait(self, run):
        return dict(run, status=self.status, error=self.error, output={"ok": True})


class System:
    def __init__(self, runs, tmp_path):
        self.settings = Settings.from_env({}, home=str(tmp_path), max_body_bytes=100)
        self.store = open_store("memory://")
        self.apis = ApiService(self.store, RecordingJobs())
        api = self.apis.create("acme", {"name": "a", "function": "f", "uris": ["/a"],
                                        "methods": ["POST"]})
        self.apis.sync(E.key_of(api))
        self.routes = RouteTable(self.store)
        self.runs = runs


@pytest.mark.parametrize("status, error, code", [
    (E.READY, None, 200),
    (E.ERROR, {"type": "InputError", "message": "bad"}, 400),
    (E.ERROR, {"type": "FunctionError", "message": "boom"}, 502),
    (E.ERROR, {"type": "SystemError", "message": "lost"}, 500),
    (E.CREATING, None, 504),
])
def test_run_outcomes_map_to_status_codes(tmp_path, status, error, code):
    runs = ScriptedRuns(status, error)
    system = System(runs, tmp_path)
    client = create_gateway_app(system).test_client()
    r = client.post("/acme/a", json={"x": 1}, headers={"X-Dispatch-Org": "other"})
    assert r.status_code == code, r.json
    if code == 200:
        assert r.json == {"ok": True}
    else:
        assert r.json["code"] == code and "run run-1 of function f" in r.json["message"]
    assert runs.started[0][:2] == ("acme", "f")  # the path's org, not the header's
    system.routes.close()


def test_a_declared_length_over_the_limit_is_refused_before_any_run(tmp_path):
    runs = ScriptedRuns(E.READY)
    system = System(runs, tmp_path)
    client = create_gateway_app(system).test_client()
    r = client.post("/acme/a", data=b"x" * 101, content_type="application/json")
    assert r.status_code == 413 and "100 bytes" in r.json["message"]
    r = client.post("/acme/a", data={"f": "x" * 200})
    assert r.status_code == 413 and "100 bytes" in r.json["message"]
    assert runs.started == []
    system.routes.close()
