"""Calling a function server over its socket (engine.drivers.instance): whole answers
read however they arrive, a clear error for every answer that is not one, and a timeout
(kept by the kernel) for a server that does not answer."""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from engine.drivers.instance import MAX_REPLY_BYTES, FunctionServer, ReplyTooLarge, _read_reply


def reply_to(*pieces: bytes, close: bool = False):
    """What ``_read_reply`` makes of ``pieces`` sent one by one (then the end, if ``close``)."""
    ours, theirs = socket.socketpair()

    def send() -> None:
        for piece in pieces:
            theirs.sendall(piece)
        if close:
            theirs.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        ours.settimeout(10)
        return _read_reply(ours)
    finally:
        sender.join()
        ours.close()
        if not close:
            theirs.close()


def test_an_answer_in_pieces_is_read_whole():
    body = b'{"payload": {"x": 1}}'
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert reply_to(head[:7], head[7:], body[:5], body[5:]) == (200, body, False)
    assert reply_to(head + body)[0:2] == (200, body)


def test_the_servers_close_is_reported():
    head = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    assert reply_to(head) == (400, b"{}", True)


def test_answers_that_are_not_answers_fail_clearly():
    with pytest.raises(http.client.HTTPException, match="answered badly"):
        reply_to(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(http.client.HTTPException, match="answered badly"):
        reply_to(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(http.client.RemoteDisconnected):
        reply_to(b"HTTP/1.1 200", close=True)
    with pytest.raises(http.client.IncompleteRead):
        reply_to(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", close=True)
    with pytest.raises(http.client.HTTPException, match="more than"):
        reply_to(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}{}")
    with pytest.raises(ReplyTooLarge):
        reply_to(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_REPLY_BYTES + 1))


class SocketServer(FunctionServer):
    """A FunctionServer over one end of a socket pair (the test holds the other)."""

    def __init__(self, sock: socket.socket):
        self._conn = http.client.HTTPConnection("localhost")
        self._conn.sock = sock
        self.directory = "/nonexistent"


def test_a_server_that_does_not_answer_times_out_and_its_connection_closes():
    ours, theirs = socket.socketpair()
    ours.settimeout(10)  # as connect() leaves it: the call makes the kernel time it
    server = SocketServer(ours)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    theirs.sendall(answer)
    assert server.call(b"{}", 5.0) == (200, b"{}")  # answered in time
    assert theirs.recv(65536).startswith(b"POST / HTTP/1.1\r\n")
    with pytest.raises(TimeoutError):
        server.call(b"{}", 0.2)  # nothing comes back
    assert server._conn.sock is None  # what was half read is not the next reply's
    theirs.close()
