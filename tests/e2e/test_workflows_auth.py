"""Workflows with authentication on: ``workflow`` and ``execution`` are resources of the
policies, so an account may start executions of workflows it may not change, and another
organization sees none of them."""

from __future__ import annotations

import uuid

import pytest

from api.embedded import start_embedded
from tests.unit.identity_keys import rsa_key

from .conftest import wait_until
from .identity_client import account_client, admin_client

DEFINITION = {"document": {"dsl": "1.0.0", "namespace": "t", "name": "w", "version": "1.0.0"},
              "do": [{"a": {"set": {"v": "${ .v }"}}}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2)
    yield server
    server.stop()


def test_policies_grant_workflow_and_execution(server):
    admin = admin_client(server)
    org = "w" + uuid.uuid4().hex[:8]
    assert admin.post("/v1/iam/organization", json={"name": org}).status_code == 201
    runner = account_client(admin, org, "runner", rsa_key(2048, 2))
    r = admin.post("/v1/iam/policy", org=org, json={"name": "run-workflows", "rules": [
        {"subjects": ["runner"], "resources": ["execution"], "actions": ["*"]},
        {"subjects": ["runner"], "resources": ["workflow"], "actions": ["get"]}]})
    assert r.status_code == 201, r.text
    r = admin.post("/v1/workflow", org=org, json={"name": "w", "definition": DEFINITION})
    assert r.status_code == 201, r.text
    wait_until(lambda: runner.get("/v1/workflow").status_code == 200, 10,
               what="policy applied")

    assert runner.get("/v1/workflow/w").status_code == 200
    r = runner.post("/v1/workflow", json={"name": "x", "definition": DEFINITION})
    assert r.status_code == 403 and "may not create workflow" in r.json()["message"]
    r = runner.post("/v1/executions", params={"workflowName": "w"},
                    json={"input": {"v": 1}, "blocking": True})
    assert r.status_code == 200 and r.json()["output"] == {"v": 1}, r.text
    assert runner.get("/v1/executions").status_code == 200
    assert runner.get("/v1/function").status_code == 403

    # another organization's admin-made account sees none of it
    other = "o" + uuid.uuid4().hex[:8]
    assert admin.post("/v1/iam/organization", json={"name": other}).status_code == 201
    assert admin.get("/v1/executions", org=other).json() == []
    assert admin.get("/v1/workflow/w", org=other).status_code == 404
