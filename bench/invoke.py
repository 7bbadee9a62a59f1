"""Invocation latency and throughput, side by side with the original Dispatch.

    python bench/invoke.py --mode embedded|distributed [--peer] [--functions 100]

Phases, in one run: warm blocking runs of a no-op function at concurrency 1 (p50, p99)
and from 16 clients with a keep-alive connection each (runs/s), in ``--rounds``
interleaved rounds; with ``--peer``, the original Dispatch (``../shared/peers/
dispatch-original/``, started here when its kit is there) gets the same client in the
same rounds, peer first (peer, ours, peer, ours). Then blocking runs after 1–2 s idle
gaps (the broker must not add its idle-poll delay); non-blocking runs at concurrency 16
until all are READY (runs/s); and a no-op Dramatiq actor's throughput on the same broker
(raw jobs/s). The CPU of every process involved (the server's process tree — API,
workers, function servers —, etcd and a private Redis in distributed mode) is read from
/proc around the blocking phases: ``cpu_ms_per_run``, and so are their threads' voluntary
context switches (the ``switches:`` line: a thread waiting for the interpreter lock, a
lock or a socket counts one each time it sleeps). ``--functions N`` adds N no-op
functions and compares blocking runs/s round-robin over them with one function, then
prints the server's resident memory. The last line is ``p50_ms=… p99_ms=…
idle_p99_ms=… runs_per_s=… raw_jobs_per_s=… ratio=… c16_runs_per_s=… cpu_ms_per_run=…``
plus, with ``--peer``, ``peer_p50_ms=… peer_p99_ms=… peer_c16_runs_per_s=… p50_ratio=…
p99_ratio=… rps_ratio=…`` (ours over the peer's: below 1 is faster for latencies, above
1 is faster for runs/s).
"""

from __future__ import annotations

import argparse
import base64
import collections
import itertools
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
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cluster import ROOT, Client, Cluster, free_port  # noqa: E402
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


# -- side by side: blocking runs from 16 clients, the peer, CPU and memory -------------------

def blocking_concurrent(port: int, token: str | None, names: list[str], n: int,
                        concurrency: int = 16) -> tuple[float, list[float]]:
    """``n`` blocking runs from ``concurrency`` clients, each with its own keep-alive
    connection, round-robin over ``names``; returns runs/s and the latencies."""
    local = threading.local()
    latencies: list[float] = []
    counter = itertools.count()

    def one(_):
        if not hasattr(local, "client"):
            local.client = Client(port, token=token)
        name = names[next(counter) % len(names)]
        start = time.perf_counter()
        status, run = local.client.call("POST", f"/v1/runs?functionName={name}",
                                        {"input": {"x": 1}, "blocking": True})
        latencies.append((time.perf_counter() - start) * 1000)
        assert status == 200 and run["status"] == "READY", run

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - start), latencies


PEER_KIT = Path(os.environ.get("DISPATCH_PEER_KIT")
                or ROOT.parent / "shared" / "peers" / "dispatch-original")


class Peer:
    """The original Dispatch, started with its kit's ``start.sh`` (a warm ``noop``)."""

    def __init__(self, kit: Path):
        self.kit = kit
        out = subprocess.run(["bash", str(kit / "start.sh")], capture_output=True, text=True,
                             timeout=1800)
        if out.returncode:
            raise RuntimeError(f"the peer did not start: {out.stderr.strip()[-2000:]}")
        env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
        self.api, self.pid = env["PEER_API"], env["PEER_PID"]
        self.port = int(self.api.rsplit(":", 1)[1])

    def stop(self) -> None:
        subprocess.run(["bash", str(self.kit / "stop.sh"), self.pid], capture_output=True,
                       timeout=120)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()  # fields from the 3rd on (state, ppid, ...)


