"""Invocation latency and throughput, measured side by side with raw Dramatiq.

    python bench/invoke.py --mode embedded|distributed

Phases, in one run: warm blocking runs of a no-op function at concurrency 1 (p50, p99);
the same with 1–2 s idle gaps between calls (the broker must not add its idle-poll
delay); non-blocking runs at concurrency 16 until all are READY (runs/s); and a no-op
Dramatiq actor's throughput on the same broker (raw jobs/s). The last line is
``p50_ms=… p99_ms=… idle_p99_ms=… runs_per_s=… raw_jobs_per_s=… ratio=…``.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cluster import ROOT, Client, Cluster  # noqa: E402
from engine.sources import pack  # noqa: E402

NOOP = "def handle(ctx, payload):\n    return payload\n"


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def create_noop(client: Client, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "noop.py")
        with open(path, "w") as f:
            f.write(NOOP)
        source = base64.b64encode(pack(path)).decode()
    status, body = client.call("POST", "/v1/function", {
        "name": name, "image": "python3", "handler": "noop.handle", "source": source})
    assert status == 201, body
    while client.call("GET", f"/v1/function/{name}")[1]["status"] not in ("READY", "ERROR"):
        time.sleep(0.05)


def blocking_latencies(client: Client, name: str, n: int, gap: tuple[float, float] | None = None):
    latencies = []
    for _ in range(n):
        if gap:
            time.sleep(random.uniform(*gap))
        start = time.perf_counter()
        status, run = client.call("POST", f"/v1/runs?functionName={name}",
                                  {"input": {"x": 1}, "blocking": True})
        latencies.append((time.perf_counter() - start) * 1000)
        assert status == 200 and run["status"] == "READY", run
    return latencies


def http_floor(client: Client, n: int) -> list[float]:
    """The server's own request floor on this host, now: a keep-alive GET /healthz."""
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        client.call("GET", "/healthz")
        latencies.append((time.perf_counter() - start) * 1000)
    return latencies


def async_throughput(port: int, store_url: str, name: str, n: int, concurrency: int = 16,
                     token: str | None = None) -> float:
    """Submit ``n`` non-blocking runs from ``concurrency`` clients; runs/s until all settle.

    Completion is observed through a watch on the store, so that the measuring adds no
    load on the API being measured.
    """
    from engine import entities as E
    from engine.store import open_store

    store = open_store(store_url)
    settled: set[str] = set()
    all_settled = threading.Event()

    def follow(watch):
        for change in watch:
            run = change.entity
            if run and run.get("functionName") == name and run["status"] in ("READY", "ERROR"):
                settled.add(run["name"])
                if len(settled) >= n:
                    all_settled.set()
                    return

    watch = store.watch(E.prefix(E.RUN, "default"))
    threading.Thread(target=follow, args=(watch,), daemon=True).start()
    local = threading.local()

    def submit(_):
        if not hasattr(local, "client"):
            local.client = Client(port, token=token)
        status, run = local.client.call("POST", f"/v1/runs?functionName={name}", {"input": {}})
        assert status == 202, run
        return run["name"]

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(submit, range(n)))
    submitted = time.perf_counter() - start
    if not all_settled.wait(600):
        raise RuntimeError(f"only {len(settled)} of {n} runs settled")
    elapsed = time.perf_counter() - start
    print(f"  submitted {n} in {submitted:.2f} s ({n / submitted:.0f}/s), "
          f"all settled after {elapsed:.2f} s", flush=True)
    watch.close()
    store.close()
    return n / elapsed


def raw_dramatiq_throughput(mode: str, redis_url: str, n: int, concurrency: int = 16) -> float:
    """A no-op actor on the same broker, sent from ``concurrency`` threads.

    Embedded: Dramatiq's StubBroker with in-process worker threads, as ``dispatch up``
    runs its jobs. Distributed: Redis, consumed by a ``dramatiq`` process started with
    the Procfile worker's own processes and threads.
    """
    import dramatiq

    if mode == "embedded":
        from tasks.broker import make_broker

        broker = make_broker("stub://")
        actor = dramatiq.Actor(lambda i: None, broker=broker, actor_name="bench_noop",
                               queue_name="bench", priority=0, options={"max_retries": 0})
        worker = dramatiq.Worker(broker, worker_threads=8, worker_timeout=100)
        worker.start()
        stop = worker.stop
        join_options = {}
    else:
        os.environ["DISPATCH_BROKER"] = redis_url
        from bench import noop

        broker, actor = noop.broker, noop.noop
        broker.client.flushdb()
        command = procfile_worker().replace("tasks.worker", "bench.noop")
        command = command.split(" --queues")[0] + f" --queues {noop.QUEUE}"
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT,
                                env=dict(os.environ, DISPATCH_BROKER=redis_url),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

        def stop():
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)

        join_options = {"interval": 10}  # Redis' join polls the queue's size

    try:
        actor.send(-1)  # the consumer is up once this one is processed
        broker.join("bench", timeout=60_000, **join_options)
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(actor.send, range(n)))
        broker.join("bench", timeout=600_000, **join_options)
        return n / (time.perf_counter() - start)
    finally:
        stop()


def procfile_worker() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("worker:"):
            return line.partition(":")[2].strip()
    raise RuntimeError("the Procfile has no worker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--idle-calls", type=int, default=10)
    parser.add_argument("--async-runs", type=int, default=2000)
    parser.add_argument("--raw-jobs", type=int, default=10000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--auth", choices=("on", "off"), default="on",
                        help="on (the default, as users run it): every request is signed")
    args = parser.parse_args()

    cluster = Cluster(args.mode, args.redis, auth=args.auth == "on").start()
    try:
        token = cluster.token()
        client = Client(cluster.port, token=token)
        create_noop(client, "noop")
        create_noop(client, "noop-async")
        blocking_latencies(client, "noop", 50)  # warm up
        floor = http_floor(client, args.calls)
        print(f"http floor (GET /healthz, same server): p50={statistics.median(floor):.2f} ms",
              flush=True)
        lat = blocking_latencies(client, "noop", args.calls)
        print(f"blocking c=1: n={len(lat)} p50={statistics.median(lat):.2f} ms "
              f"p99={percentile(lat, 99):.2f} ms max={max(lat):.2f} ms", flush=True)
        idle = blocking_latencies(Client(cluster.port, token=token), "noop", args.idle_calls,
                                  gap=(1.0, 2.0))
        print(f"blocking after 1-2 s idle: n={len(idle)} p50={statistics.median(idle):.2f} ms "
              f"p99={percentile(idle, 99):.2f} ms", flush=True)
        runs_per_s = async_throughput(cluster.port, cluster.store_url, "noop-async",
                                      args.async_runs, token=token)
        print(f"non-blocking c=16: {args.async_runs} runs, {runs_per_s:.0f} runs/s", flush=True)
    finally:
        cluster.stop()
    raw = raw_dramatiq_throughput(args.mode, args.redis, args.raw_jobs)
    print(f"raw dramatiq no-op ({args.mode} broker): {raw:.0f} jobs/s", flush=True)
    print(f"p50_ms={statistics.median(lat):.2f} p99_ms={percentile(lat, 99):.2f} "
          f"idle_p99_ms={percentile(idle, 99):.2f} runs_per_s={runs_per_s:.0f} "
          f"raw_jobs_per_s={raw:.0f} ratio={runs_per_s / raw:.3f}")


if __name__ == "__main__":
    main()
