"""The embedded system (``dispatch up``): API, in-process workers and the reconciler in
one process, on the SQLite store, Dramatiq's StubBroker and the local driver."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import dramatiq
from waitress.server import create_server

from engine import event_scheduler
from engine.leader import start_thread
from engine.settings import Settings
from tasks.actors import assemble
from tasks.broker import make_broker

from .app import create_app

log = logging.getLogger("dispatch.embedded")


class EmbeddedServer:
    """A running embedded Dispatch. ``url`` is where its API answers; ``stop()`` ends it."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 8080,
                 http_threads: int = 16):
        self.settings = settings
        os.makedirs(settings.home, exist_ok=True)
        self.broker = make_broker("stub://")
        self.system = assemble(settings, self.broker)
        self.worker = dramatiq.Worker(self.broker, worker_threads=settings.worker_threads,
                                      worker_timeout=100)
        self.app = create_app(self.system)
        self.http = create_server(self.app, host=host, port=port, threads=http_threads,
                                  ident="dispatch", clear_untrusted_proxy_headers=True)
        self.host, self.port = host, self.http.effective_port
        self.url = f"http://{host}:{self.port}"
        self._threads: list[threading.Thread] = []
        self._stop_reconciler: threading.Event | None = None
        self._stop_events: threading.Event | None = None
        self._stopping = threading.Event()

    def start(self) -> "EmbeddedServer":
        self.worker.start()
        # no reconciler.follow() here: on SQLite its pass filters statuses in SQL, and a
        # watch-fed index would cost this one process a read on every write
        thread, self._stop_reconciler = start_thread(
            self.system.store, "reconciler", self.settings.reconcile_seconds,
            self.system.reconciler.reconcile_once)
        # custom event drivers post to this server unless DISPATCH_API_URL says otherwise
        if not os.environ.get("DISPATCH_API_URL"):
            self.system.event_drivers.api_url = self.url
        events, self._stop_events = event_scheduler.start(self.system)
        http = threading.Thread(target=self._serve_http, name="http", daemon=True)
        http.start()
        self._threads = [thread, http, *events]
        log.info("embedded.listening url=%s home=%s store=%s", self.url, self.settings.home,
                 self.settings.store_url)
        return self

    def _serve_http(self) -> None:
        try:
            self.http.run()
        except OSError:
            # close() from stop() pulls the sockets from under the loop's select()
            if not self._stopping.is_set():
                raise

    def stop(self) -> None:
        self._stopping.set()
        if self._stop_reconciler is not None:
            self._stop_reconciler.set()
        if self._stop_events is not None:
            self._stop_events.set()
        self.http.close()
        self.worker.stop()
        self.system.close()
        for thread in self._threads:
            thread.join(timeout=5)


def start_embedded(home: str, host: str = "127.0.0.1", port: int = 8080,
                   **overrides) -> EmbeddedServer:
    """Start an embedded Dispatch in background threads and return it."""
    settings = Settings.from_env(home=home, broker_url="stub://", **overrides)
    return EmbeddedServer(settings, host, port).start()


def serve_embedded(home: str, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run an embedded Dispatch until SIGINT or SIGTERM (the ``dispatch up`` command)."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # A run crosses several threads of this one process (HTTP, queue, worker, watch);
    # each hand-off may wait for the GIL up to the switch interval (5 ms by default).
    sys.setswitchinterval(0.0005)
    server = start_embedded(home, host, port)
    print(f"Dispatch is up at {server.url} (home {server.settings.home}); Ctrl-C stops it",
          flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    print("Stopping Dispatch…", flush=True)
    server.stop()
