"""Stopping the embedded server: idempotent, safe from several threads at once and while
clients keep it busy — no ``OSError: Bad file descriptor`` from the server's sockets, no
exception in any thread, and the port closed afterwards."""

from __future__ import annotations

import logging
import socket
import threading

import pytest
import requests

from api.embedded import EmbeddedServer, start_embedded
from engine.settings import Settings


@pytest.fixture
def trouble(monkeypatch, caplog):
    """Exceptions that escape any thread, and error records logged, while a test runs."""
    escaped: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    caplog.set_level(logging.WARNING)

    def found() -> list[str]:
        logged = [f"{r.name}: {r.getMessage()}" for r in caplog.records
                  if r.levelno >= logging.ERROR or "exception" in r.getMessage()]
        return [repr(e) for e in escaped] + logged

    return found


def keep_busy(url: str, stop: threading.Event, served: list, ready: threading.Event) -> None:
    """Requests back to back on one keep-alive connection until ``stop`` (or the server
    goes away)."""
    session = requests.Session()
    while not stop.is_set():
        try:
            session.get(f"{url}/healthz", timeout=10)
        except requests.RequestException:
            return  # the server stopped under us: expected
        served.append(1)
        if len(served) >= 40:
            ready.set()


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("cycle", range(3))
def test_stopping_concurrently_and_twice_under_load_is_clean(tmp_path, trouble, cycle):
    server = start_embedded(str(tmp_path / "home"), port=0, auth="off")
    stop_clients, enough, served = threading.Event(), threading.Event(), []
    clients = [threading.Thread(target=keep_busy, args=(server.url, stop_clients, served,
                                                        enough)) for _ in range(8)]
    for client in clients:
        client.start()
    assert enough.wait(60), "the clients never got going"

    failures: list[BaseException] = []
    barrier = threading.Barrier(3)

    def stop() -> None:
        barrier.wait()
        try:
            server.stop()
        except BaseException as exc:  # noqa: BLE001 - any escape is the failure
            failures.append(exc)

    stoppers = [threading.Thread(target=stop) for _ in range(3)]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join(60)
    server.stop()  # once more, after it has stopped
    stop_clients.set()
    for client in clients:
        client.join(30)

    assert failures == []
    assert not any(s.is_alive() for s in stoppers)
    assert trouble() == []
    assert refused(server.port)


def test_stopping_a_server_that_never_started(tmp_path, trouble):
    server = EmbeddedServer(Settings.from_env(home=str(tmp_path / "home"),
                                              broker_url="stub://", auth="off"), port=0)
    server.stop()
    server.stop()
    assert trouble() == []
    assert refused(server.port)
