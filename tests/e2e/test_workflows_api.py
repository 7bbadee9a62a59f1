"""``/v1/workflow`` and ``/v1/executions`` of an embedded Dispatch: workflows that call real
sandboxed functions, HTTP endpoints, timers, events and sub-workflows; every trigger
(API, subscription, ``schedule.on``, ``schedule.every``, gateway route); cancel, suspend,
resume, idempotent start and the 4xx of bad input."""

from __future__ import annotations

import base64
import http.server
import json
import pathlib
import threading
import uuid

import pytest
import requests

from api.embedded import start_embedded
from engine import entities as E
from engine.sources import pack

from .conftest import wait_for_status, wait_until

ADD = '''\
def handle(ctx, payload):
    if payload.get("fail"):
        raise ValueError("asked to fail")
    return {"n": payload.get("n", 0) + payload.get("by", 1)}
'''
ADD_SCHEMA_IN = {"type": "object", "properties": {"n": {"type": "integer"}}}
ECHO = '''\
def handle(ctx, payload):
    return {"got": payload}
'''
DSL = {"dsl": "1.0.0", "namespace": "test", "version": "0.1.0"}


def doc(name: str, tasks: list, **extra) -> dict:
    return {"document": dict(DSL, name=name), "do": tasks, **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_embedded(str(tmp_path_factory.mktemp("home")), port=0,
                            reconcile_seconds=0.5, stuck_seconds=2, auth="off",
                            cron_seconds=0.5)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def base(server):
    return server.url


def _source(tmp_path_factory, name: str, code: str) -> str:
    path = tmp_path_factory.mktemp("src") / f"{name}.py"
    path.write_text(code)
    return base64.b64encode(pack(str(path))).decode()


@pytest.fixture(scope="module")
def functions(base, tmp_path_factory):
    for name, code, schema in (("add", ADD, {"in": ADD_SCHEMA_IN}), ("echo", ECHO, None)):
        body = {"name": name, "image": "python3", "handler": f"{name}.handle",
                "source": _source(tmp_path_factory, name, code)}
        if schema:
            body["schema"] = schema
        assert requests.post(f"{base}/v1/function", json=body).status_code == 201
    for name in ("add", "echo"):
        assert wait_for_status(base, name)["status"] == "READY"
    return ["add", "echo"]


@pytest.fixture(scope="module")
def http_target():
    """A local HTTP server: GET /ok answers JSON, /missing 404, POST echoes its body."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.startswith("/headers"):
                self._answer(200, {"authorization": self.headers.get("Authorization")})
            elif self.path.startswith("/ok"):
                self._answer(200, {"path": self.path, "answer": 42})
            else:
                self._answer(404, {"error": "no such thing"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(201, {"received": json.loads(self.rfile.read(length) or b"null")})

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def create(base, name, definition, status=201):
    r = requests.post(f"{base}/v1/workflow", json={"name": name, "definition": definition})
    assert r.status_code == status, r.text
    return r.json()


def start(base, workflow, input=None, blocking=True, name=None, status=None):
    body = {"input": input, "blocking": blocking}
    if name:
        body["name"] = name
    r = requests.post(f"{base}/v1/executions", params={"workflowName": workflow}, json=body)
    expected = status or (200 if blocking else 202)
    assert r.status_code == expected, r.text
    return r.json()


def get_execution(base, name):
    r = requests.get(f"{base}/v1/executions/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_execution(base, name, statuses=("completed", "faulted", "cancelled"), timeout=60):
    return wait_until(lambda: (lambda e: e if e["status"] in statuses else None)(
        get_execution(base, name)), timeout, what=f"execution {name} in {statuses}")


# ---- definitions --------------------------------------------------------------------

def test_workflow_crud_with_dispatch_codes(base):
    definition = doc("crud", [{"one": {"set": {"a": 1}}}])
    created = create(base, "crud", definition)
    assert created["status"] == "READY" and created["kind"] == "Workflow"
    assert created["definition"] == definition
    assert requests.post(f"{base}/v1/workflow",
                         json={"name": "crud", "definition": definition}).status_code == 409
    assert [w["name"] for w in requests.get(f"{base}/v1/workflow").json()].count("crud") == 1
    changed = doc("crud", [{"two": {"set": {"b": 2}}}])
    r = requests.put(f"{base}/v1/workflow/crud", json={"name": "crud", "definition": changed})
    assert r.status_code == 200 and r.json()["definition"] == changed
    assert requests.delete(f"{base}/v1/workflow/crud").status_code == 200
    assert requests.get(f"{base}/v1/workflow/crud").status_code == 404


def test_bad_definition_is_a_400_naming_the_json_path(base):
    bad_then = doc("bad-then", [{"a": {"set": {"x": 1}, "then": "nowhere"}}])
    r = requests.post(f"{base}/v1/workflow", json={"name": "bad-then", "definition": bad_then})
    assert r.status_code == 400 and "/do/0/a" in r.json()["message"], r.text
    bad_jq = doc("bad-jq", [{"a": {"set": {"x": "${ .a | }"}}}])
    r = requests.post(f"{base}/v1/workflow", json={"name": "bad-jq", "definition": bad_jq})
    assert r.status_code == 400 and "/do/0/a/set/x" in r.json()["message"], r.text
    r = requests.post(f"{base}/v1/workflow", json={"name": "no-doc", "definition": {"do": []}})
    assert r.status_code == 400
    assert requests.get(f"{base}/v1/workflow/bad-then").status_code == 404  # nothing kept


def test_unknown_workflow_is_a_404(base):
    r = requests.post(f"{base}/v1/executions", params={"workflowName": "nope"},
                      json={"input": {}})
    assert r.status_code == 404 and "nope" in r.json()["message"]
    assert requests.get(f"{base}/v1/executions/nope").status_code == 404


def test_input_failing_the_input_schema_is_a_400(base):
    schema = {"format": "json", "document": {"type": "object", "required": ["n"],
                                             "properties": {"n": {"type": "integer"}}}}
    create(base, "typed", doc("typed", [{"a": {"set": {"x": 1}}}], input={"schema": schema}))
    r = requests.post(f"{base}/v1/executions", params={"workflowName": "typed"},
                      json={"input": {"n": "three"}})
    assert r.status_code == 400 and "n" in r.json()["message"], r.text
    assert requests.get(f"{base}/v1/executions", params={"workflowName": "typed"}).json() == []


# ---- function calls ------------------------------------------------------------------

def test_sequence_of_function_calls_runs_real_runs_tagged_with_the_execution(base, functions):
    create(base, "chain", doc("chain", [
        {"first": {"call": "add", "with": {"n": "${ .n }", "by": 1}}},
        {"second": {"call": "add", "with": {"n": "${ .n }", "by": 10}}},
        {"third": {"call": "add", "with": {"n": "${ .n }", "by": 100}}},
    ]))
    execution = start(base, "chain", {"n": 1})
    assert execution["status"] == "completed", execution
    assert execution["output"] == {"n": 112}
    tasks = execution["tasks"]
    assert [t["name"] for t in tasks] == ["first", "second", "third"]
    assert all(t["status"] == "completed" for t in tasks)
    assert [t["reference"] for t in tasks] == ["/do/0/first", "/do/1/second", "/do/2/third"]
    runs = requests.get(f"{base}/v1/runs", params={"functionName": "add"}).json()
    mine = [r for r in runs if {"key": "execution", "value": execution["name"]} in r["tags"]]
    assert len(mine) == 3 and all(r["status"] == "READY" for r in mine)
    assert all({"key": "workflow", "value": "chain"} in r["tags"] for r in mine)


def test_function_errors_are_problem_details_that_catch_matches(base, functions):
    create(base, "catching", doc("catching", [
        {"guarded": {"try": [{"boom": {"call": "add", "with": {"fail": True}}}],
                     "catch": {"errors": {"with": {
                         "type": "https://serverlessworkflow.io/spec/1.0.0/errors/runtime"}},
                         "as": "err", "do": [{"note": {"set": {
                             "caught": "${ $err.type }", "status": "${ $err.status }"}}}]}}},
    ]))
    execution = start(base, "catching", {})
    assert execution["status"] == "completed", execution
    assert execution["output"]["status"] == 500
    create(base, "uncaught", doc("uncaught", [
        {"bad": {"call": "add", "with": {"n": "not a number"}}}]))
    faulted = start(base, "uncaught", {})
    assert faulted["status"] == "faulted"
    assert faulted["error"]["type"].endswith("/errors/validation")
    assert faulted["error"]["status"] == 400
    assert faulted["error"]["instance"].startswith("/do/0/bad")
    create(base, "missing-fn", doc("missing-fn", [{"call-it": {"call": "no-such-fn"}}]))
    missing = start(base, "missing-fn", {})
    assert missing["status"] == "faulted" and missing["error"]["status"] == 404
    assert "no-such-fn" in missing["error"]["detail"]


def test_fork_branches_call_functions_in_parallel(base, functions):
    branches = [{f"b{i}": {"call": "add", "with": {"n": i, "by": 1}}} for i in range(6)]
    create(base, "fan", doc("fan", [{"all": {"fork": {"branches": branches}}}]))
    execution = start(base, "fan", {})
    assert execution["status"] == "completed", execution
    assert sorted(o["n"] for o in execution["output"]) == [1, 2, 3, 4, 5, 6]


# ---- http, timers, events, sub-workflows -------------------------------------------------

def test_http_calls_for_real_and_non_2xx_is_a_communication_error(base, http_target):
    create(base, "http", doc("http", [
        {"get": {"call": "http", "with": {"method": "get",
                                          "endpoint": http_target + "/ok?x=1"}}},
        {"post": {"call": "http", "with": {"method": "post", "endpoint": http_target + "/p",
                                           "body": {"answer": "${ .answer }"}}}},
    ]))
    execution = start(base, "http", {})
    assert execution["status"] == "completed", execution
    assert execution["output"] == {"received": {"answer": 42}}
    create(base, "http-404", doc("http-404", [
        {"try-it": {"try": [{"get": {"call": "http", "with": {
            "method": "get", "endpoint": http_target + "/missing"}}}],
            "catch": {"errors": {"with": {"status": 404}}, "as": "e",
                      "do": [{"n": {"set": {"status": "${ $e.status }",
                                            "type": "${ $e.type }"}}}]}}}]))
    caught = start(base, "http-404", {})
    assert caught["status"] == "completed", caught
    assert caught["output"]["status"] == 404
    assert caught["output"]["type"].endswith("/errors/communication")


def test_wait_is_a_durable_timer(base):
    create(base, "sleepy", doc("sleepy", [{"nap": {"wait": {"seconds": 1}}},
                                          {"after": {"set": {"woke": True}}}]))
    execution = start(base, "sleepy", {}, blocking=False)
    waiting = wait_execution(base, execution["name"], ("waiting", "running", "completed"))
    assert waiting["status"] in ("waiting", "running", "completed")
    done = wait_execution(base, execution["name"])
    assert done["status"] == "completed" and done["output"] == {"woke": True}
    timers = [t for t in done["tasks"] if t["name"] == "nap"]
    assert len(timers) == 1 and timers[0]["status"] == "completed"


def test_emit_reaches_subscriptions_and_listen_waits_for_events(base, functions):
    kind = f"test.order.{uuid.uuid4().hex[:6]}"
    r = requests.post(f"{base}/v1/event/subscriptions",
                      json={"eventType": kind, "function": "echo", "name": "echo-orders"})
    assert r.status_code in (200, 201), r.text
    wait_until(lambda: requests.get(f"{base}/v1/event/subscriptions/echo-orders").json()
               ["status"] == "READY", what="subscription READY")
    create(base, "listener", doc("listener", [
        {"hear": {"listen": {"to": {"one": {"with": {"type": kind}}}}}},
        {"got": {"set": {"order": "${ .[0].order // .order }"}}}]))
    listening = start(base, "listener", {}, blocking=False)
    wait_execution(base, listening["name"], ("waiting",))
    create(base, "emitter", doc("emitter", [
        {"send": {"emit": {"event": {"with": {"source": "https://test.example/orders",
                                              "type": kind, "data": {"order": 7}}}}}}]))
    assert start(base, "emitter", {})["status"] == "completed"
    heard = wait_execution(base, listening["name"])
    assert heard["status"] == "completed", heard
    assert heard["output"] == {"order": 7}
    runs = wait_until(lambda: [r for r in requests.get(
        f"{base}/v1/runs", params={"functionName": "echo"}).json()
        if (r.get("input") or {}).get("order") == 7 and r["status"] == "READY"],
        what="the subscription's run")
    assert len(runs) == 1


def test_sub_workflow_runs_as_a_child_execution(base, functions):
    create(base, "child", doc("child", [{"inc": {"call": "add", "with": {"n": "${ .n }"}}}]))
    create(base, "parent", doc("parent", [
        {"sub": {"run": {"workflow": {"namespace": "test", "name": "child",
                                      "version": "0.1.0", "input": {"n": 41}}}}}]))
    execution = start(base, "parent", {})
    assert execution["status"] == "completed", execution
    assert execution["output"] == {"n": 42}
    children = requests.get(f"{base}/v1/executions", params={"workflowName": "child"}).json()
    assert any(c["trigger"].get("execution") == execution["name"] for c in children)


# ---- cancel, suspend, resume, idempotent start ------------------------------------------

def test_cancel_stops_a_waiting_execution_and_a_finished_one_is_a_409(base):
    create(base, "long", doc("long", [{"nap": {"wait": {"hours": 1}}},
                                      {"never": {"set": {"reached": True}}}]))
    execution = start(base, "long", {}, blocking=False)
    wait_execution(base, execution["name"], ("waiting",))
    r = requests.post(f"{base}/v1/executions/{execution['name']}/cancel")
    assert r.status_code == 202, r.text
    cancelled = wait_execution(base, execution["name"])
    assert cancelled["status"] == "cancelled"
    assert all(t["name"] != "never" for t in cancelled["tasks"])
    r = requests.post(f"{base}/v1/executions/{execution['name']}/cancel")
    assert r.status_code == 409 and "cancelled" in r.json()["message"]
    r = requests.post(f"{base}/v1/executions/{execution['name']}/suspend")
    assert r.status_code == 409


def test_suspend_holds_an_execution_until_resumed(base, server):
    create(base, "pausable", doc("pausable", [{"nap": {"wait": {"seconds": 3}}},
                                              {"next": {"set": {"done": True}}}]))
    execution = start(base, "pausable", {}, blocking=False)
    wait_execution(base, execution["name"], ("waiting",))  # its timer is set
    r = requests.post(f"{base}/v1/executions/{execution['name']}/suspend")
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    # the timer fires meanwhile; its result is recorded, but nothing goes on
    activity = wait_until(lambda: [a for a in _activities(server, execution["name"])
                                   if a["status"] == "completed"], what="the timer fired")
    assert activity
    assert get_execution(base, execution["name"])["status"] == "suspended"
    r = requests.post(f"{base}/v1/executions/{execution['name']}/resume")
    assert r.status_code == 202
    assert wait_execution(base, execution["name"])["status"] == "completed"
    r = requests.post(f"{base}/v1/executions/{execution['name']}/resume")
    assert r.status_code == 409


def _activities(server, execution):
    """The activity records of an execution, read from the server's store."""
    return server.system.store.list(E.ACTIVITY, f"default/{execution}")


def test_idempotent_start_by_name(base):
    create(base, "once", doc("once", [{"a": {"set": {"v": "${ .v }"}}}]))
    first = start(base, "once", {"v": 1}, name="order-17")
    assert first["output"] == {"v": 1}
    again = start(base, "once", {"v": 2}, name="order-17")
    assert again["name"] == "order-17" and again["output"] == {"v": 1}
    assert again["existing"] is True
    listed = requests.get(f"{base}/v1/executions", params={"workflowName": "once"}).json()
    assert [e["name"] for e in listed] == ["order-17"]


def test_list_is_newest_first_with_filters(base):
    create(base, "listed", doc("listed", [{"a": {"set": {"v": 1}}}]))
    names = [start(base, "listed", {})["name"] for _ in range(3)]
    listed = requests.get(f"{base}/v1/executions",
                          params={"workflowName": "listed", "limit": 2}).json()
    assert [e["name"] for e in listed] == names[::-1][:2]
    assert requests.get(f"{base}/v1/executions", params={
        "workflowName": "listed", "status": "faulted"}).json() == []
    assert requests.get(f"{base}/v1/executions", params={"status": "bogus"}).status_code == 400


# ---- triggers ---------------------------------------------------------------------------

def test_subscription_targeting_a_workflow_starts_an_execution_per_event(base):
    kind = f"test.signup.{uuid.uuid4().hex[:6]}"
    create(base, "on-signup", doc("on-signup", [{"greet": {"set": {"hi": "${ .user }"}}}]))
    r = requests.post(f"{base}/v1/event/subscriptions",
                      json={"eventType": kind, "workflow": "on-signup", "name": "signups"})
    assert r.status_code in (200, 201), r.text
    wait_until(lambda: requests.get(f"{base}/v1/event/subscriptions/signups").json()
               ["status"] == "READY", what="subscription READY")
    event = {"specversion": "1.0", "id": "e-1", "source": "/test", "type": kind,
             "data": {"user": "jon"}}
    for _ in range(2):  # a duplicate is delivered once
        assert requests.post(f"{base}/v1/event", json=event).status_code == 200
    done = wait_until(lambda: [e for e in requests.get(
        f"{base}/v1/executions", params={"workflowName": "on-signup"}).json()
        if e["status"] == "completed"], what="the execution")
    assert done[0]["output"] == {"hi": "jon"}
    assert done[0]["trigger"]["subscription"] == "signups"
    assert len(requests.get(f"{base}/v1/executions",
                            params={"workflowName": "on-signup"}).json()) == 1


def test_schedule_on_starts_the_workflow_when_its_event_arrives(base):
    kind = f"test.ping.{uuid.uuid4().hex[:6]}"
    create(base, "on-ping", doc("on-ping", [{"seen": {"set": {"events": "${ length }"}}}],
                                schedule={"on": {"one": {"with": {"type": kind}}}}))
    event = {"specversion": "1.0", "id": "p-1", "source": "/test", "type": kind, "data": {}}
    assert requests.post(f"{base}/v1/event", json=event).status_code == 200
    done = wait_until(lambda: [e for e in requests.get(
        f"{base}/v1/executions", params={"workflowName": "on-ping"}).json()
        if e["status"] == "completed"], what="the execution")
    assert done[0]["output"] == {"events": 1}
    assert done[0]["trigger"]["kind"] == "event"


def test_schedule_every_starts_executions_from_the_scheduler(base):
    create(base, "ticker", doc("ticker", [{"t": {"set": {"tick": True}}}],
                               schedule={"every": {"seconds": 1}}))
    ticks = wait_until(lambda: (lambda l: l if len(l) >= 2 else None)([
        e for e in requests.get(f"{base}/v1/executions",
                                params={"workflowName": "ticker"}).json()
        if e["status"] == "completed"]), what="two scheduled executions")
    assert all(e["trigger"]["kind"] == "schedule" for e in ticks)
    times = [e["trigger"]["scheduledTime"] for e in ticks]
    assert len(set(times)) == len(times)  # one execution per tick
    requests.delete(f"{base}/v1/workflow/ticker")


def test_gateway_route_to_a_workflow_answers_with_its_output(base, functions):
    create(base, "gw", doc("gw", [{"inc": {"call": "add", "with": {"n": "${ .n }", "by": 2}}}]))
    r = requests.post(f"{base}/v1/api", json={"name": "gw-api", "workflow": "gw",
                                              "methods": ["POST"], "uris": ["/gw"]})
    assert r.status_code in (200, 201), r.text
    wait_until(lambda: requests.get(f"{base}/v1/api/gw-api").json()["status"] == "READY",
               what="API READY")
    answer = wait_until(lambda: (lambda r: r if r.status_code != 404 else None)(
        requests.post(f"{base}/default/gw", json={"n": 5})), what="the route")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"n": 7}


