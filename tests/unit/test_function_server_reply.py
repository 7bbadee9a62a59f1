"""Reading a function server's answer off its socket (engine.drivers.instance._read_reply):
whole answers however they arrive, and a clear error for every answer that is not one."""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from engine.drivers.instance import MAX_REPLY_BYTES, ReplyTooLarge, _read_reply


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
