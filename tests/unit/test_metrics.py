"""The metrics: what each records and under which labels (route templates, not paths;
functions as org/name; job outcomes), on an in-process engine (memory store, stub
broker, Dramatiq worker threads) and the exposition in multiprocess mode."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import dramatiq
import pytest
from prometheus_client import REGISTRY

from api.app import create_app
from engine import entities as E
from engine.observability import metrics
from engine.drivers.base import Outcome
from engine.jobs import RecordingJobs
from engine.scheduler.reconciler import Reconciler
from engine.settings import Settings
from engine.sources import pack
from engine.store import open_store
from engine.store.instrumented import InstrumentedStore, instrumented
from tasks.actors import assemble
from tasks.broker import make_broker

from .test_services import ScriptedDriver


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def system(tmp_path):
    broker = make_broker("stub://")
    settings = Settings(home=str(tmp_path), store_url="memory://", auth="off")
    system = assemble(settings, broker, driver=ScriptedDriver())
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    yield system, broker
    worker.stop()
    system.close()


def make_function(system, broker, name: str, tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def handle(ctx, payload):\n    return payload\n")
    source = base64.b64encode(pack(str(path))).decode()
    system.functions.create("acme", {"name": name, "image": "python3",
                                     "handler": "m.handle", "source": source})
    broker.join("functions", timeout=10_000)
    assert system.functions.get("acme", name)["status"] == E.READY


def test_runs_are_counted_by_function_and_status_and_timed(system, tmp_path):
    system, broker = system
    make_function(system, broker, "counted", tmp_path)
    fn = "acme/counted"
    ready, errors = (value("dispatch_runs_total", function=fn, status="READY", error_type=""),
                     value("dispatch_runs_total", function=fn, status="ERROR",
                           error_type="FunctionError"))
    durations = value("dispatch_run_duration_seconds_count", function=fn)
    waits = value("dispatch_run_queue_wait_seconds_count", function=fn)
    for _ in range(3):
        system.runs.start("acme", "counted", {"input": {}})
    broker.join("runs", timeout=10_000)
    system.driver.outcome = Outcome(error={"type": "FunctionError", "message": "boom",
                                           "stacktrace": []}, cold_start_ms=12.5)
    colds = value("dispatch_cold_start_seconds_count", driver="scripted", language="python3")
    system.runs.start("acme", "counted", {"input": {}})
    broker.join("runs", timeout=10_000)
    assert value("dispatch_runs_total", function=fn, status="READY", error_type="") == ready + 3
    assert value("dispatch_runs_total", function=fn, status="ERROR",
                 error_type="FunctionError") == errors + 1
    assert value("dispatch_run_duration_seconds_count", function=fn) == durations + 4
    assert value("dispatch_run_queue_wait_seconds_count", function=fn) == waits + 4
    assert value("dispatch_cold_start_seconds_count", driver="scripted",
                 language="python3") == colds + 1


def test_jobs_are_counted_by_actor_and_outcome(system, tmp_path):
    system, broker = system
    before = value("dispatch_jobs_total", actor="create_function", outcome="succeeded")
    failed = value("dispatch_jobs_total", actor="execute_run", outcome="failed")
    make_function(system, broker, "jobbed", tmp_path)
    assert value("dispatch_jobs_total", actor="create_function", outcome="succeeded") == before + 1
    assert value("dispatch_job_duration_seconds_count", actor="create_function") >= 1
    assert value("dispatch_jobs_in_progress", actor="create_function") == 0
    # a job that raises (its run's store vanished under it) is a failure, then retried
    original = system.runs.execute
    system.runs.execute = lambda key: (_ for _ in ()).throw(RuntimeError("store gone"))
    try:
        system.jobs.actors["execute_run"].send_with_options(args=("/dispatch/run/acme/x",),
                                                            max_retries=0)
        broker.join("runs", timeout=10_000, fail_fast=False)
    finally:
        system.runs.execute = original
    assert value("dispatch_jobs_total", actor="execute_run", outcome="failed") == failed + 1


def test_http_requests_are_labelled_by_route_template_never_by_path(system):
    system, broker = system
    client = create_app(system).test_client()
    route = "/v1/function/<string:function_name>"
    before = value("dispatch_http_requests_total", server="api", route=route, method="GET",
                   code="404")
    for name in ("a", "b", "c"):
        assert client.get(f"/v1/function/{name}", headers={"X-Dispatch-Org": "acme"}
                          ).status_code == 404
    assert value("dispatch_http_requests_total", server="api", route=route, method="GET",
                 code="404") == before + 3
    assert value("dispatch_http_request_duration_seconds_count", server="api", route=route,
                 method="GET") >= 3
    text = client.get("/metrics").get_data(as_text=True)
    assert 'route="/v1/function/<string:function_name>"' in text
    assert "/v1/function/a" not in text  # raw paths never become labels


def test_store_operations_are_timed_once_by_backend_and_operation(system):
    system, _ = system
    assert isinstance(system.store, InstrumentedStore)
    assert instrumented(system.store) is system.store  # never wrapped twice
    gets = value("dispatch_store_operation_seconds_count", backend="memory", operation="get")
    errors = value("dispatch_store_operation_errors_total", backend="memory", operation="get",
                   error="NotFound")
    with pytest.raises(Exception):
        system.store.get(E.FUNCTION, "acme", "missing")
    assert value("dispatch_store_operation_seconds_count", backend="memory",
                 operation="get") == gets + 1
    assert value("dispatch_store_operation_errors_total", backend="memory", operation="get",
                 error="NotFound") == errors + 1


def test_reconciler_redrives_are_counted_by_kind_and_action():
    store, jobs = open_store("memory://"), RecordingJobs()
    reconciler = Reconciler(store, jobs, stuck_seconds=0)
    before = value("dispatch_reconciler_redrives_total", kind="run",
                   action="resubmitted_execute_run")
    store.add(E.new(E.RUN, "acme", "stuck", functionName="f"))
    reconciler.reconcile_once(now=time.time() + 1)
    assert value("dispatch_reconciler_redrives_total", kind="run",
                 action="resubmitted_execute_run") == before + 1


def test_warm_pool_sizes_follow_acquire_and_release():
    import logging

    from engine.drivers.base import Deployment
    from engine.drivers.pool import WarmPools

    class Inst:
        def __init__(self, n):
            self.iid, self.cold_start_ms, self.unreported_cold_ms = f"i{n}", 1.0, None
            self.last_used = 0.0

        def alive(self):
            return True

    counter = iter(range(100))
    pools = WarmPools(setup=lambda d: None, start=lambda d: Inst(next(counter)),
                      dispose=lambda insts: None, max_per_version=4, idle_seconds=60,
                      log=logging.getLogger("test"), driver="pooltest")
    dep = Deployment(org="acme", name="pooled", version="v1", handler="m.h",
                     language="python3", image="python3", timeout_ms=1000,
                     source=lambda: b"")

    def sizes():
        return (value("dispatch_warm_instances", driver="pooltest", function="acme/pooled",
                      state="idle"),
                value("dispatch_warm_instances", driver="pooltest", function="acme/pooled",
                      state="busy"))

    try:
        pool = pools.prepared(dep, for_run=True)
        assert sizes() == (1, 0)
        first, _ = pools.acquire(pool)
        second, _ = pools.acquire(pool)  # a second instance is started
        assert sizes() == (0, 2)
        pools.release(pool, first)
        assert sizes() == (1, 1)
        pools.discard(pool, second)
        assert sizes() == (1, 0)
        pools.retire(dep)
        assert sizes() == (0, 0)
    finally:
        pools.close()


def test_multiprocess_exposition_sums_processes_and_drops_dead_live_gauges(tmp_path):
    """Two processes write into one PROMETHEUS_MULTIPROC_DIR: /metrics sums their
    counters; the live gauge of the one that exited is gone, its counter stays."""
    script = (
        "import sys, time\n"
        "from engine.observability import metrics\n"
        "metrics.RUNS.labels('acme/mp', 'READY', '').inc(int(sys.argv[1]))\n"
        "metrics.JOBS_IN_PROGRESS.labels('execute_run').inc()\n"
        "if sys.argv[2] == 'stay':\n"
        "    print('ready', flush=True); time.sleep(60)\n"
    )
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "mp"))
    subprocess.run([sys.executable, "-c", script, "2", "exit"], env=env, check=True)
    staying = subprocess.Popen([sys.executable, "-c", script, "3", "stay"], env=env,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert staying.stdout.readline().strip() == "ready"
        reader = ("from engine.observability import metrics\n"
                  "print(metrics.exposition()[0].decode())\n")
        text = subprocess.run([sys.executable, "-c", reader], env=env, check=True,
                              capture_output=True, text=True).stdout
    finally:
        staying.kill()
        staying.wait()
    assert ('dispatch_runs_total{error_type="",function="acme/mp",status="READY"} 5.0'
            in text)
    assert 'dispatch_jobs_in_progress{actor="execute_run"} 1.0' in text
