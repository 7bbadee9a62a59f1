"""A small HTTP server for processes that serve no HTTP of their own (the worker, the
scheduler): ``/healthz``, ``/readyz`` and ``/metrics`` on ``DISPATCH_HEALTH_PORT``.

``DISPATCH_HEALTH_PORT`` is a port (every interface: a kubelet probes the pod's address)
or ``host:port``. Dramatiq runs several worker processes of one configuration: the first
to bind the port serves it (its readiness stands for the others', which share its
settings, store and broker; ``/metrics`` covers the whole group in multiprocess mode),
the others find it taken and say so at start. If the serving process dies, Dramatiq
stops the whole group, so the port is never left unserved by a running group.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from engine import __version__
from engine.observability import metrics
from engine.observability.health import Health

log = logging.getLogger("dispatch.health")


def parse_address(value: str) -> tuple[str, int]:
    """``("0.0.0.0", port)`` for a port, ``(host, port)`` for ``host:port``."""
    host, _, port = value.strip().rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"DISPATCH_HEALTH_PORT must be a port or host:port, not {value!r}") \
            from None
    if not 0 <= number <= 65535:
        raise ValueError(f"DISPATCH_HEALTH_PORT {value!r} is not a port number")
    return host.strip("[]") or "0.0.0.0", number


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    allow_reuse_address = True  # a restart need not wait for TIME_WAIT


def serve_health(address: str, health: Health) -> ThreadingHTTPServer:
    """Serve ``health`` on ``address`` from a daemon thread; returns the server (its
    ``server_address`` has the port when 0 was asked)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, "application/json", json.dumps(
                    {"status": "alive", "role": health.role, "version": __version__}).encode())
            elif path == "/readyz":
                report = health.report()
                self._send(200 if report.ready else 503, "application/json",
                           json.dumps(report.as_dict()).encode())
            elif path == "/metrics":
                body, content_type = metrics.exposition()
                self._send(200, content_type, body)
            else:
                self._send(404, "application/json", json.dumps(
                    {"code": 404, "message": f"no {path} here: /healthz, /readyz, /metrics"}
                ).encode())

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:  # probes every few seconds: quiet
            log.debug("health.request " + fmt, *args)

    host, port = parse_address(address)
    server = _Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    log.info("health.listening role=%s address=%s:%d", health.role, *server.server_address[:2])
    return server
