"""The chaos suite (`make chaos`): faults under load, each scenario ending in one line
``N ok, M lost, K stuck, D executed twice``; the bar is 0 lost and 0 stuck.

    python -m tests.chaos.run [SCENARIO ...]      # default: every scenario

Scenarios (1,000 non-blocking runs each):

* ``worker-sigkill`` — etcd + Redis + the Procfile's processes; the worker process
  group is SIGKILLed every 3 s while the runs are posted, and for a while after.
* ``redis-flushdb`` — the same installation; Redis's database is flushed (FLUSHDB) when
  a third of the runs are accepted: every queued message is gone.
* ``etcd-outage`` — etcd is SIGKILLed when a third of the runs are accepted and brought
  back 5 s later (same data directory).
* ``etcd-leader-loss`` — a 3-member etcd cluster; its leader is SIGKILLed when a third of
  the runs are accepted (the two others elect a new one), and comes back 5 s later.
* ``up-sigkill`` — `dispatch up` (SQLite, in-process queue); SIGKILLed when a third of
  the runs are accepted, restarted 2 s later: its in-memory queue is lost.

Exit status 1 if any scenario lost or left stuck a run.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from .harness import REDIS_URL, Installation, Tally

RUNS = int(os.environ.get("DISPATCH_CHAOS_RUNS") or 1000)


def _when(fraction: float, action) -> tuple:
    """An ``on_progress`` callback firing ``action`` once, in a thread, when ``fraction``
    of the runs are accepted; and the thread list to join."""
    fired = threading.Event()
    threads: list[threading.Thread] = []

    def on_progress(done: int) -> None:
        if done >= RUNS * fraction and not fired.is_set():
            fired.set()
            thread = threading.Thread(target=action)
            thread.start()
            threads.append(thread)

    return on_progress, threads


def worker_sigkill() -> Tally:
    dispatch = Installation("procfile").start()
    try:
        began = time.monotonic()
        stop, kills = threading.Event(), [0]

        def killer() -> None:
            while not stop.wait(3):
                dispatch.procs.restart("worker")
                kills[0] += 1

        thread = threading.Thread(target=killer)
        thread.start()
        accepted = dispatch.post_runs(RUNS, sleep=0.05)
        time.sleep(6)  # keep killing while the backlog drains
        stop.set()
        thread.join()
        return dispatch.tally("worker-sigkill", RUNS, accepted, began,
                              notes=f"{kills[0]} worker SIGKILLs")
    finally:
        dispatch.stop()


def _fault_at_a_third(kind: str, scenario: str, fault, notes, **options) -> Tally:
    """Post the runs to a new installation of ``kind``; ``fault(dispatch)`` runs in a
    thread when a third of them are accepted. ``notes``: the tally's fault column (a
    string, or a function of what ``fault`` returned)."""
    dispatch = Installation(kind, **options).start()
    try:
        began = time.monotonic()
        outcome: list = []
        on_progress, threads = _when(1 / 3, lambda: outcome.append(fault(dispatch)))
        accepted = dispatch.post_runs(RUNS, on_progress)
        for t in threads:
            t.join()
        said = notes(outcome[0] if outcome else None) if callable(notes) else notes
        return dispatch.tally(scenario, RUNS, accepted, began, notes=said)
    finally:
        dispatch.stop()


def redis_flushdb() -> Tally:
    import redis

    return _fault_at_a_third("procfile", "redis-flushdb",
                             lambda _: redis.Redis.from_url(REDIS_URL).flushdb(),
                             "FLUSHDB at 1/3")


def _down_for(seconds: float, kill, start, name: str) -> str:
    """The fault of most scenarios: process ``name`` SIGKILLed, started again
    ``seconds`` later."""
    kill(name)
    time.sleep(seconds)
    start(name)
    return name


def etcd_outage() -> Tally:
    return _fault_at_a_third("procfile", "etcd-outage",
                             lambda d: _down_for(5, d.procs.kill, d.etcd.start, "etcd0"),
                             "etcd SIGKILLed at 1/3, back 5 s later")


def etcd_leader_loss() -> Tally:
    return _fault_at_a_third(
        "procfile", "etcd-leader-loss",
        lambda d: _down_for(5, d.procs.kill, d.etcd.start, d.etcd.leader()),
        lambda leader: f"3 members; leader {leader or '?'} SIGKILLed at 1/3, back 5 s later",
        etcd_members=3)


def up_sigkill() -> Tally:
    return _fault_at_a_third("embedded", "up-sigkill",
                             lambda d: _down_for(2, d.procs.kill, d.procs.start, "up"),
                             "`dispatch up` SIGKILLed at 1/3, restarted 2 s later")


SCENARIOS = {"worker-sigkill": worker_sigkill, "redis-flushdb": redis_flushdb,
             "etcd-outage": etcd_outage, "etcd-leader-loss": etcd_leader_loss,
             "up-sigkill": up_sigkill}


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        return 2
    tallies = []
    for name in names:
        print(f"--- {name}", flush=True)
        try:
            tally = SCENARIOS[name]()
        except Exception as exc:  # a scenario that could not even run is a failure too
            print(f"{name}: did not complete: {type(exc).__name__}: {exc}", flush=True)
            tallies.append(None)
            continue
        print(tally.line(), flush=True)
        tallies.append(tally)
    print("\n| scenario | ok | lost | stuck | executed twice | accepted | seconds | fault |")
    print("|---|---|---|---|---|---|---|---|")
    for name, t in zip(names, tallies):
        if t is None:
            print(f"| {name} | — | — | — | — | — | — | did not complete |")
        else:
            print(f"| {t.scenario} | {t.ok} | {t.lost} | {t.stuck} | {t.twice} | "
                  f"{t.accepted}/{t.posted} | {t.seconds:.0f} | {t.notes} |")
    failed = any(t is None or t.lost or t.stuck for t in tallies)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
