"""What an HTTP server of Dispatch (the API, the gateway) reports: request metrics by
route template, the log context of each request, liveness and readiness.

* :func:`register` adds to an app: a request id (``X-Request-Id`` if the client sent a
  sane one, else new; echoed on the answer), the W3C trace (``traceparent`` taken or a
  new trace started; the answer carries ours), both bound to the log context with the
  organization once the identity gate settled it; and, per answer,
  ``dispatch_http_requests_total`` and ``dispatch_http_request_duration_seconds`` by the
  URL rule (``/v1/function/<name>``), never the raw path.
* one ``http.request`` log line per answer (method, path without its query, route,
  status, milliseconds), in the request's context.
* ``/healthz`` (live: the process answers), ``/readyz`` (ready: the process's
  :class:`~engine.observability.health.Health` report, 503 with the problems when not) and ``/metrics``
  — on the API through :mod:`blueprints.health`, on the gateway app by
  :func:`add_health_routes`.
* :class:`ProcessApp` is the WSGI app of a distributed process: until its engine is
  assembled it serves only its health (every other request: 503 naming the problem).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable

from flask import Flask, Response, current_app, g, jsonify, request

from engine import __version__
from engine.observability import logs, metrics
from engine.errors import DispatchError
from engine.observability.health import Health, store_check

from . import context

HEALTH_KEY = "dispatch.health"
access_log = logging.getLogger("dispatch.http")
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
#: a client's request id is kept when it looks like one
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def default_health(system, role: str) -> Health:
    """Readiness of an app given an assembled engine: its store and its job queue."""
    health = Health(role)
    settings = getattr(system, "settings", None)
    if getattr(system, "store", None) is not None:
        health.add("store", store_check(system.store, getattr(settings, "store_url", "store")))
    if getattr(system, "jobs", None) is not None:
        health.add("broker", system.jobs.check)
    return health


def register(app: Flask, server: str, health: Health) -> None:
    """Request ids, traces, log context and request metrics for ``app`` (``server``:
    ``api`` or ``gateway``, a label of the metrics)."""
    app.extensions[HEALTH_KEY] = health
    children: dict[tuple[str, str, int], tuple] = {}

    # (the request and g looked up once a hook: each use of Flask's proxies looks them up)
    def begin() -> None:
        req, flask_g = request._get_current_object(), g._get_current_object()
        flask_g.observed_at = time.perf_counter()
        sent = req.headers.get("X-Request-Id", "")
        flask_g.request_id = sent if _REQUEST_ID.match(sent) else logs.new_trace_id()
        flask_g.log_tokens = logs.bind(request_id=flask_g.request_id,
                                       **logs.trace_fields(req.headers.get("traceparent")))

    def settle_org() -> None:
        if server != "api":  # the gateway's organization is its route's
            return
        try:
            org = context.org()  # as the views will see it
        except DispatchError:
            return
        g.log_tokens += logs.bind(org=org)

    def finish(response: Response) -> Response:
        req, flask_g = request._get_current_object(), g._get_current_object()
        started = flask_g.get("observed_at")
        if started is None:  # a request that never reached begin()
            return response
        route = req.url_rule.rule if req.url_rule is not None else "<unmatched>"
        method, code = req.method, response.status_code
        seconds = time.perf_counter() - started
        series = children.get((route, method, code))
        if series is None:  # made once per route, method and code: later a dict lookup
            series = children[(route, method, code)] = (
                metrics.HTTP_REQUESTS.labels(server, route, method, str(code)),
                metrics.HTTP_LATENCY.labels(server, route, method))
        series[0].inc()
        series[1].observe(seconds)
        # the path without its query (which may carry a token: ?authToken=); probes and
        # scrapes every few seconds would drown the rest
        if route not in QUIET_ROUTES:
            access_log.info("http.request method=%s path=%s route=%s status=%d ms=%.2f", method,
                            req.path, route, response.status_code, seconds * 1000)
        # added, not set: no view sets these, and a set would scan the headers
        response.headers.add("X-Request-Id", flask_g.request_id)
        trace = logs.traceparent()
        if trace:
            response.headers.add("traceparent", trace)
        return response

    def end(_exc: BaseException | None) -> None:
        logs.unbind(g.pop("log_tokens", []))

    # first, so that every other hook (the identity gate's refusals) logs in context
    app.before_request_funcs.setdefault(None, []).insert(0, begin)
    app.before_request(settle_org)  # after the identity gate set g.access
    app.after_request(finish)
    app.teardown_request(end)


def liveness() -> dict[str, Any]:
    return {"status": "alive", "version": __version__}


def readiness() -> tuple[Response, int]:
    report = current_app.extensions[HEALTH_KEY].report()
    return jsonify(report.as_dict()), 200 if report.ready else 503


def metrics_response() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


def add_health_routes(app: Flask, live: Callable[[], Any] = liveness) -> None:
    """``/healthz``, ``/readyz`` and ``/metrics`` on an app without the health blueprint."""
    app.add_url_rule("/healthz", "healthz", lambda: jsonify(live()))
    app.add_url_rule("/readyz", "readyz", readiness)
    app.add_url_rule("/metrics", "metrics", metrics_response)


def waiting_app(health: Health, server: str) -> Flask:
    """The app of a process whose engine is not assembled: its health, and 503 naming
    the problems for everything else."""
    app = Flask(f"dispatch.{server}.waiting")
    register(app, server, health)
    add_health_routes(app)

    def not_ready(path: str = "") -> tuple[Response, int]:
        problems = "; ".join(health.report().problems) or "starting"
        return jsonify(code=503, message=f"Dispatch is not ready: {problems}"), 503

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    app.add_url_rule("/", "not_ready", not_ready, methods=methods)
    app.add_url_rule("/<path:path>", "not_ready_path", not_ready, methods=methods)
    return app


class ProcessApp:
    """The WSGI app of a distributed process (``process``: a :class:`tasks.process.Process`):
    :func:`waiting_app` until the engine is assembled, then ``build(system, health)``."""

    def __init__(self, process, build: Callable[[Any, Health], Flask], server: str):
        self.process, self._build, self.server = process, build, server
        self._app: Flask | None = None
        self._lock = threading.Lock()
        self.waiting = waiting_app(process.health, server)
        self.ready_app()  # at once when the engine is already there

    def ready_app(self) -> Flask | None:
        if self._app is None:
            system = self.process.system
            if system is None:
                return None
            with self._lock:
                if self._app is None:
                    self._app = self._build(system, self.process.health)
        return self._app

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        app = self._app or self.ready_app()
        return (app or self.waiting)(environ, start_response)
