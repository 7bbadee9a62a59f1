"""Readiness: checks that fail say why, a slow check does not hold /readyz up, a
start-up that fails is said once and retried only when its cause may pass; a process
with a bad setting or an unreachable broker stays up and unready, naming the problem."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from engine.errors import Unavailable
from engine.observability.health import Health, Startup, redact_url


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failing_check_names_its_reason_and_a_slow_one_times_out():
    health = Health("test", timeout=0.2)
    release = threading.Event()
    health.add("fine", lambda: "all good")
    health.add("broken", lambda: (_ for _ in ()).throw(Unavailable("etcd is down")))
    health.add("slow", lambda: release.wait(5))
    try:
        report = health.report()
    finally:
        release.set()
    assert not report.ready
    by_name = {c.name: c for c in report.checks}
    assert by_name["fine"].ok and by_name["fine"].message == "all good"
    assert by_name["broken"].message == "etcd is down"
    assert by_name["slow"].message == "no answer within 0.2 s"
    assert report.as_dict()["problems"] == ["broken: etcd is down",
                                            "slow: no answer within 0.2 s"]


def test_a_bad_configuration_is_final_and_logged_once(caplog):
    calls = []

    def build():
        calls.append(1)
        raise ValueError("DISPATCH_SECRET_KEY is required")

    health = Health("test")
    startup = Startup("engine", build, health, retry_seconds=0.01)
    assert not startup.done.wait(0.2)
    assert len(calls) == 1  # never retried: only a restart with a fixed setting helps
    report = health.report()
    assert not report.ready and report.problems == ["startup: DISPATCH_SECRET_KEY is required"]
    assert [r.message for r in caplog.records].count(
        "startup.failed role=test engine: DISPATCH_SECRET_KEY is required "
        "(fix the configuration and restart)") == 1


def test_an_unreachable_dependency_is_retried_until_it_answers_and_logged_once(caplog):
    caplog.set_level(logging.INFO, logger="dispatch.health")
    reachable = threading.Event()
    attempts = []

    def build():
        attempts.append(1)
        if len(attempts) >= 3:
            reachable.set()
            return "engine"
        raise Unavailable("no etcd endpoint is reachable: 10.0.0.9:2379")

    health = Health("test")
    startup = Startup("engine", build, health, retry_seconds=0.01)
    assert startup.done.wait(10)
    assert startup.result == "engine" and health.report().ready
    failures = [r for r in caplog.records if r.message.startswith("startup.failed")]
    assert len(failures) == 1 and "(retrying)" in failures[0].message
    assert any(r.message == "startup.recovered role=test engine" for r in caplog.records)


def test_urls_lose_their_password_in_messages():
    assert redact_url("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact_url("amqp://guest:guest@mq:5672") == "amqp://guest:***@mq:5672"
    assert redact_url("etcd://10.0.0.1:2379") == "etcd://10.0.0.1:2379"


def test_a_process_with_a_bad_setting_stays_up_unready_and_says_which(monkeypatch, tmp_path,
                                                                      restore_logging):
    from tasks.process import Process

    monkeypatch.setenv("DISPATCH_HOME", str(tmp_path))
    monkeypatch.setenv("DISPATCH_AUTH", "maybe")
    process = Process("worker")
    report = process.health.report()
    assert not report.ready and process.system is None
    assert report.problems == ["configuration: DISPATCH_AUTH must be one of on, off, not "
                               "'maybe'"]
    assert process.broker.get_declared_actors() == set()  # it consumes nothing


def test_a_worker_whose_broker_is_unreachable_is_not_ready_and_names_it(monkeypatch, tmp_path,
                                                                        restore_logging):
    from tasks.process import Process

    port = closed_port()
    monkeypatch.setenv("DISPATCH_HOME", str(tmp_path))
    monkeypatch.setenv("DISPATCH_STORE", "memory://")
    monkeypatch.setenv("DISPATCH_BROKER", f"redis://127.0.0.1:{port}/0")
    process = Process("worker")
    try:
        process.health.add("actors", process.check_actors)
        report = process.health.report()
        problems = dict(p.split(": ", 1) for p in report.problems)
        assert not report.ready
        assert problems["broker"].startswith(f"broker redis://127.0.0.1:{port}/0: ")
        assert "Connection refused" in problems["broker"]
        # its actors are declared, but no Dramatiq worker consumes them in this test
        assert problems["actors"] == "the Dramatiq worker has not started consuming"
    finally:
        process.close()
