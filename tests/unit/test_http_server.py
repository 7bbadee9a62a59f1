"""The embedded API's HTTP server (cheroot, api.http_server): a kept-alive client's
requests are served by the thread that answered the one before (the linger), without
starving other clients when every thread lingers, and the request head is bounded."""

from __future__ import annotations

import http.client
import threading

import pytest

from api.http_server import MAX_HEADER_BYTES, HttpServer


def thread_app(environ, start_response):
    body = str(threading.get_ident()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def serve():
    servers = []

    def start(**kwargs) -> int:
        server = HttpServer(thread_app, "127.0.0.1", 0, **kwargs)
        server.start()
        servers.append(server)
        return server.port

    yield start
    for server in servers:
        server.stop()


def get(conn: http.client.HTTPConnection, headers: dict | None = None) -> tuple[int, bytes]:
    conn.request("GET", "/", headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


def test_a_kept_alive_clients_requests_are_served_by_one_thread(serve):
    # a generous linger: the next request always comes within it, even on a loaded host
    port = serve(threads=4, linger_seconds=5.0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    threads = {get(conn)[1] for _ in range(20)}
    assert len(threads) == 1


def test_lingering_threads_do_not_starve_other_clients(serve):
    # two threads, five kept-alive clients taking turns: each turn finds both threads
    # lingering on other connections, which they leave after the linger
    port = serve(threads=2, linger_seconds=0.05)
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(5)]
    statuses = [get(conn)[0] for _ in range(4) for conn in conns]
    assert statuses == [200] * 20


def test_without_a_linger_connections_still_stay_alive(serve):
    port = serve(threads=2, linger_seconds=0)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    assert [get(conn)[0] for _ in range(10)] == [200] * 10
    assert conn.sock is not None  # the same connection throughout


def test_an_oversized_request_head_is_refused(serve):
    port = serve()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status, body = get(conn, {"X-Big": "a" * (MAX_HEADER_BYTES + 1)})
    assert status == 413
    assert b"headers" in body
