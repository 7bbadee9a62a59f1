"""What a change of code bought: two checkouts' Dispatch up side by side, the same client
giving each blocking runs from 16 clients in alternating rounds (A, B, B, A, …), the
runs/s and the CPU a run of each one's processes printed by round and as medians.

    git worktree add /tmp/before <commit>
    python bench/ab.py --mode embedded|distributed /tmp/before . [--rounds 6] [--runs 2000]

(``bench/invoke.py --against NAME=VALUE`` does the same for a setting.) Each checkout
runs its own code: its processes start in it (see :class:`bench.cluster.Cluster`);
distributed, each has its own etcd and its own Redis database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cluster import Client, Cluster  # noqa: E402
from bench.invoke import CpuMeter, blocking_concurrent, create_noop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs=2, metavar="CHECKOUT")
    parser.add_argument("--mode", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--runs", type=int, default=2000, help="blocking runs a round")
    args = parser.parse_args()
    roots = [os.path.abspath(root) for root in args.roots]
    clusters: list[Cluster] = []
    try:
        for i, root in enumerate(roots):
            clusters.append(Cluster(args.mode, redis_url=f"redis://127.0.0.1:6379/{14 - i}",
                                    root=root).start())
        for cluster in clusters:
            create_noop(Client(cluster.port, token=cluster.token()), "noop")
            blocking_concurrent(cluster.port, cluster.token(), ["noop"], 300)  # warm
        results = {root: ([], []) for root in roots}
        for round_ in range(args.rounds):
            pairs = list(zip(roots, clusters))
            for root, cluster in pairs[::-1] if round_ % 2 else pairs:
                with CpuMeter([proc.pid for proc in cluster.procs]) as meter:
                    rps, _ = blocking_concurrent(cluster.port, cluster.token(), ["noop"],
                                                 args.runs)
                cpu = meter.seconds * 1000 / args.runs
                results[root][0].append(rps)
                results[root][1].append(cpu)
                print(f"round {round_ + 1} {root}: {rps:.0f} runs/s, {cpu:.3f} ms a run "
                      f"({meter.per_run(args.runs)})", flush=True)
    finally:
        for cluster in clusters:
            cluster.stop()
    for root in roots:
        rps, cpu = results[root]
        print(f"{root}: runs/s median {statistics.median(rps):.0f}, "
              f"CPU a run median {statistics.median(cpu):.3f} ms")
    (rps_a, cpu_a), (rps_b, cpu_b) = (results[root] for root in roots)
    print(f"rps_ratio={statistics.median(rps_b) / statistics.median(rps_a):.3f} "
          f"cpu_ratio={statistics.median(cpu_b) / statistics.median(cpu_a):.3f}")


if __name__ == "__main__":
    main()