def test_run_script_runs_sandboxed_code(base):
    create(base, "scripted", doc("scripted", [
        {"compute": {"run": {"script": {
            "language": "python", "arguments": ["${ .n | tostring }"],
            "code": "import sys, json\nprint(json.dumps({'double': 2 * int(sys.argv[1])}))"}}}},
        {"parse": {"set": {"result": "${ fromjson }"}}},
    ]))
    execution = start(base, "scripted", {"n": 21})
    assert execution["status"] == "completed", execution
    assert execution["output"] == {"result": {"double": 42}}
    create(base, "offline", doc("offline", [
        {"reach": {"run": {"script": {"language": "python", "code":
            "import urllib.request\nurllib.request.urlopen('http://127.0.0.1:6379', timeout=2)"}}}}]))
    faulted = start(base, "offline", {})
    assert faulted["status"] == "faulted"  # no network in the sandbox
    assert faulted["error"]["type"].endswith("/errors/runtime")


def test_schedule_after_starts_again_once_an_execution_completes(base):
    create(base, "again", doc("again", [{"t": {"set": {"ran": True}}}],
                              schedule={"after": {"seconds": 1}}))
    first = start(base, "again", {})
    assert first["status"] == "completed"
    follower = wait_until(lambda: [e for e in requests.get(
        f"{base}/v1/executions", params={"workflowName": "again"}).json()
        if e["trigger"].get("after") == first["name"] and e["status"] == "completed"],
        what="the execution started after the first")
    assert follower[0]["createdTime"] >= first["finishedTime"]
    requests.delete(f"{base}/v1/workflow/again")  # ends the chain


