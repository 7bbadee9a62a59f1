"""Gateway request latency and throughput, side by side with direct blocking runs.

    python bench/gateway.py [--calls 500] [--concurrent 2000] [--threads 8]

One embedded Dispatch (``dispatch up`` in its own process: SQLite, in-process workers,
the sandboxed local driver) with one no-op Python function and one API on it. In the
same run:

1. sequential: ``--calls`` gateway requests (``POST /default/noop``) and as many direct
   blocking runs (``POST /v1/runs?functionName=noop``), interleaved one for one (the
   order alternating) so that both see the same server state; p50 and p99 of each;
2. concurrent: ``--concurrent`` blocking requests of each kind from ``--threads`` client
   threads, in two alternating rounds (gateway, direct, gateway, direct), requests/s.

Each client thread holds one keep-alive ``http.client`` connection (bench/cluster.py's
Client), so the figures are the server's. The last line is
``gateway_p50_ms=… gateway_p99_ms=… direct_p50_ms=… direct_p99_ms=… gateway_rps=…
direct_rps=… ratio=…`` (ratio: gateway p50 / direct p50).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cluster import Client, Cluster  # noqa: E402
from bench.invoke import create_noop, percentile  # noqa: E402

FUNCTION = "noop"
API_PATH = "/default/noop"
DIRECT_PATH = f"/v1/runs?functionName={FUNCTION}"
PAYLOAD = {"x": 1}


def gateway_call(client: Client) -> None:
    status, output = client.call("POST", API_PATH, PAYLOAD)
    assert status == 200 and output == PAYLOAD, (status, output)


def direct_call(client: Client) -> None:
    status, run = client.call("POST", DIRECT_PATH, {"input": PAYLOAD, "blocking": True})
    assert status == 200 and run["status"] == "READY", (status, run)


CALLS = {"gateway": gateway_call, "direct": direct_call}


def create_api(client: Client) -> None:
    status, api = client.call("POST", "/v1/api", {"name": "noop-api", "function": FUNCTION,
                                                  "uris": ["/noop"], "methods": ["POST"]})
    assert status == 200, api
    while client.call("GET", "/v1/api/noop-api")[1]["status"] != "READY":
        time.sleep(0.05)
    # the gateway's route table follows the store through a watch
    while client.call("POST", API_PATH, PAYLOAD)[0] != 200:
        time.sleep(0.05)


def interleaved(client: Client, n: int) -> dict[str, list[float]]:
    """``n`` calls of each kind, alternating which goes first; latencies in ms."""
    latencies: dict[str, list[float]] = {"gateway": [], "direct": []}
    for i in range(n):
        order = ("gateway", "direct") if i % 2 == 0 else ("direct", "gateway")
        for kind in order:
            start = time.perf_counter()
            CALLS[kind](client)
            latencies[kind].append((time.perf_counter() - start) * 1000)
    return latencies


def throughput(port: int, kind: str, n: int, threads: int, token: str | None = None) -> float:
    """Blocking calls of ``kind`` from ``threads`` keep-alive clients; requests/s."""
    local = threading.local()

    def one(_):
        if not hasattr(local, "client"):
            local.client = Client(port, token=token)
        CALLS[kind](local.client)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--concurrent", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    cluster = Cluster("embedded").start()
    try:
        token = cluster.token()
        client = Client(cluster.port, token=token)
        create_noop(client, FUNCTION)
        create_api(client)
        interleaved(client, 50)  # warm up both paths
        lat = interleaved(client, args.calls)
        for kind in ("gateway", "direct"):
            values = lat[kind]
            print(f"{kind} c=1: n={len(values)} p50={statistics.median(values):.2f} ms "
                  f"p99={percentile(values, 99):.2f} ms max={max(values):.2f} ms", flush=True)
        rps: dict[str, list[float]] = {"gateway": [], "direct": []}
        for kind in ("gateway", "direct", "gateway", "direct"):
            rps[kind].append(throughput(cluster.port, kind, args.concurrent // 2, args.threads,
                                       token))
        for kind in ("gateway", "direct"):
            print(f"{kind} c={args.threads}: {args.concurrent} blocking requests, "
                  f"{statistics.mean(rps[kind]):.0f} requests/s", flush=True)
    finally:
        cluster.stop()
    g50, d50 = statistics.median(lat["gateway"]), statistics.median(lat["direct"])
    print(f"gateway_p50_ms={g50:.2f} gateway_p99_ms={percentile(lat['gateway'], 99):.2f} "
          f"direct_p50_ms={d50:.2f} direct_p99_ms={percentile(lat['direct'], 99):.2f} "
          f"gateway_rps={statistics.mean(rps['gateway']):.0f} "
          f"direct_rps={statistics.mean(rps['direct']):.0f} ratio={g50 / d50:.3f}")


if __name__ == "__main__":
    main()
