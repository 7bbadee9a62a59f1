"""The reconciler re-sends ``execute_run`` for stuck runs with a backoff per run and a cap
per pass, so that an outage does not end in a storm of re-sends."""

from __future__ import annotations

from engine import entities as E
from engine.jobs import EXECUTE_RUN, RecordingJobs
from engine.scheduler.reconciler import Reconciler
from engine.store import open_store


def stuck_runs(store, count: int) -> list[E.Entity]:
    """``count`` runs INITIALIZED whose ``execute_run`` was lost."""
    return [store.add(E.new(E.RUN, "default", f"run-{i:03d}", functionName="f",
                            createdAt=1000.0 + i, attempts=0))
            for i in range(count)]


def test_stuck_runs_are_resent_with_a_backoff_per_run():
    store, jobs = open_store("memory://"), RecordingJobs()
    runs = stuck_runs(store, 10)
    start = max(r["modifiedTime"] for r in runs) + 10
    reconciler = Reconciler(store, jobs, stuck_seconds=5, max_resends_per_pass=1000,
                            max_resend_backoff=1000)
    passes = 60  # one pass a second for a minute
    for second in range(passes):
        reconciler.reconcile_once(now=start + second)
    sent = [key for job, key in jobs.submitted if job == EXECUTE_RUN]
    # each run at t=0, 5, 15, 35: 4 re-sends in 60 s, not 60
    assert len(sent) == 10 * 4
    assert {sent.count(E.key_of(r)) for r in runs} == {4}


def test_one_pass_resends_at_most_its_cap_oldest_first():
    store, jobs = open_store("memory://"), RecordingJobs()
    runs = stuck_runs(store, 25)
    now = max(r["modifiedTime"] for r in runs) + 10
    reconciler = Reconciler(store, jobs, stuck_seconds=5, max_resends_per_pass=10)
    assert reconciler.reconcile_once(now=now) == {"resubmitted_execute_run": 10}
    assert [key for _, key in jobs.submitted] == [E.key_of(r) for r in runs[:10]]
    # the next passes take the rest, then nothing until the backoff is over
    assert reconciler.reconcile_once(now=now + 1) == {"resubmitted_execute_run": 10}
    assert reconciler.reconcile_once(now=now + 2) == {"resubmitted_execute_run": 5}
    assert reconciler.reconcile_once(now=now + 3) == {}
    assert len(jobs.submitted) == 25


def test_n_stuck_runs_over_k_passes_are_resent_a_bounded_number_of_times():
    store, jobs = open_store("memory://"), RecordingJobs()
    n, k, cap = 400, 100, 50
    runs = stuck_runs(store, n)
    start = max(r["modifiedTime"] for r in runs) + 10
    reconciler = Reconciler(store, jobs, stuck_seconds=2, max_resends_per_pass=cap,
                            max_resend_backoff=60)
    for second in range(k):
        assert sum(reconciler.reconcile_once(now=start + second).values()) <= cap
    # without throttling: n * k = 40,000 re-sends; with it, at most cap per pass
    assert len(jobs.submitted) <= cap * k
    assert max(list(map(lambda kv: kv[1], jobs.submitted)).count(E.key_of(r)) for r in runs) <= 7


def test_a_settled_run_is_forgotten():
    store, jobs = open_store("memory://"), RecordingJobs()
    (run,) = stuck_runs(store, 1)
    reconciler = Reconciler(store, jobs, stuck_seconds=5)
    reconciler.reconcile_once(now=run["modifiedTime"] + 10)
    store.update(dict(run, status=E.READY))
    reconciler.reconcile_once(now=run["modifiedTime"] + 11)
    assert reconciler._resends == {}
