"""The embedded API's HTTP server: cheroot (CherryPy's WSGI server) serving a WSGI app on
a thread of its own, with a stop that is safe to call from any thread, any number of
times, while clients keep it busy.

cheroot rather than waitress: a worker thread of cheroot reads a request and writes its
answer itself, where waitress hands every request to a worker and every answer back to
its loop thread through a pipe. And a worker that has answered on a kept-alive
connection waits a moment (:data:`LINGER_SECONDS`, ``DISPATCH_HTTP_LINGER_MS``) for that
client's next request before it hands the connection back to cheroot's selector thread:
a client sending request after request (a script, a service calling functions) is then
served by one thread, with no hand-off between threads per request. Measured in the
README's "Performance" section.
"""

from __future__ import annotations

import logging
import select
import threading
from typing import Callable

from cheroot import wsgi

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


class _LingeringServer(wsgi.Server):
    """cheroot's WSGI server, whose workers serve a kept-alive connection's next request
    themselves when it arrives within ``linger`` seconds (see the module)."""

    linger = LINGER_SECONDS

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
                 linger_seconds: float = LINGER_SECONDS):
        self._server = _LingeringServer(
            # server_name is also the Server header
            (host, port), app, numthreads=threads, server_name="dispatch",
            timeout=IDLE_SECONDS, shutdown_timeout=STOP_SECONDS,
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
