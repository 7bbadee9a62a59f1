"""Where a run's time goes: py-spy samples the server's processes while clients run a
no-op function blocking, and the samples are summed by where they were taken.

    python bench/profile.py --mode embedded|distributed [--seconds 10] [--clients 8]

py-spy (``pip install py-spy``) records every Python process of the server (embedded:
``dispatch up``; distributed: the API's and the workers' processes) in ``raw`` form with
``--nonblocking`` (the process is not paused to sample it) and ``--gil``: only the
thread holding the interpreter lock is sampled, so the shares are of the CPU time the
process spent in Python (and in C called with the lock held: SQLite, JSON, ssl); waits
that release the lock (sockets, locks, the function server's answer) are not counted. Printed: runs/s under the profile, then the share of samples per
category (:data:`CATEGORIES`, the first match in a stack from its innermost frame
outwards), then the innermost frames that took the most samples.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cluster import Client, Cluster  # noqa: E402
from bench.invoke import blocking_latencies, create_noop, process_tree, role_of  # noqa: E402

#: (category, substrings of a frame "function (file:line)") — innermost match wins
CATEGORIES = [
    ("store: waiting for the write lock", ("_transaction (engine/store/sqlite.py",)),
    ("store: SQLite statements", ("engine/store/sqlite.py",)),
    ("store: etcd calls (gRPC)", ("engine/store/etcd.py", "grpc/")),
    ("queue: Redis round trips", ("redis/", "dramatiq/brokers/redis")),
    ("queue: Dramatiq (consumer, worker threads)", ("dramatiq/",)),
    ("call into the function server", ("engine/drivers/instance.py", "engine/drivers/invocation.py")),
    ("warm pool", ("engine/drivers/pool.py",)),
    ("cgroup counters", ("engine/drivers/cgroups.py",)),
    ("settle waiter / watches", ("engine/store/waiter.py", "engine/store/cache.py")),
    ("logging", ("logging/",)),
    ("JSON encode/decode", ("json/",)),
    ("authentication (JWT, RSA)", ("jwt/", "cryptography/", "engine/identity/")),
    ("run service (engine/services/runs.py)", ("engine/services/runs.py",)),
    ("steps (validation, secrets)", ("engine/steps/",)),
    ("Flask, flask-smorest, marshmallow, webargs", ("flask/", "flask_smorest/", "marshmallow/",
                                                    "webargs/", "werkzeug/")),
    ("HTTP server (cheroot, gunicorn)", ("cheroot/", "waitress/", "gunicorn/")),
]


def categorize(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, marks in CATEGORIES:
            if any(mark in frame for mark in marks):
                return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--inclusive", type=int, default=0, metavar="N",
                        help="also print the N frames found in the most samples, wherever in the stack")
    parser.add_argument("--role", action="append", metavar="ROLE",
                        help="sample only these processes (api, worker, scheduler, gateway, dispatch up)")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed (pip install py-spy)")
    cluster = Cluster(args.mode, args.redis).start()
    tmp = tempfile.mkdtemp(prefix="dispatch-profile-")
    try:
        token = cluster.token()
        client = Client(cluster.port, token=token)
        create_noop(client, "noop")
        blocking_latencies(client, "noop", 100)
        pids = [pid for pid in process_tree([p.pid for p in cluster.procs])
                if _is_dispatch_python(pid) and (not args.role or role_of(pid) in args.role)]
        spies = [subprocess.Popen(["py-spy", "record", "-p", str(pid), "-f", "raw", "--nonblocking", "--gil",
                                   "-r", str(args.rate), "-d", str(int(args.seconds)),
                                   "-o", f"{tmp}/{pid}.txt"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for pid in pids]
        time.sleep(1)
        done = []
        stop = time.monotonic() + args.seconds - 1

        def drive():
            c = Client(cluster.port, token=token)
            while time.monotonic() < stop:
                done.extend(blocking_latencies(c, "noop", 1))

        threads = [threading.Thread(target=drive) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for spy in spies:
            spy.wait(60)
        print(f"{args.mode}: {len(done) / (args.seconds - 1):.0f} runs/s from {args.clients} "
              f"clients while sampled; {len(pids)} processes sampled", flush=True)
        by_category: collections.Counter = collections.Counter()
        by_leaf: collections.Counter = collections.Counter()
        by_frame: collections.Counter = collections.Counter()
        by_role: collections.Counter = collections.Counter()
        roles = {f"{pid}.txt": role_of(pid) for pid in pids}
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name)) as f:
                for line in f:
                    stack, _, count = line.rstrip("\n").rpartition(" ")
                    if not stack:
                        continue
                    frames = stack.split(";")
                    by_category[categorize(frames)] += int(count)
                    by_role[roles.get(name, "other")] += int(count)
                    by_leaf[frames[-1]] += int(count)
                    for frame in set(frames):
                        by_frame[frame] += int(count)
        total = sum(by_category.values()) or 1
        print(f"{total} samples of the thread holding the GIL; by process: "
              + ", ".join(f"{role} {100 * count / total:.1f} %" for role, count in by_role.most_common()))
        for name, count in by_category.most_common():
            print(f"  {100 * count / total:5.1f} %  {name}")
        print("innermost frames:")
        for frame, count in by_leaf.most_common(15):
            print(f"  {100 * count / total:5.1f} %  {frame}")
        if args.inclusive:
            print("frames in the most samples (inclusive):")
            for frame, count in by_frame.most_common(args.inclusive):
                print(f"  {100 * count / total:5.1f} %  {frame}")
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _is_dispatch_python(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except OSError:
        return False
    text = b" ".join(cmd)
    return b"python" in cmd[0] and b"server.py" not in text and (
        b"cli.main" in text or b"gunicorn" in text or b"dramatiq" in text or b"tasks.scheduler" in text)


if __name__ == "__main__":
    main()
