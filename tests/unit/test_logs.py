"""Logging: one set-up for every process, JSON lines with the request's, job's and run's
context, the W3C trace carried from a request through its job to the function, and no
secret in any line."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import dramatiq
import pytest

from api.app import create_app
from engine.observability import logs
from engine.settings import Settings
from engine.sources import pack
from tasks.actors import assemble
from tasks.broker import make_broker

from .test_services import ScriptedDriver

ROOT = Path(__file__).resolve().parents[2]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def captured():
    """Root logging sent to a buffer as JSON lines, put back as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    assert logs.configure_logging("json", stream=buffer) == "json"
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict]:
    for handler in logging.getLogger().handlers:
        handler.flush()  # INFO lines wait a moment to be written together
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_traceparent_is_parsed_as_w3c_says():
    assert logs.parse_traceparent(TRACEPARENT) == (TRACE, "00f067aa0ba902b7")
    assert logs.parse_traceparent(TRACEPARENT.upper()) == (TRACE, "00f067aa0ba902b7")
    for bad in (None, "", "garbage", f"ff-{TRACE}-00f067aa0ba902b7-01",
                f"00-{'0' * 32}-00f067aa0ba902b7-01", f"00-{TRACE}-{'0' * 16}-01",
                f"00-{TRACE[:-1]}-00f067aa0ba902b7-01"):
        assert logs.parse_traceparent(bad) is None, bad
    # a bad header starts a new trace; a good one keeps its trace with a new span of ours
    fresh = logs.trace_fields("garbage")
    assert re.fullmatch(r"[0-9a-f]{32}", fresh["trace_id"]) and fresh["trace_id"] != TRACE
    kept = logs.trace_fields(TRACEPARENT)
    assert kept["trace_id"] == TRACE and kept["span_id"] != "00f067aa0ba902b7"


def test_json_lines_carry_the_context_of_the_block_and_the_exception(captured):
    log = logging.getLogger("dispatch.test")
    with logs.bound(org="acme", run="r1", trace_id=TRACE):
        log.info("run.started key=%s", "k")
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("run.failed")
    log.info("outside")
    first, second, third = lines(captured)
    assert first["message"] == "run.started key=k" and first["level"] == "INFO"
    assert (first["org"], first["run"], first["trace_id"]) == ("acme", "r1", TRACE)
    assert first["logger"] == "dispatch.test" and first["time"].endswith("Z")
    assert "ValueError: bad" in second["exception"]
    assert "org" not in third and "trace_id" not in third  # the block's context ended


def test_an_unknown_log_format_is_refused_by_the_settings():
    with pytest.raises(ValueError, match="DISPATCH_LOG_FORMAT must be one of text, json"):
        Settings.from_env({"DISPATCH_LOG_FORMAT": "xml"})
    assert Settings.from_env({"DISPATCH_LOG_FORMAT": "JSON"}).log_format == "json"


def test_every_entry_point_sets_logging_up_through_configure_logging():
    offenders = [str(path.relative_to(ROOT)) for folder in ("api", "tasks", "engine", "cli")
                 for path in (ROOT / folder).rglob("*.py")
                 if "logging.basicConfig" in path.read_text()]
    assert offenders == []


