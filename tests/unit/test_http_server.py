"""The embedded API's HTTP server (cheroot, api.http_server): a kept-alive client's
requests are served by the thread that answered the one before (the linger), without
starving other clients when every thread lingers, the request head is bounded, the
socket reader gives cheroot lines and bodies however the bytes arrive, an answer's head
goes out with its body (and alone when there is none, at once when the body streams), and
a client that stops sending is cut off by the kernel-kept timeout."""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from api.http_server import MAX_HEADER_BYTES, HttpServer, SocketReader, SocketWriter


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


def echo_app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


def test_pipelined_requests_and_bodies_sent_byte_by_byte_are_answered(serve):
    server = HttpServer(echo_app, "127.0.0.1", 0, linger_seconds=0)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
            two = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond"
            sock.sendall(one + two)  # two requests in one packet: the second is buffered
            three = b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\nthird"
            for byte in three:  # then one byte a packet
                sock.sendall(bytes([byte]))
            answers = b""
            while chunk := sock.recv(65536):
                answers += chunk
        parts = answers.split(b"HTTP/1.1 ")[1:]
        assert [p.split(b"\r\n", 1)[0] for p in parts] == [b"200 OK"] * 3, answers
        assert [p.split(b"\r\n\r\n", 1)[1] for p in parts] == [b"first", b"second", b"third"]
    finally:
        server.stop()


@pytest.fixture
def reader():
    ours, theirs = socket.socketpair()
    ours.settimeout(30)
    yield SocketReader(ours), theirs
    ours.close()
    theirs.close()


def test_the_reader_gives_lines_and_bodies_across_packets(reader):
    rfile, peer = reader
    peer.sendall(b"GET / HTTP/1.1\r\nHost: a")
    peer.sendall(b"\r\nX: " + b"y" * 100 + b"\r\n\r\nbody-bytes")
    assert rfile.readline() == b"GET / HTTP/1.1\r\n"
    assert rfile.readline() == b"Host: a\r\n"
    assert rfile.readline(10) == b"X: yyyyyyy"  # at most size bytes
    assert rfile.readline() == b"y" * 93 + b"\r\n"
    assert rfile.readline() == b"\r\n"
    assert rfile.has_data()
    assert rfile.read(4) == b"body"
    peer.sendall(b"-and-more\nlast line")
    peer.shutdown(socket.SHUT_WR)
    assert list(rfile) == [b"-bytes-and-more\n", b"last line"]
    assert rfile.read(10) == b"" and rfile.readline() == b"" and not rfile.has_data()
    assert rfile.bytes_read == len(b"GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\nbody-bytes-and-more\nlast line") + 100


def test_the_reader_reads_to_the_end_and_refuses_after_close(reader):
    rfile, peer = reader
    peer.sendall(b"a" * 200_000)
    peer.shutdown(socket.SHUT_WR)
    assert rfile.read() == b"a" * 200_000
    rfile.close()
    with pytest.raises(ValueError):
        rfile.read(1)


class RecordingSocket:
    def __init__(self):
        self.sent: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sent.append(bytes(data))


def test_the_writer_sends_a_held_head_with_the_next_write_or_on_flush():
    sock = RecordingSocket()
    wfile = SocketWriter(sock)
    wfile.hold()
    wfile.write(b"HTTP/1.1 200 OK\r\n\r\n")
    wfile.write(b"body")
    wfile.write(b"more")
    assert sock.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]
    wfile.hold()
    wfile.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    wfile.flush()
    wfile.flush()  # nothing left
    assert sock.sent[2:] == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert wfile.bytes_written == sum(map(len, sock.sent))


def no_content_app(environ, start_response):
    start_response("204 No Content", [])
    return []


def test_an_answer_without_a_body_is_sent():
    server = HttpServer(no_content_app, "127.0.0.1", 0, linger_seconds=0)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        assert [get(conn)[0] for _ in range(3)] == [204] * 3
    finally:
        server.stop()


def test_a_streamed_answer_reaches_the_client_as_it_is_made():
    received_first = threading.Event()

    def streaming_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first;"
        # the rest only once the client has the head and the first part: a head held
        # back until the answer's end would never get there
        assert received_first.wait(30)
        yield b"second"

    server = HttpServer(streaming_app, "127.0.0.1", 0, linger_seconds=0)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while b"first;" not in got:
                chunk = sock.recv(65536)
                assert chunk, got
                got += chunk
            assert got.startswith(b"HTTP/1.1 200 OK\r\n")
            received_first.set()
            while chunk := sock.recv(65536):
                got += chunk
        assert b"second" in got
    finally:
        server.stop()


def test_a_client_that_stops_sending_is_cut_off():
    # the connection's socket blocks, timed by the kernel: without that timeout the
    # worker would wait for the rest of this request for ever
    server = HttpServer(thread_app, "127.0.0.1", 0, linger_seconds=0, idle_seconds=0.3)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the end of it
            got = b""
            while chunk := sock.recv(65536):
                got += chunk
        assert got == b"" or got.startswith(b"HTTP/1.1 408"), got
        # and the server still serves
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        assert get(conn)[0] == 200
    finally:
        server.stop()