def test_the_openapi_document_has_the_workflow_endpoints(base):
    paths = requests.get(f"{base}/openapi.json").json()["paths"]
    for path in ("/v1/workflow", "/v1/workflow/{workflow_name}", "/v1/executions",
                 "/v1/executions/{execution_name}", "/v1/executions/{execution_name}/cancel",
                 "/v1/executions/{execution_name}/suspend",
                 "/v1/executions/{execution_name}/resume"):
        assert path in paths, path


def test_secrets_reach_calls_but_never_the_record(server, base, http_target):
    r = requests.post(f"{base}/v1/secret", json={"name": "api-key",
                                                 "secrets": {"token": "Sesame-42x"}})
    assert r.status_code == 201, r.text
    create(base, "secretive", doc("secretive", [
        {"get": {"call": "http", "with": {
            "method": "get", "endpoint": http_target + "/headers",
            "headers": {"Authorization": '${ "Bearer " + $secret["api-key"].token }'}}}}],
        use={"secrets": ["api-key"]}))
    execution = start(base, "secretive", {})
    assert execution["status"] == "completed", execution
    record = json.dumps(get_execution(base, execution["name"]))
    assert "Sesame-42x" not in record  # the output echoed it: redacted
    assert execution["output"]["authorization"].startswith("Bearer ")
    # nor the store at rest: the call's activity record (its header) is sealed, like secrets
    home = pathlib.Path(server.settings.home)
    stored = b"".join(p.read_bytes() for p in home.glob("dispatch.db*"))
    assert b"Sesame-42x" not in stored
    create(base, "no-secret", doc("no-secret", [
        {"read": {"set": {"x": '${ $secret["missing-one"].token }'}}}],
        use={"secrets": ["missing-one"]}))
    faulted = start(base, "no-secret", {})
    assert faulted["status"] == "faulted"
    assert faulted["error"]["type"].endswith("/errors/authorization"), faulted["error"]
