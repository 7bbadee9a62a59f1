"""Durable workflows on etcd + Redis with the Procfile's api, worker and scheduler: a
sequence of 100 function calls and a fork of 200 branches complete while a loop
``kill -9``s the worker processes every few seconds, and the history shows every task
once, completed."""

from __future__ import annotations

import collections
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
from cryptography.fernet import Fernet

from .conftest import Processes, dispatch_cli, free_port, wait_until

REDIS_DB = 11
# a call takes a moment, so that the workers die many times while the workflows run
INC = '''\
import time

def handle(ctx, payload):
    time.sleep(0.2)
    return {"n": payload.get("n", 0) + 1}
'''
SEQUENCE = 100
BRANCHES = 200
#: seconds between two kills of the worker processes
KILL_EVERY = 8.0
DSL = {"dsl": "1.0.0", "namespace": "durability", "version": "0.1.0"}

# every kill costs a worker boot (seconds on a loaded machine) and the reconciler's delay
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture
def env(etcd_endpoint, tmp_path):
    port = free_port()
    redis.Redis(db=REDIS_DB).flushdb()
    env = dict(os.environ,
               DISPATCH_STORE=f"etcd://{etcd_endpoint}",
               DISPATCH_BROKER=f"redis://127.0.0.1:6379/{REDIS_DB}",
               DISPATCH_HOME=str(tmp_path / "home"),
               DISPATCH_API_BIND=f"127.0.0.1:{port}",
               DISPATCH_RECONCILE_SECONDS="0.5", DISPATCH_STUCK_SECONDS="2",
               DISPATCH_CLAIM_GRACE_SECONDS="1",
               # a run whose worker is killed is started again, up to this many times (the
               # loop may kill the same run's worker several times in a row: each new
               # worker cold-starts the function first)
               DISPATCH_RUN_ATTEMPTS="10",
               DISPATCH_SECRET_KEY=Fernet.generate_key().decode(), DISPATCH_AUTH="off",
               DISPATCH_CONFIG=str(tmp_path / "cli.json"), DISPATCH_HOST="127.0.0.1",
               DISPATCH_PORT=str(port), DISPATCH_SCHEME="http",
               DISPATCH_ORGANIZATION="wf" + uuid.uuid4().hex[:8])
    env["url"] = f"http://127.0.0.1:{port}"
    return env


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


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


class Killer:
    """kill -9 the worker processes ``every`` seconds after they are ready for work (a
    loaded machine may take longer than that to boot them), and start them again."""

    def __init__(self, cluster: Processes, every: float, log: Path):
        self.cluster, self.every, self.log = cluster, every, log
        self.kills = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Killer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _ready(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("ready for action")
        except OSError:
            return 0

    def _loop(self) -> None:
        generation = 1  # the cluster started the first one
        while True:
            deadline = time.monotonic() + 120
            # both worker processes of this generation are up (two per generation)
            while self._ready() < 2 * generation and time.monotonic() < deadline:
                if self._stop.wait(0.2):
                    return
            generation = max(generation, self._ready() // 2) + 1
            if self._stop.wait(self.every):
                return
            try:
                self.cluster.kill("worker")  # SIGKILL to the whole process group
                self.kills += 1
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(f"kill: {exc!r}")
            finally:
                if "worker" not in self.cluster.procs:
                    self.cluster.start("worker")


def api(env, method, path, **kw):
    headers = {"X-Dispatch-Org": env["DISPATCH_ORGANIZATION"]}
    return requests.request(method, env["url"] + path, headers=headers, timeout=30, **kw)


def execution(env, name):
    return api(env, "GET", f"/v1/executions/{name}").json()


def test_workflows_complete_while_workers_are_killed(env, cluster, tmp_path):
    source = tmp_path / "inc" / "inc.py"
    source.parent.mkdir()
    source.write_text(INC)
    # a short timeout: a run claimed by a killed worker is taken back 6 s + the grace
    # later (long enough for a new worker's cold start, a few seconds on a loaded machine)
    dispatch_cli("create", "function", "inc", str(source), "--image", "python3",
                 "--handler", "inc.handle", "--timeout", "6000", "--wait", env=env)
    sequence = {"document": dict(DSL, name="sequence"), "do": [
        {f"step{i}": {"call": "inc", "with": {"n": "${ .n }"}}} for i in range(SEQUENCE)]}
    fanout = {"document": dict(DSL, name="fanout"), "do": [
        {"fan": {"fork": {"branches": [
            {f"b{i}": {"call": "inc", "with": {"n": i}}} for i in range(BRANCHES)]}}}]}
    for name, definition in (("sequence", sequence), ("fanout", fanout)):
        r = api(env, "POST", "/v1/workflow", json={"name": name, "definition": definition})
        assert r.status_code == 201, r.text

    with Killer(cluster, KILL_EVERY, tmp_path / "worker.log") as killer:
        started = {name: api(env, "POST", "/v1/executions", params={"workflowName": name},
                             json={"input": {"n": 0}}).json()["name"]
                   for name in ("sequence", "fanout")}
        done = {}
        for name, execution_name in started.items():
            done[name] = wait_until(
                lambda: (lambda e: e if e["status"] in ("completed", "faulted", "cancelled")
                         else None)(execution(env, execution_name)),
                900, interval=1.0, what=f"the {name} execution to finish")
    assert not killer.errors, killer.errors
    assert killer.kills >= 3, "the workers were not killed while the workflows ran"

    seq = done["sequence"]
    assert seq["status"] == "completed", (seq.get("error"), cluster.logs())
    assert seq["output"] == {"n": SEQUENCE}
    calls = [t for t in seq["tasks"] if t["name"].startswith("step")]
    assert [t["name"] for t in calls] == [f"step{i}" for i in range(SEQUENCE)]
    assert all(t["status"] == "completed" for t in calls)
    assert len({t["id"] for t in calls}) == SEQUENCE

    fan = done["fanout"]
    assert fan["status"] == "completed", (fan.get("error"), cluster.logs())
    assert sorted(o["n"] for o in fan["output"]) == list(range(1, BRANCHES + 1))
    branches = [t for t in fan["tasks"] if t["name"].startswith("b")
                and t["reference"].endswith(t["name"])]
    counts = collections.Counter(t["name"] for t in branches)
    assert set(counts) == {f"b{i}" for i in range(BRANCHES)}
    assert set(counts.values()) == {1}, [n for n, c in counts.items() if c > 1]
    assert all(t["status"] == "completed" for t in branches)

    # one run per call: redelivered jobs started nothing twice
    for name, expected in (("sequence", SEQUENCE), ("fanout", BRANCHES)):
        runs = [r for r in api(env, "GET", "/v1/runs", params={"functionName": "inc"}).json()
                if {"key": "execution", "value": started[name]} in r["tags"]]
        assert len(runs) == expected
