"""Distributed Dispatch: the Procfile's api, worker and scheduler as separate processes
on a real etcd and a real Redis, driven through the CLI; and what a killed worker or a
flushed queue leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest
import redis
import requests
from cryptography.fernet import Fernet

from .conftest import ROOT, Processes, dispatch_cli, free_port, wait_until

REDIS_DB = 13


@pytest.fixture
def env(etcd_endpoint, tmp_path):
    port = free_port()
    org = "e2e" + uuid.uuid4().hex[:8]
    redis.Redis(db=REDIS_DB).flushdb()
    env = dict(os.environ,
               DISPATCH_STORE=f"etcd://{etcd_endpoint}",
               DISPATCH_BROKER=f"redis://127.0.0.1:6379/{REDIS_DB}",
               DISPATCH_HOME=str(tmp_path / "home"),
               DISPATCH_API_BIND=f"127.0.0.1:{port}",
               DISPATCH_GATEWAY_BIND=f"127.0.0.1:{free_port()}",
               DISPATCH_RECONCILE_SECONDS="0.5", DISPATCH_STUCK_SECONDS="2",
               DISPATCH_CLAIM_GRACE_SECONDS="1",
               # every process of a distributed Dispatch shares one secrets key
               DISPATCH_SECRET_KEY=Fernet.generate_key().decode(), DISPATCH_AUTH="off",
               # the CLI's context: no config file, everything from the environment
               DISPATCH_METRICS_DIR=str(tmp_path / "metrics"),
               DISPATCH_CONFIG=str(tmp_path / "cli.json"), DISPATCH_HOST="127.0.0.1",
               DISPATCH_PORT=str(port), DISPATCH_SCHEME="http", DISPATCH_ORGANIZATION=org)
    env["url"] = f"http://127.0.0.1:{port}"
    return env


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def run_status(env, name):
    r = requests.get(f"{env['url']}/v1/runs/{name}",
                     headers={"X-Dispatch-Org": env["DISPATCH_ORGANIZATION"]})
    return r.json()


def test_procfile_under_honcho_runs_a_function_through_the_cli(env, hello_file, tmp_path):
    log = open(tmp_path / "honcho.log", "wb")
    honcho = subprocess.Popen(["honcho", "start", "-f", "Procfile"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: healthy(env["url"]), 60, what="the api process")
        out = dispatch_cli("create", "function", "hello", str(hello_file), "--image", "python3",
                           "--handler", "hello.handle", "--wait", env=env).stdout
        assert "hello" in out
        run = dispatch_cli("exec", "hello", "--wait", "--input",
                           '{"name": "Jon", "place": "Winterfell"}', "-o", "json", env=env).stdout
        assert '"Hello, Jon from Winterfell"' in run and '"READY"' in run
        listed = dispatch_cli("get", "runs", "hello", env=env).stdout
        assert "READY" in listed
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(timeout=30)
    assert (tmp_path / "honcho.log").exists()


@pytest.fixture
def cluster(env, tmp_path):
    procs = Processes(env, tmp_path)
    for name in ("api", "worker", "scheduler"):
        procs.start(name)
    try:
        wait_until(lambda: healthy(env["url"]), 60, what="the api process")
        yield procs
    finally:
        procs.stop_all()


def create_slow(env, slow_file):
    dispatch_cli("create", "function", "slow", str(slow_file), "--image", "python3",
                 "--handler", "slow.handle", "--timeout", "3000", "--wait", env=env)


def test_run_finishes_after_its_worker_is_killed_mid_run(env, cluster, slow_file):
    create_slow(env, slow_file)
    run = requests.post(f"{env['url']}/v1/runs?functionName=slow", json={"input": {"seconds": 1.5}},
                        headers={"X-Dispatch-Org": env["DISPATCH_ORGANIZATION"]}).json()
    wait_until(lambda: run_status(env, run["name"])["status"] == "CREATING", 30,
               interval=0.02, what="the worker to claim the run")
    cluster.kill("worker")  # kill -9, mid-run
    cluster.start("worker")
    done = wait_until(lambda: (lambda r: r if r["status"] in ("READY", "ERROR") else None)(
        run_status(env, run["name"])), 60, what="the run to settle")
    assert done["status"] == "READY", (done, cluster.logs())
    assert done["output"] == {"slept": 1.5}


def test_run_finishes_after_its_message_is_lost(env, cluster, slow_file):
    create_slow(env, slow_file)
    cluster.kill("worker")
    run = requests.post(f"{env['url']}/v1/runs?functionName=slow", json={"input": {"seconds": 0}},
                        headers={"X-Dispatch-Org": env["DISPATCH_ORGANIZATION"]}).json()
    redis.Redis(db=REDIS_DB).flushdb()  # the queued message is gone
    cluster.start("worker")
    done = wait_until(lambda: (lambda r: r if r["status"] in ("READY", "ERROR") else None)(
        run_status(env, run["name"])), 60, what="the run to settle")
    assert done["status"] == "READY", (done, cluster.logs())