def test_the_trace_of_a_request_reaches_its_job_its_run_and_the_function(captured, tmp_path):
    broker = make_broker("stub://")
    driver = ScriptedDriver()
    system = assemble(Settings(home=str(tmp_path), store_url="memory://", auth="off"),
                      broker, driver=driver)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        client = create_app(system).test_client()
        headers = {"X-Dispatch-Org": "acme"}
        client.post("/v1/secret", json={"name": "creds", "secrets": {"password": "hunter2-x"}},
                    headers=headers)
        path = tmp_path / "m.py"
        path.write_text("def handle(ctx, payload):\n    return payload\n")
        source = base64.b64encode(pack(str(path))).decode()
        assert client.post("/v1/function", headers=headers, json={
            "name": "traced", "image": "python3", "handler": "m.handle", "source": source,
            "secrets": ["creds"]}).status_code == 201
        broker.join("functions", timeout=10_000)
        answer = client.post("/v1/runs?functionName=traced",
                             json={"blocking": True, "input": {"a": 1}},
                             headers={**headers, "traceparent": TRACEPARENT,
                                      "X-Request-Id": "req-42"})
        assert answer.status_code == 200, answer.get_json()
        run = answer.get_json()["name"]
        assert answer.headers["X-Request-Id"] == "req-42"
        assert answer.headers["traceparent"].startswith(f"00-{TRACE}-")
    finally:
        worker.stop()
        system.close()
    context, _payload = driver.calls[-1]
    assert context["traceparent"].startswith(f"00-{TRACE}-")  # the function's ctx
    assert context["secrets"] == {"password": "hunter2-x"}
    records = lines(captured)
    request_line = next(r for r in records if r["message"].startswith("http.request method=POST")
                        and "/v1/runs" in r["message"])
    assert request_line["trace_id"] == TRACE and request_line["request_id"] == "req-42"
    assert request_line["org"] == "acme"
    run_line = next(r for r in records if r["message"].startswith("run.ready"))
    assert (run_line["trace_id"], run_line["run"], run_line["org"]) == (TRACE, run, "acme")
    assert run_line["job"] == "execute_run"
    assert "hunter2-x" not in captured.getvalue()  # secrets never reach a line


def line_writer(stream, delay: float, fmt: str = "%(message)s") -> tuple[logs.LineWriter, logging.Logger]:
    """A LineWriter on ``stream`` and a logger of its own writing through it."""
    writer = logs.LineWriter(stream, delay=delay)
    writer.setFormatter(logging.Formatter(fmt))
    log = logging.Logger(f"dispatch.test.{id(writer)}")
    log.addHandler(writer)
    return writer, log


def test_info_lines_are_written_together_soon_and_a_warning_at_once_after_them():
    buffer = io.StringIO()
    # the three lines are logged well within the delay, however loaded the machine
    _, log = line_writer(buffer, 0.5, "%(levelname)s %(message)s")
    written = threading.Event()
    original_write = buffer.write
    writes: list[str] = []

    def write(text: str) -> int:
        writes.append(text)
        written.set()
        return original_write(text)

    buffer.write = write
    for i in range(3):
        log.info("line %d", i)
    assert written.wait(30)  # the writer thread wrote them, nobody else logging meanwhile
    assert writes == ["INFO line 0\nINFO line 1\nINFO line 2\n"]  # in one write
    log.info("before")
    log.warning("warned")  # at once, with the line waiting before it, in order
    assert buffer.getvalue().endswith("INFO before\nWARNING warned\n")


def test_lines_logged_from_many_threads_are_all_written_in_each_threads_order():
    buffer = io.StringIO()
    writer, log = line_writer(buffer, 0.001)

    def work(n: int) -> None:
        for i in range(500):
            log.info("%d %d", n, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.flush()  # what logging.shutdown does at exit
    seen: dict[str, list[int]] = {}
    for line in buffer.getvalue().splitlines():
        n, i = line.split()
        seen.setdefault(n, []).append(int(i))
    assert seen == {str(n): list(range(500)) for n in range(8)}


def test_a_forked_child_writes_its_own_lines(tmp_path):
    path = tmp_path / "child.log"
    with open(path, "w") as stream:
        writer, log = line_writer(stream, 0.01)
        log.info("parent")  # the parent's writer thread is running now
        writer.flush()
        pid = os.fork()
        if pid == 0:  # the parent's thread is not here: the child starts a writer of its own
            log.info("child")
            deadline = time.monotonic() + 30
            while "child" not in path.read_text() and time.monotonic() < deadline:
                time.sleep(0.01)
            os._exit(0 if "child" in path.read_text() else 1)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_text().splitlines() == ["parent", "child"]
