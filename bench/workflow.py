"""Workflow overhead: what replaying, recording and queueing add around function runs.

    python bench/workflow.py --mode embedded|distributed

Phases, in one run (a no-op Python function, warm):

1. 50 direct blocking runs of the function, one after another (ms per run);
2. one blocking execution of a 50-step sequence of calls of that function (ms per step,
   and the ratio to a direct run);
3. one blocking execution of a 50-step sequence of ``set`` tasks (ms per step: the cost
   of the execution machinery with no function at all);
4. one execution of a fork of 1,000 branches, each calling the function (seconds until
   it completed).

The last line is ``direct_ms=… call_step_ms=… ratio=… set_step_ms=… fanout_1000_s=…``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cluster import Client, Cluster  # noqa: E402
from bench.invoke import create_noop  # noqa: E402

STEPS = 50
BRANCHES = 1000
DSL = {"dsl": "1.0.0", "namespace": "bench", "version": "0.1.0"}


def create_workflow(client: Client, name: str, tasks: list) -> None:
    status, body = client.call("POST", "/v1/workflow", {
        "name": name, "definition": {"document": dict(DSL, name=name), "do": tasks}})
    assert status == 201, body


def execute(client: Client, name: str) -> tuple[float, dict]:
    """Seconds a blocking start of ``name`` took, and the finished execution."""
    start = time.perf_counter()
    status, execution = client.call("POST", f"/v1/executions?workflowName={name}",
                                    {"input": {"n": 0}, "blocking": True})
    elapsed = time.perf_counter() - start
    assert status == 200 and execution["status"] == "completed", execution
    return elapsed, execution


def wait_completed(client: Client, name: str, timeout: float = 1800) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = client.call("GET", f"/v1/executions/{name}")[1]
        if execution["status"] in ("completed", "faulted", "cancelled"):
            return execution
        time.sleep(0.2)
    raise AssertionError(f"execution {name} did not finish in {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--auth", choices=("on", "off"), default="on")
    args = parser.parse_args()
    cluster = Cluster(args.mode, args.redis, auth=args.auth == "on").start()
    try:
        client = Client(cluster.port, token=cluster.token())
        create_noop(client, "noop")
        for _ in range(10):  # warm the function's instances
            client.call("POST", "/v1/runs?functionName=noop", {"input": {}, "blocking": True})
        direct = []
        for _ in range(STEPS):
            start = time.perf_counter()
            status, run = client.call("POST", "/v1/runs?functionName=noop",
                                      {"input": {"n": 0}, "blocking": True})
            direct.append(time.perf_counter() - start)
            assert status == 200 and run["status"] == "READY", run
        direct_ms = statistics.mean(direct) * 1000
        print(f"direct blocking runs: {STEPS} in {sum(direct):.3f}s, {direct_ms:.2f} ms each",
              flush=True)

        create_workflow(client, "calls", [{f"s{i}": {"call": "noop", "with": {"n": i}}}
                                          for i in range(STEPS)])
        execute(client, "calls")  # warm: the first execution loads the definition
        seconds, execution = execute(client, "calls")
        call_ms = seconds * 1000 / STEPS
        print(f"sequence of {STEPS} calls: {seconds:.3f}s, {call_ms:.2f} ms per step "
              f"(x{call_ms / direct_ms:.2f} a direct run)", flush=True)

        create_workflow(client, "sets", [{f"s{i}": {"set": {"n": i}}} for i in range(STEPS)])
        execute(client, "sets")
        seconds, _ = execute(client, "sets")
        set_ms = seconds * 1000 / STEPS
        print(f"sequence of {STEPS} set tasks: {seconds:.3f}s, {set_ms:.2f} ms per step",
              flush=True)

        create_workflow(client, "fanout", [{"fan": {"fork": {"branches": [
            {f"b{i}": {"call": "noop", "with": {"n": i}}} for i in range(BRANCHES)]}}}])
        client = Client(cluster.port, token=cluster.token())
        start = time.perf_counter()
        status, execution = client.call("POST", "/v1/executions?workflowName=fanout",
                                        {"input": {}, "blocking": False})
        assert status == 202, execution
        done = wait_completed(client, execution["name"])
        fanout_s = time.perf_counter() - start
        assert done["status"] == "completed", done.get("error")
        assert len(done["output"]) == BRANCHES
        print(f"fork of {BRANCHES} branches: {fanout_s:.1f}s", flush=True)
        print(f"direct_ms={direct_ms:.2f} call_step_ms={call_ms:.2f} "
              f"ratio={call_ms / direct_ms:.2f} set_step_ms={set_ms:.2f} "
              f"fanout_{BRANCHES}_s={fanout_s:.1f}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
