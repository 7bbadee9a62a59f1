"""A run's record is bounded so that etcd (1.5 MiB per request by default) always takes
it: an output that would pass the bound is refused with a FunctionError, and a final
write the store refuses ends the run ERROR at once, not after its claim expires."""

from __future__ import annotations

import uuid

import pytest

from engine import entities as E
from engine.drivers.base import Outcome
from engine.errors import TooLarge
from engine.jobs import EXECUTE_RUN, RecordingJobs
from engine.limits import RUN_RECORD_MAX_BYTES
from engine.services.catalog import ImageCatalog
from engine.services.functions import FunctionService
from engine.services.runs import RunService
from engine.store.etcd import EtcdStore

from .test_services import ScriptedDriver, drain, source, spec  # noqa: F401 (source: a fixture)

BIG = "x" * 900_000  # each under 1 MB; together over etcd's 1.5 MiB


@pytest.fixture
def parts(etcd_endpoint):
    store, jobs, driver = EtcdStore([etcd_endpoint]), RecordingJobs(), ScriptedDriver()
    functions = FunctionService(store, jobs, driver, ImageCatalog())
    runs = RunService(store, jobs, driver, functions, attempts=2)
    yield store, jobs, driver, functions, runs
    runs.close()
    store.close()


def start(parts, source, org, payload):
    store, jobs, driver, functions, runs = parts
    functions.create(org, spec(source))
    drain(jobs, functions, runs)
    run = runs.start(org, "hello", {"input": payload})
    [(job, key)] = [(j, k) for j, k in jobs.submitted if j == EXECUTE_RUN]
    jobs.submitted.clear()
    return run, key


def test_input_and_output_over_the_bound_end_the_run_with_a_function_error(parts, source):
    store, jobs, driver, functions, runs = parts
    org = f"rec{uuid.uuid4().hex[:8]}"
    run, key = start(parts, source, org, BIG)
    driver.outcome = Outcome(payload=BIG)
    runs.execute(key)  # one attempt: nothing left for the claim to expire on
    run = store.get(E.RUN, org, run["name"])
    assert run["status"] == E.ERROR and run["output"] is None
    assert run["error"]["type"] == "FunctionError"
    assert f"over the limit of {RUN_RECORD_MAX_BYTES} bytes" in run["error"]["message"]
    assert run["input"] == BIG  # the input stays as it was given
    assert len(driver.calls) == 1


def test_a_final_write_the_store_refuses_ends_the_run_error_at_once(parts, source):
    store, jobs, driver, functions, runs = parts
    runs.record_max_bytes = 10 << 20  # past etcd's own limit: etcd refuses the write
    org = f"rec{uuid.uuid4().hex[:8]}"
    run, key = start(parts, source, org, BIG)
    driver.outcome = Outcome(payload=BIG)
    runs.execute(key)
    run = store.get(E.RUN, org, run["name"])
    assert run["status"] == E.ERROR and run["output"] is None
    assert run["error"]["type"] == "SystemError"
    assert "the store refused the run's result" in run["error"]["message"]
    assert "claimExpires" not in run


def test_an_input_over_the_bound_is_refused_before_anything_is_stored(parts, source):
    store, jobs, driver, functions, runs = parts
    org = f"rec{uuid.uuid4().hex[:8]}"
    functions.create(org, spec(source))
    drain(jobs, functions, runs)
    with pytest.raises(TooLarge, match=f"over the limit of {RUN_RECORD_MAX_BYTES} bytes"):
        runs.start(org, "hello", {"input": "x" * RUN_RECORD_MAX_BYTES})
    assert store.list(E.RUN, org) == []