def process_tree(roots: list[int]) -> list[int]:
    """``roots`` and every process descending from them, now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.append(pid)
            todo += children.get(pid, [])
    return out


#: what a process is, by the first of these marks found in its command line
ROLES = (("api.gateway.wsgi", "gateway"), ("api.wsgi", "api"), ("dramatiq", "worker"),
         ("tasks.scheduler", "scheduler"), ("server.py", "functions"),
         ("server.js", "functions"), ("bwrap", "functions"), ("etcd", "etcd"),
         ("redis-server", "redis"), (" up", "dispatch up"))


def role_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    return next((role for mark, role in ROLES if mark in command), "other")


def cpu_by_role(roots: list[int]) -> collections.Counter:
    """User + system CPU seconds of the process trees under ``roots`` (reaped children
    included), by :data:`ROLES`."""
    seconds: collections.Counter = collections.Counter()
    for pid in process_tree(roots):
        fields = _stat_fields(pid)
        if fields:  # utime stime cutime cstime are fields 14–17
            seconds[role_of(pid)] += sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return seconds


def switches_by_role(roots: list[int]) -> collections.Counter:
    """Voluntary context switches of every thread now in the process trees under
    ``roots``, by :data:`ROLES`: a thread that waits (for the interpreter lock, a lock,
    a socket) counts one each time it sleeps."""
    counts: collections.Counter = collections.Counter()
    for pid in process_tree(roots):
        role = role_of(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    counts[role] += next(int(line.split()[1]) for line in f
                                         if line.startswith("voluntary_ctxt_switches:"))
            except (OSError, StopIteration):
                pass
    return counts


class CpuMeter:
    """The CPU that the process trees under ``roots`` use inside ``with`` blocks, summed
    over every block, by role; and their threads' voluntary context switches."""

    def __init__(self, roots: list[int]):
        self.roots = roots
        self.by_role: collections.Counter = collections.Counter()
        self.switches: collections.Counter = collections.Counter()

    def __enter__(self) -> "CpuMeter":
        self._before = cpu_by_role(self.roots)
        self._switches_before = switches_by_role(self.roots)
        return self

    def __exit__(self, *exc) -> None:
        after, switches = cpu_by_role(self.roots), switches_by_role(self.roots)
        for role in after.keys() | self._before.keys():
            self.by_role[role] += after[role] - self._before[role]
        for role in switches.keys() | self._switches_before.keys():
            self.switches[role] += switches[role] - self._switches_before[role]

    def switches_per_run(self, runs: int) -> str:
        """The switches a run, then ``role=switches`` for each role, the busiest first."""
        parts = " ".join(f"{role}={count / runs:.1f}"
                         for role, count in self.switches.most_common() if count > 0)
        return f"{sum(self.switches.values()) / runs:.1f} a run ({parts})"

    @property
    def seconds(self) -> float:
        return sum(self.by_role.values())

    def per_run(self, runs: int) -> str:
        """``role=ms`` a run for each role, the busiest first."""
        return " ".join(f"{role}={seconds * 1000 / runs:.2f}"
                        for role, seconds in self.by_role.most_common() if seconds > 0)


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def private_redis() -> tuple[subprocess.Popen, str]:
    """A Redis of the bench's own, so that its CPU is the runs' and nobody else's."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def fmt(lat: list[float]) -> str:
    return (f"n={len(lat)} p50={statistics.median(lat):.2f} ms p99={percentile(lat, 99):.2f} ms "
            f"max={max(lat):.2f} ms")


def many_functions(cluster: Cluster, token: str | None, count: int, runs: int,
                   rounds: int) -> tuple[float, float]:
    """Blocking runs/s (16 clients) round-robin over ``count`` functions vs one, rounds
    interleaved; then the server's resident memory with them all warm."""
    names = [f"many-{i}" for i in range(count)]
    started = time.perf_counter()
    local = threading.local()

    def create(name):
        if not hasattr(local, "client"):
            local.client = Client(cluster.port, token=token)
        create_noop(local.client, name)

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(create, names))
    print(f"many functions: {count} created and READY in {time.perf_counter() - started:.1f} s",
          flush=True)
    blocking_concurrent(cluster.port, token, names, runs)  # warm: instances for 16 clients
    one, spread = [], []
    for _ in range(rounds):
        one.append(blocking_concurrent(cluster.port, token, ["noop"], runs)[0])
        spread.append(blocking_concurrent(cluster.port, token, names, runs)[0])
    print(f"many functions c=16: one function {' '.join(f'{r:.0f}' for r in one)} runs/s; "
          f"round-robin over {count}: {' '.join(f'{r:.0f}' for r in spread)} runs/s", flush=True)
    server = [proc.pid for proc in cluster.procs]
    tree = process_tree(server)
    print(f"many functions memory: server {rss_mb(server):.0f} MB RSS; with its "
          f"{len(tree) - len(server)} child processes {rss_mb(tree):.0f} MB", flush=True)
    return statistics.median(spread) / statistics.median(one), rss_mb(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--peer", action="store_true",
                        help="measure the original Dispatch side by side (its kit: "
                             "$DISPATCH_PEER_KIT or ../shared/peers/dispatch-original)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=500, help="sequential runs per round")
    parser.add_argument("--c16-runs", type=int, default=1000,
                        help="blocking runs from 16 clients per round")
    parser.add_argument("--idle-calls", type=int, default=10)
    parser.add_argument("--async-runs", type=int, default=2000)
    parser.add_argument("--raw-jobs", type=int, default=10000)
    parser.add_argument("--functions", type=int, default=0,
                        help="also compare runs over this many functions with one")
    parser.add_argument("--redis", default="private",
                        help="distributed: a Redis URL, or 'private' (the default) to start "
                             "one of the bench's own, whose CPU is then the runs' alone")
    parser.add_argument("--auth", choices=("on", "off"), default="on",
                        help="on (the default, as users run it): every request is signed")
    parser.add_argument("--against", metavar="NAME=VALUE[,NAME=VALUE]",
                        help="also run a second Dispatch of this mode with these environment "
                             "settings (e.g. DISPATCH_RUN_HERE=off) in the same interleaved "
                             "rounds: what a setting buys, measured side by side")
    args = parser.parse_args()

    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
          f"({os.cpu_count()} cores)", flush=True)
    peer = redis_proc = None
    extra_roots: list[int] = []
    if args.peer:
        if (PEER_KIT / "start.sh").exists():
            peer = Peer(PEER_KIT)
            print(f"peer: the original Dispatch at {peer.api}", flush=True)
        else:
            print(f"peer: no kit at {PEER_KIT}; measuring this Dispatch alone", flush=True)
    if args.mode == "distributed" and args.redis == "private":
        redis_proc, args.redis = private_redis()
        extra_roots.append(redis_proc.pid)
    elif args.redis == "private":
        args.redis = "redis://127.0.0.1:6379/14"
    cluster = Cluster(args.mode, args.redis, auth=args.auth == "on")
    other = None
    if args.against:
        other = Cluster(args.mode, args.redis.rstrip("0123456789") + "13"
                        if args.mode == "distributed" else args.redis, auth=args.auth == "on")
        other.env.update(item.split("=", 1) for item in args.against.split(","))
    other_lat: list[float] = []
    other_c16: list[float] = []
    lat: list[float] = []
    c16: list[float] = []
    c16_lat: list[float] = []
    peer_lat: list[float] = []
    peer_c16: list[float] = []
    peer_c16_lat: list[float] = []
    many = ""
    try:
        cluster.start()
        token = cluster.token()
        client = Client(cluster.port, token=token)
        create_noop(client, "noop")
        create_noop(client, "noop-async")
        blocking_latencies(client, "noop", 50)  # warm up, and the instances 16 clients need
        blocking_concurrent(cluster.port, token, ["noop"], 200)
        floor = http_floor(client, args.calls)
        print(f"http floor (GET /healthz, same server): p50={statistics.median(floor):.2f} ms",
              flush=True)
        roots = [proc.pid for proc in cluster.procs] + extra_roots
        meter = CpuMeter(roots)
        if peer:
            peer_client = Client(peer.port, token="peer")
            blocking_latencies(peer_client, "noop", 50)
            blocking_concurrent(peer.port, "peer", ["noop"], 200)
            pfloor = http_floor(peer_client, args.calls)
            print(f"peer http floor (GET /healthz): p50={statistics.median(pfloor):.2f} ms",
                  flush=True)
        if other:
            other.start()
            other_token = other.token()
            other_client = Client(other.port, token=other_token)
            create_noop(other_client, "noop")
            blocking_latencies(other_client, "noop", 50)
            blocking_concurrent(other.port, other_token, ["noop"], 200)
            other_meter = CpuMeter([proc.pid for proc in other.procs] + extra_roots)
        for r in range(args.rounds):
            if peer:
                got = blocking_latencies(peer_client, "noop", args.calls)
                peer_lat += got
                print(f"round {r + 1} peer blocking c=1: {fmt(got)}", flush=True)
            if other:
                with other_meter:
                    got = blocking_latencies(other_client, "noop", args.calls)
                other_lat += got
                print(f"round {r + 1} [{args.against}] blocking c=1: {fmt(got)}", flush=True)
            with meter:
                got = blocking_latencies(client, "noop", args.calls)
            lat += got
            print(f"round {r + 1} ours blocking c=1: {fmt(got)}", flush=True)
            if peer:
                rps, got = blocking_concurrent(peer.port, "peer", ["noop"], args.c16_runs)
                peer_c16.append(rps)
                peer_c16_lat += got
                print(f"round {r + 1} peer blocking c=16: {rps:.0f} runs/s {fmt(got)}",
                      flush=True)
            if other:
                with other_meter:
                    rps, got = blocking_concurrent(other.port, other_token, ["noop"],
                                                   args.c16_runs)
                other_c16.append(rps)
                print(f"round {r + 1} [{args.against}] blocking c=16: {rps:.0f} runs/s {fmt(got)}",
                      flush=True)
            with meter:
                rps, got = blocking_concurrent(cluster.port, token, ["noop"], args.c16_runs)
            c16.append(rps)
            c16_lat += got
            print(f"round {r + 1} ours blocking c=16: {rps:.0f} runs/s {fmt(got)}", flush=True)
        blocking_runs = args.rounds * (args.calls + args.c16_runs)
        cpu_ms = meter.seconds * 1000 / blocking_runs
        print(f"cpu: {meter.seconds:.2f} s over {blocking_runs} blocking runs in "
              f"{len(process_tree(roots))} processes: {cpu_ms:.2f} ms per run "
              f"({meter.per_run(blocking_runs)})", flush=True)
        print(f"switches: {meter.switches_per_run(blocking_runs)}", flush=True)
        idle = blocking_latencies(Client(cluster.port, token=token), "noop", args.idle_calls,
                                  gap=(1.0, 2.0))
        print(f"blocking after 1-2 s idle: n={len(idle)} p50={statistics.median(idle):.2f} ms "
              f"p99={percentile(idle, 99):.2f} ms", flush=True)
        runs_per_s = async_throughput(cluster.port, cluster.store_url, "noop-async",
                                      args.async_runs, token=token)
        print(f"non-blocking c=16: {args.async_runs} runs, {runs_per_s:.0f} runs/s", flush=True)
        if args.functions:
            spread_ratio, server_rss = many_functions(cluster, token, args.functions,
                                                      args.c16_runs, args.rounds)
            many = (f" functions={args.functions} spread_ratio={spread_ratio:.2f}"
                    f" server_rss_mb={server_rss:.0f}")
    finally:
        cluster.stop()
        if other:
            other.stop()
        if peer:
            peer.stop()
    raw = raw_dramatiq_throughput(args.mode, args.redis, args.raw_jobs)
    print(f"raw dramatiq no-op ({args.mode} broker): {raw:.0f} jobs/s", flush=True)
    if redis_proc is not None:
        redis_proc.terminate()
        redis_proc.wait(10)
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    line = (f"p50_ms={statistics.median(lat):.2f} p99_ms={percentile(lat, 99):.2f} "
            f"idle_p99_ms={percentile(idle, 99):.2f} runs_per_s={runs_per_s:.0f} "
            f"raw_jobs_per_s={raw:.0f} ratio={runs_per_s / raw:.3f} "
            f"c16_runs_per_s={statistics.median(c16):.0f} "
            f"c16_p50_ms={statistics.median(c16_lat):.2f} cpu_ms_per_run={cpu_ms:.2f}")
    if peer:
        line += (f" peer_p50_ms={statistics.median(peer_lat):.2f}"
                 f" peer_p99_ms={percentile(peer_lat, 99):.2f}"
                 f" peer_c16_runs_per_s={statistics.median(peer_c16):.0f}"
                 f" p50_ratio={statistics.median(lat) / statistics.median(peer_lat):.2f}"
                 f" p99_ratio={percentile(lat, 99) / percentile(peer_lat, 99):.2f}"
                 f" rps_ratio={statistics.median(c16) / statistics.median(peer_c16):.2f}")
    if other:
        line += (f" against_p50_ms={statistics.median(other_lat):.2f}"
                 f" against_c16_runs_per_s={statistics.median(other_c16):.0f}"
                 f" against_p50_ratio={statistics.median(lat) / statistics.median(other_lat):.2f}"
                 f" against_rps_ratio={statistics.median(c16) / statistics.median(other_c16):.2f}"
                 f" against_cpu_ms_per_run={other_meter.seconds * 1000 / blocking_runs:.2f}")
    print(line + many)


if __name__ == "__main__":
    main()
