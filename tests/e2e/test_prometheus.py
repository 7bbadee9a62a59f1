"""A real Prometheus (Debian's ``prometheus``) scrapes a distributed Dispatch (api,
worker and scheduler processes on etcd and Redis) and answers, from what it scraped,
how many runs the test made — and the README's example queries."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from .conftest import dispatch_cli, free_port, wait_until
from .test_operations import cluster  # noqa: F401 - the deployment fixture

RUNS = 7

FUNCTION = '''\
def handle(ctx, payload):
    if payload.get("fail"):
        raise ValueError("asked to fail")
    return {"n": payload.get("n")}
'''


@pytest.fixture
def prometheus(cluster, tmp_path):  # noqa: F811 - the fixture imported above
    env, _ = cluster
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run deploy/dev-services.sh (or apt-get "
                    "install prometheus)", pytrace=False)
    targets = {"dispatch-api": env["url"], "dispatch-worker": env["worker_url"],
               "dispatch-scheduler": env["scheduler_url"]}
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                      "scrape_configs:\n" + "".join(
                          f"  - job_name: {job}\n    static_configs:\n"
                          f"      - targets: ['{url.removeprefix('http://')}']\n"
                          for job, url in targets.items()))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return process.poll() is not None and pytest.fail(
                f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")

    try:
        wait_until(ready, 60, what="prometheus to be ready")
        yield url, env
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def query(url: str, promql: str) -> list[dict]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def positive(value: float | None) -> float | None:
    """``value`` if it is a number above zero (not None, zero or NaN), else None."""
    return value if value is not None and value > 0 else None


def scalar(url: str, promql: str) -> float | None:
    result = query(url, promql)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_counts_the_runs_a_distributed_dispatch_made(prometheus, tmp_path):
    url, env = prometheus
    org = env["DISPATCH_ORGANIZATION"]
    # every process is a target Prometheus reaches
    wait_until(lambda: scalar(url, 'sum(up{job=~"dispatch-.*"})') == 3, 60,
               what="prometheus to scrape api, worker and scheduler")
    source = tmp_path / "src" / "counted.py"
    source.parent.mkdir()
    source.write_text(FUNCTION)
    dispatch_cli("create", "function", "counted", str(source), "--image", "python3",
                 "--handler", "counted.handle", env=env)
    wait_until(lambda: requests.get(f"{env['url']}/v1/function/counted",
                                    headers={"X-Dispatch-Org": org}).json()["status"] == "READY",
               60, what="the function to be READY")
    for n in range(RUNS):
        run = requests.post(f"{env['url']}/v1/runs?functionName=counted",
                            json={"blocking": True, "input": {"n": n}},
                            headers={"X-Dispatch-Org": org}).json()
        assert run["status"] == "READY", run
    function = f"{org}/counted"
    # a function's error series exist (at zero) from its first run: Prometheus has one
    # sample before the error, so rate() sees the error
    errors = (f'sum(dispatch_runs_total{{function="{function}",status="ERROR",'
              f'error_type="FunctionError"}})')
    # scraped at zero in the api and in the worker alike: whichever executes the failing
    # run (the api once it has a warm instance, the worker before), its rise is seen
    wait_until(lambda: scalar(url, f'count(dispatch_runs_total{{function="{function}",'
                                   f'status="ERROR",error_type="FunctionError"}} == 0)') == 2,
               60, what="the error series at zero in the api and the worker")
    failed = requests.post(f"{env['url']}/v1/runs?functionName=counted",
                           json={"blocking": True, "input": {"fail": True}},
                           headers={"X-Dispatch-Org": org}).json()
    assert failed["status"] == "ERROR"

    # what Prometheus scraped, once it has scraped it (no sleeps: poll its API)
    wait_until(lambda: scalar(url, f'sum(dispatch_runs_total{{function="{function}",'
                                   f'status="READY"}})') == RUNS,
               60, what=f"prometheus to count {RUNS} READY runs")
    wait_until(lambda: scalar(url, errors) == 1, 60, what="prometheus to count the failed run")
    # the README's queries answer
    # both gunicorn workers of the api counted, summed (multiprocess mode)
    wait_until(lambda: scalar(url, 'sum(dispatch_http_requests_total{job="dispatch-api",'
                                   'route="/v1/runs",method="POST",code="200"})') == RUNS + 1,
               60, what="prometheus to count the API's answers")
    # (each polled: a scrape that timed out on a loaded machine leaves a gap)
    error_rate = wait_until(lambda: positive(scalar(
        url, f'sum(rate(dispatch_runs_total{{function="{function}",status="ERROR"}}[5m]))'
             f' / sum(rate(dispatch_runs_total{{function="{function}"}}[5m]))')),
        60, what="the error rate")
    # (1.0 when every READY run fell between two scrapes: only the error shows a rise)
    assert 0 < error_rate <= 1
    # NaN until two scrapes of one process's duration series saw it rise: the runs so far
    # may all have fallen before the first scrape of their series (the failing one too,
    # in a process that had made none), so each poll that finds none makes one more run
    def p99() -> float | None:
        value = positive(scalar(
            url, f'histogram_quantile(0.99, sum by (le) (rate('
                 f'dispatch_run_duration_seconds_bucket{{function="{function}"}}[5m])))'))
        if not value:
            requests.post(f"{env['url']}/v1/runs?functionName=counted", json={"blocking": True},
                          headers={"X-Dispatch-Org": org})
        return value

    wait_until(p99, 60, interval=1.0, what="the p99 run duration")
    wait_until(lambda: query(url, 'sum by (actor) (dispatch_jobs_in_progress)'), 60,
               what="jobs in progress by actor")
    wait_until(lambda: query(url, 'histogram_quantile(0.99, sum by (le) (rate('
                                  'dispatch_run_queue_wait_seconds_bucket[5m])))'), 60,
               what="the p99 queue wait")
    wait_until(lambda: scalar(url, 'sum(dispatch_ready{job="dispatch-worker"})') == 1, 60,
               what="the worker's readiness metric")
    # the worker's jobs: the function's one build; and the runs that went through the
    # queue (the first at least: an API process executes a blocking run itself only once
    # it has a warm instance of the function, which the first run has it prepare)
    wait_until(lambda: scalar(url, 'sum(dispatch_jobs_total{actor="create_function",'
                                   'outcome="succeeded"})') == 1,
               60, what="prometheus to count the worker's build job")
    wait_until(lambda: (scalar(url, 'sum(dispatch_jobs_total{actor="execute_run",'
                                    'outcome="succeeded"})') or 0) >= 1,
               60, what="prometheus to count the worker's run jobs")
