"""waitress serving a WSGI app on a thread of its own, with a stop that is safe to call
from any thread, any number of times, while clients keep it busy.

waitress's own trigger (the pipe other threads write to, to wake its select loop) is
unsafe to stop: its close shuts both ends and then closes the read end a second time,
so a descriptor another thread opened meanwhile under the same number is closed from
under it; and a request thread finishing after the close writes to a closed (or reused)
descriptor, ``OSError: Bad file descriptor``. :class:`GuardedTrigger` takes its place:
wake-ups and the close exclude each other, each end is closed once, and a wake-up after
the close does nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable

from waitress import trigger as waitress_trigger
from waitress import wasyncore
from waitress.server import create_server

log = logging.getLogger("dispatch.http")

#: how long ``stop`` waits for requests in progress to finish
STOP_SECONDS = 10.0


class GuardedTrigger(waitress_trigger.trigger):
    """waitress's pipe trigger with a close that wake-ups cannot race (see the module)."""

    def __init__(self, map: dict) -> None:
        self._guard = threading.Lock()
        self._shut = False
        super().__init__(map)
        # a full pipe already guarantees a wake-up: never block a request thread on it
        os.set_blocking(self.trigger, False)

    def _physical_pull(self) -> None:
        with self._guard:
            if self._shut:
                return
            try:
                os.write(self.trigger, b"x")
            except BlockingIOError:
                pass

    def _close(self) -> None:
        with self._guard:
            self._shut = True
            os.close(self.trigger)  # the write end; the read end is the dispatcher's
            self._fds = []
        wasyncore.file_dispatcher.close(self)  # closes the read end, once


class HttpServer:
    """One waitress server of ``app`` on ``host:port`` (port 0: any free one).

    :meth:`start` serves on a daemon thread; :meth:`stop` closes the listener and every
    connection in the server's own loop, lets requests in progress finish (up to
    :data:`STOP_SECONDS`), and returns once the loop has ended. Stopping again, or from
    several threads at once, waits for the one stop and does nothing more.
    """

    def __init__(self, app: Callable, host: str, port: int, threads: int = 16):
        self._server = create_server(app, host=host, port=port, threads=threads,
                                     ident="dispatch", clear_untrusted_proxy_headers=True)
        _guard_trigger(self._server)
        self.port = int(self._server.effective_port)
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
            self._server.run()
        except OSError:
            if not self._stopping.is_set():
                raise

    def stop(self) -> None:
        """Stop serving (see the class); idempotent and thread-safe."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            if self._thread is None:
                self._close_all()  # no loop runs: nothing else touches the channels
            else:
                # the loop owns its channels: close them from inside it; it ends once its
                # map is empty
                self._server.trigger.pull_trigger(self._close_all)
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=STOP_SECONDS)
            if self._thread is not None:
                self._thread.join(STOP_SECONDS)
                if self._thread.is_alive():
                    log.warning("http.stop_slow thread=%s still running after %ss",
                                self._thread.name, STOP_SECONDS)

    def _close_all(self) -> None:
        for channel in list(self._server._map.values()):
            channel.close()


def _guard_trigger(server) -> None:
    """Put a :class:`GuardedTrigger` in place of the server's own, before it serves."""
    old = server.trigger
    server.trigger = GuardedTrigger(server._map)
    # retire the original without its double close of the read end
    old._closed = True
    old.del_channel()
    os.close(old.trigger)
    old.socket.close()
    old._fds = []
