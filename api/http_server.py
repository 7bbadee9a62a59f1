"""The embedded API's HTTP server: cheroot (CherryPy's WSGI server) serving a WSGI app on
a thread of its own, with a stop that is safe to call from any thread, any number of
times, while clients keep it busy.

cheroot rather than waitress: a worker thread of cheroot reads a request and writes its
answer itself, where waitress hands every request to a worker and every answer back to
its loop thread through a pipe. And a worker that has answered on a kept-alive
connection waits a moment (:data:`LINGER_SECONDS`, ``DISPATCH_HTTP_LINGER_MS``) for that
client's next request before it hands the connection back to cheroot's selector thread:
a client sending request after request (a script, a service calling functions) is then
served by one thread, with no hand-off between threads per request. A connection reads
and writes its socket through :class:`SocketReader` and :class:`SocketWriter` rather
than cheroot's file objects, which are built on ``_pyio``, the pure-Python ``io``.
Measured in the README's "Performance" section.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from typing import Callable, Iterator

from cheroot import server as cheroot_server, wsgi

from engine.sockets import time_by_kernel

log = logging.getLogger("dispatch.http")

#: how long ``stop`` waits for requests in progress to finish
STOP_SECONDS = 10.0
#: how long a kept-alive connection may stay idle, and a client take to send a request
IDLE_SECONDS = 60
#: kept-alive connections held open at once; past it, answers close their connection
KEEP_ALIVE_CONNECTIONS = 512
#: connections the kernel queues for accepting (a burst of new clients must not see
#: their connection attempts dropped and retried a second later)
BACKLOG = 1024
#: the largest request line and headers taken (413 past it); bodies are bounded by the
#: app, which names the limit in its 413
MAX_HEADER_BYTES = 256 * 1024
#: how long a worker waits for the next request on the connection it has just answered
LINGER_SECONDS = 0.002


#: bytes asked of the socket at a time
RECV_BYTES = 65536


class SocketReader:
    """What cheroot reads a connection through (its ``StreamReader``'s interface:
    ``read``, ``readline``, line iteration, ``has_data``, ``bytes_read``), over a
    bytearray: a line is found by one ``find`` in C, where ``_pyio`` loops in Python.
    Timeouts and socket errors reach cheroot as they did."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buf = bytearray()
        self.bytes_read = 0
        self.closed = False

    def has_data(self) -> bool:
        """Whether bytes already received wait to be read (a pipelined request)."""
        return bool(self._buf)

    def _fill(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        try:
            chunk = self._sock.recv(RECV_BYTES)
        except BlockingIOError:  # the kernel's timeout (see _Connection)
            raise socket.timeout("timed out") from None
        self._buf += chunk
        return bool(chunk)

    def _take(self, size: int) -> bytes:
        data = bytes(self._buf[:size])
        del self._buf[:size]
        self.bytes_read += len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes (fewer at the end of the stream); all of it if ``size`` < 0."""
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buf))
        while len(self._buf) < size and self._fill():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """Up to and including the next ``\\n``, at most ``size`` bytes if ``size`` >= 0."""
        limit = -1 if size is None else size
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                length = end + 1
                break
            if 0 <= limit <= len(self._buf):
                length = limit
                break
            start = len(self._buf)
            if not self._fill():
                length = len(self._buf)
                break
        return self._take(length if limit < 0 else min(length, limit))

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, total = [], 0
        for line in self:
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        """Reads end here; the socket is the connection's to close."""
        self.closed = True


class SocketWriter:
    """What cheroot writes a connection through (its ``StreamWriter``'s interface):
    every write sent at once, as cheroot's buffered writer flushed every write — but for
    an answer's head, which is held (:meth:`hold`) and sent with the first of its body,
    or by :meth:`flush` at the answer's end if it has none: one send an answer instead of
    two (a system call lets the interpreter lock go, which under load costs a wait to
    take it back)."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.bytes_written = 0
        self.closed = False
        self._holding = False
        self._held = b""

    def hold(self) -> None:
        """Keep the next write until the one after it, or :meth:`flush`."""
        self._holding = True

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        if isinstance(data, str):
            raise TypeError("can't write str to binary stream")
        if self._holding:
            self._holding, self._held = False, bytes(data)
            return len(data)
        if self._held:
            data, self._held = self._held + data, b""
        self._send(data)
        return len(data)

    def flush(self) -> None:
        """Send what is held."""
        self._holding = False
        if self._held:
            data, self._held = self._held, b""
            self._send(data)

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except BlockingIOError:  # the kernel's timeout (see _Connection)
            raise socket.timeout("timed out") from None
        self.bytes_written += len(data)

    def close(self) -> None:
        self.closed = True


def _socket_file(sock: socket.socket, mode: str = "r", bufsize: int = 0) -> SocketReader | SocketWriter:
    """cheroot's ``MakeFile`` signature, for plain (not TLS) connections."""
    return SocketReader(sock) if "r" in mode else SocketWriter(sock)


class _Request(cheroot_server.HTTPRequest):
    """cheroot's request, whose answer's head goes out with the start of its body
    (:meth:`SocketWriter.hold`)."""

    def send_headers(self) -> None:
        hold = getattr(self.conn.wfile, "hold", None)
        if hold is not None:
            hold()
        super().send_headers()

    def respond(self) -> None:
        try:
            super().respond()
        finally:
            flush = getattr(self.conn.wfile, "flush", None)
            if flush is not None:
                flush()


class _Connection(cheroot_server.HTTPConnection):
    """cheroot's connection, reading and writing a plain socket through
    :func:`_socket_file` (a TLS adapter's file objects are left as they are), its
    requests answered by :class:`_Request`."""

    RequestHandlerClass = _Request

    def __init__(self, server, sock, makefile=cheroot_server.MakeFile):
        plain = makefile is cheroot_server.MakeFile
        super().__init__(server, sock, makefile=_socket_file if plain else makefile)
        if plain:  # a receive or a send: one system call, timed by the kernel
            time_by_kernel(sock, server.timeout)


class _LingeringServer(wsgi.Server):
    """cheroot's WSGI server, whose workers serve a kept-alive connection's next request
    themselves when it arrives within ``linger`` seconds (see the module), over
    :class:`_Connection`."""

    linger = LINGER_SECONDS
    ConnectionClass = _Connection

    def put_conn(self, conn) -> None:  # called by the worker that answered on ``conn``
        while self.ready and self.linger > 0:
            if not conn.rfile.has_data():
                try:
                    readable, _, _ = select.select([conn.socket], [], [], self.linger)
                except (OSError, ValueError):  # closed meanwhile
                    conn.close()
                    return
                if not readable:
                    break
            try:
                keep_open = conn.communicate()
            except (KeyboardInterrupt, SystemExit):
                conn.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - as cheroot's worker: drop the
                # connection, keep the thread (an error here would end the server)
                log.info("http.connection_error remote=%s error=%r", conn.remote_addr, exc)
                conn.close()
                return
            if not keep_open:
                conn.close()
                return
        super().put_conn(conn)


class HttpServer:
    """One cheroot server of ``app`` on ``host:port`` (port 0: any free one), ``threads``
    requests served at once (a streamed answer, such as the web UI's live runs, holds
    one for as long as it streams).

    :meth:`start` serves on a daemon thread; :meth:`stop` closes the listener and every
    idle connection, lets requests in progress finish (up to :data:`STOP_SECONDS`), and
    returns once the serving thread has ended. Stopping again, or from several threads
    at once, waits for the one stop and does nothing more.
    """

    def __init__(self, app: Callable, host: str, port: int, threads: int = 16,
                 linger_seconds: float = LINGER_SECONDS, idle_seconds: float = IDLE_SECONDS):
        self._server = _LingeringServer(
            # server_name is also the Server header
            (host, port), app, numthreads=threads, server_name="dispatch",
            timeout=idle_seconds, shutdown_timeout=STOP_SECONDS,
            request_queue_size=BACKLOG)
        self._server.linger = max(0.0, linger_seconds)
        self._server.keep_alive_conn_limit = KEEP_ALIVE_CONNECTIONS
        self._server.max_request_header_size = MAX_HEADER_BYTES
        self._server.prepare()  # binds now: the port is known, and taken, from here on
        self.port = int(self._server.bind_addr[1])
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> None:
        """Serve on a thread of its own."""
        with self._lock:
            if self._stopping.is_set() or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="http", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._server.serve()
        except OSError:
            if not self._stopping.is_set():
                raise

    def stop(self) -> None:
        """Stop serving (see the class); idempotent and thread-safe."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            self._server.stop()
            if self._thread is not None:
                self._thread.join(STOP_SECONDS)
                if self._thread.is_alive():
                    log.warning("http.stop_slow thread=%s still running after %ss",
                                self._thread.name, STOP_SECONDS)
