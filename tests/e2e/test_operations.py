"""Operating a distributed Dispatch (the Procfile's api, worker and scheduler on a real
etcd and Redis): every process live and ready on its health endpoints, `dispatch
status`, JSON logs carrying a request's trace through its job to the function, and
misconfigured processes (wrong etcd address, missing secret key, broker unreachable)
that stay up, unready, naming the problem once in their log — and, for an etcd that
comes up later, recover by themselves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
import redis
import requests
from cryptography.fernet import Fernet

from .conftest import ROOT, Processes, dispatch_cli, free_port, wait_until

REDIS_DB = 11
TRACE = "0af7651916cd43dd8448eb211c80319c"

TRACED = '''\
def handle(ctx, payload):
    print("traced function ran")
    return {"traceparent": ctx.get("traceparent")}
'''


def deployment_env(tmp_path, store: str, **extra: str) -> dict[str, str]:
    port = free_port()
    env = dict(os.environ,
               DISPATCH_STORE=store, DISPATCH_BROKER=f"redis://127.0.0.1:6379/{REDIS_DB}",
               DISPATCH_HOME=str(tmp_path / "home"), DISPATCH_API_BIND=f"127.0.0.1:{port}",
               DISPATCH_GATEWAY_BIND=f"127.0.0.1:{free_port()}",
               DISPATCH_WORKER_HEALTH_PORT=f"127.0.0.1:{free_port()}",
               DISPATCH_SCHEDULER_HEALTH_PORT=f"127.0.0.1:{free_port()}",
               DISPATCH_METRICS_DIR=str(tmp_path / "metrics"),
               DISPATCH_SECRET_KEY=Fernet.generate_key().decode(), DISPATCH_AUTH="off",
               DISPATCH_LOG_FORMAT="json",
               DISPATCH_CONFIG=str(tmp_path / "cli.json"), DISPATCH_HOST="127.0.0.1",
               DISPATCH_PORT=str(port), DISPATCH_SCHEME="http",
               DISPATCH_ORGANIZATION="ops" + uuid.uuid4().hex[:8])
    env.update(extra)
    env["url"] = f"http://127.0.0.1:{port}"
    env["worker_url"] = "http://" + env["DISPATCH_WORKER_HEALTH_PORT"]
    env["scheduler_url"] = "http://" + env["DISPATCH_SCHEDULER_HEALTH_PORT"]
    return env


def readiness(url: str) -> tuple[int, dict] | None:
    try:
        response = requests.get(f"{url}/readyz", timeout=5)
        return response.status_code, response.json()
    except requests.RequestException:
        return None


def ready(url: str) -> bool:
    answer = readiness(url)
    return answer is not None and answer[0] == 200


def problems(url: str) -> list[str] | None:
    answer = readiness(url)
    return answer[1]["problems"] if answer and answer[0] == 503 else None


def json_lines(path) -> list[dict]:
    records = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


@pytest.fixture
def cluster(etcd_endpoint, tmp_path):
    redis.Redis(db=REDIS_DB).flushdb()
    env = deployment_env(tmp_path, f"etcd://{etcd_endpoint}")
    procs = Processes(env, tmp_path)
    for name in ("api", "worker", "scheduler"):
        procs.start(name)
    try:
        for url in (env["url"], env["worker_url"], env["scheduler_url"]):
            wait_until(lambda: ready(url), 60, what=f"{url}/readyz")
        yield env, procs
    finally:
        procs.stop_all()


def test_every_process_is_live_and_ready_and_dispatch_status_says_so(cluster):
    env, procs = cluster
    for url, role in ((env["url"], "api"), (env["worker_url"], "worker"),
                      (env["scheduler_url"], "scheduler")):
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        code, report = readiness(url)
        assert code == 200 and report["role"] == role and report["ready"] is True
        names = {c["name"] for c in report["checks"]}
        assert {"store", "broker", "startup"} <= names
    worker = readiness(env["worker_url"])[1]
    actors = next(c for c in worker["checks"] if c["name"] == "actors")
    assert actors["ok"] and "consuming events, functions, images, runs" in actors["message"]
    status = dispatch_cli("status", "--process", f"worker={env['worker_url']}",
                          "--process", f"scheduler={env['scheduler_url']}", env=env).stdout
    assert "api (" in status and "ready, role api, version" in status
    assert "worker (" in status and "Dispatch is ready" in status
    # a process that is gone makes `dispatch status` fail and say which
    procs.kill("scheduler")
    result = dispatch_cli("status", "--process", f"scheduler={env['scheduler_url']}",
                          env=env, check=False)
    assert result.returncode == 1
    assert f"scheduler ({env['scheduler_url']}): DOWN" in result.stdout
    assert "Dispatch is NOT ready" in result.stdout


def test_json_logs_carry_the_request_trace_through_the_job_to_the_function(cluster, tmp_path):
    env, procs = cluster
    source = tmp_path / "src" / "traced.py"
    source.parent.mkdir()
    source.write_text(TRACED)
    dispatch_cli("create", "function", "traced", str(source), "--image", "python3",
                 "--handler", "traced.handle", env=env)
    org = env["DISPATCH_ORGANIZATION"]
    wait_until(lambda: requests.get(f"{env['url']}/v1/function/traced",
                                    headers={"X-Dispatch-Org": org}).json()["status"] == "READY",
               60, what="the function to be READY")
    answer = requests.post(f"{env['url']}/v1/runs?functionName=traced",
                           json={"blocking": True, "input": {}},
                           headers={"X-Dispatch-Org": org, "X-Request-Id": "ops-req-1",
                                    "traceparent": f"00-{TRACE}-b7ad6b7169203331-01"})
    run = answer.json()
    assert run["status"] == "READY", run
    assert run["output"]["traceparent"].startswith(f"00-{TRACE}-")  # in the function's ctx
    assert answer.headers["traceparent"].startswith(f"00-{TRACE}-")

    def logged():
        api = [r for r in json_lines(tmp_path / "api.log")
               if r.get("trace_id") == TRACE and r["message"].startswith("http.request")]
        worker = [r for r in json_lines(tmp_path / "worker.log")
                  if r.get("trace_id") == TRACE and r.get("run") == run["name"]
                  and r["message"].startswith("run.ready")]
        return (api, worker) if api and worker else None

    api, worker = wait_until(logged, 30, what="the api's and the worker's log lines")
    assert api[0]["request_id"] == "ops-req-1" and api[0]["org"] == org
    assert "route=/v1/runs status=200" in api[0]["message"]
    assert worker[0]["job"] == "execute_run" and worker[0]["org"] == org
    # every line of every process is one JSON object (Dramatiq's own included)
    for name in ("api", "worker", "scheduler"):
        for line in (tmp_path / f"{name}.log").read_text().splitlines():
            if line.startswith("{"):
                json.loads(line)
    assert env["DISPATCH_SECRET_KEY"] not in (tmp_path / "api.log").read_text()


def start_alone(name: str, env: dict, tmp_path) -> Processes:
    procs = Processes(env, tmp_path)
    procs.start(name)
    return procs


def test_a_wrong_etcd_address_fails_readiness_naming_it_and_heals_when_etcd_comes(tmp_path):
    etcd_port, peer_port = free_port(), free_port()
    env = deployment_env(tmp_path, f"etcd://127.0.0.1:{etcd_port}")
    procs = start_alone("api", env, tmp_path)
    etcd = None
    try:
        reason = f"no etcd endpoint is reachable: 127.0.0.1:{etcd_port}"
        found = wait_until(lambda: problems(env["url"]), 60, what="the api's /readyz")
        assert any(reason in p for p in found), found
        assert requests.get(f"{env['url']}/healthz", timeout=5).status_code == 200  # live
        refused = requests.get(f"{env['url']}/v1/function", timeout=10)
        assert refused.status_code == 503 and reason in refused.json()["message"]
        status = dispatch_cli("status", env=env, check=False)
        assert status.returncode == 1 and reason in status.stdout
        # etcd at that address now: the process assembles itself and becomes ready
        etcd = subprocess.Popen(
            [shutil.which("etcd"), "--data-dir", str(tmp_path / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: ready(env["url"]), 90, what="the api to become ready")
        # each of gunicorn's two workers assembles its own engine: both, in time
        for _ in range(4):
            wait_until(lambda: requests.get(f"{env['url']}/v1/function", timeout=10,
                                            headers={"X-Dispatch-Org": "default"}
                                            ).status_code == 200, 90,
                       what="the api to serve /v1/function")
    finally:
        procs.stop_all()
        if etcd is not None:
            etcd.kill()
            etcd.wait()
    failed = [r for r in json_lines(tmp_path / "api.log")
              if r["message"].startswith("startup.failed") and reason in r["message"]]
    # said once per api process (gunicorn runs two), not at every retry
    assert 1 <= len(failed) <= 2


def test_a_missing_secret_key_fails_readiness_naming_it_without_crash_looping(
        etcd_endpoint, tmp_path):
    env = deployment_env(tmp_path, f"etcd://{etcd_endpoint}")
    del env["DISPATCH_SECRET_KEY"]
    procs = start_alone("scheduler", env, tmp_path)
    try:
        found = wait_until(lambda: problems(env["scheduler_url"]), 60,
                           what="the scheduler's /readyz")
        assert len(found) == 1 and found[0].startswith(
            "startup: DISPATCH_SECRET_KEY is required with DISPATCH_STORE=etcd://"), found
        assert requests.get(f"{env['scheduler_url']}/healthz", timeout=5).status_code == 200
        assert procs.procs["scheduler"].poll() is None  # up, not crashed
    finally:
        procs.stop_all()
    failed = [r for r in json_lines(tmp_path / "scheduler.log")
              if r["message"].startswith("startup.failed")]
    assert len(failed) == 1 and "DISPATCH_SECRET_KEY" in failed[0]["message"]
    assert "fix the configuration and restart" in failed[0]["message"]


def test_an_unreachable_broker_fails_the_worker_readiness_naming_it(etcd_endpoint, tmp_path):
    port = free_port()  # nothing listens there
    env = deployment_env(tmp_path, f"etcd://{etcd_endpoint}",
                         DISPATCH_BROKER=f"redis://127.0.0.1:{port}/0")
    procs = start_alone("worker", env, tmp_path)
    try:
        found = wait_until(lambda: problems(env["worker_url"]), 60,
                           what="the worker's /readyz")
        broker = [p for p in found if p.startswith("broker:")]
        assert broker and f"broker redis://127.0.0.1:{port}/0: " in broker[0], found
        assert "Connection refused" in broker[0]
        assert procs.procs["worker"].poll() is None
    finally:
        procs.stop_all()
