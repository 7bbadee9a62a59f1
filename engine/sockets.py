"""Sockets whose timeouts the kernel keeps (``SO_RCVTIMEO``, ``SO_SNDTIMEO``).

A Python socket with a timeout waits in ``poll`` before each ``recv`` and ``send``: two
system calls an operation, and the thread lets the interpreter lock go around each. On a
busy process another thread takes the lock every time, and this one waits to have it
back — so the hot sockets (an API connection, the call into a function server) are left
blocking, and the kernel ends an operation that waits too long instead: the operation
then fails with ``EAGAIN`` (``BlockingIOError``), which callers take for a timeout.
"""

from __future__ import annotations

import socket
import struct


def time_by_kernel(sock: socket.socket, seconds: float) -> None:
    """Make ``sock`` blocking, each receive and send ending after ``seconds`` without
    progress (a ``BlockingIOError``)."""
    whole = int(seconds)
    micros = max(int((seconds - whole) * 1_000_000), 0 if whole else 1)  # 0 is "never"
    value = struct.pack("@ll", whole, micros)
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)

