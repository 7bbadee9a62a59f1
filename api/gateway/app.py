"""The API gateway: HTTP requests on APIs' routes become runs of their functions.

A request on ``/<org>/<uri>`` (or on one of an API's hosts) is matched by the route table
(:mod:`engine.services.routes`) and turned into a *blocking* run of the API's function:

* input: a JSON body (``application/json`` or ``application/*+json``); a form
  (``application/x-www-form-urlencoded``, ``multipart/form-data``) as an object (a field
  given once is a string, given more often a list); no body: the query string, likewise;
  a body without a content type: its text. Anything else is 415, and a JSON content type
  whose body is not JSON is 400, with Dispatch's messages.
* ``ctx.httpContext``: ``method, path, uri`` (the API's), ``host, headers`` (lower-case
  names, without ``cookie``, ``authorization`` and ``proxy-authorization``) and
  ``query``.
* the answer: the run's output as JSON (200); a failed run as ``{code, message}`` naming
  the run: InputError 400, FunctionError 502, SystemError 500, not settled in time 504.
  ``X-Dispatch-Blocking: false`` answers as Dispatch's gateway did, 200 with an empty
  body (its e2e checks the output is empty); the run's name is in the ``X-Dispatch-Run``
  header and its address in ``Location``.

The organization comes from the path or the API's host, never from ``X-Dispatch-Org``.
An API's ``authentication`` (``public`` or ``bearer``) is enforced before the body is
read (:mod:`api.gateway.auth`). Bodies over ``max_body_bytes`` are refused with 413
before they are read.

:func:`mount` puts the gateway in front of the API app (every path outside the API's own
first segments, and every request on an API's host); :func:`create_gateway_app` is the
gateway alone, for its own process.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from flask import Flask, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from engine import entities as E
from engine.errors import (BehindFailed, Conflict, DeadlineExceeded, DispatchError,
                           ExecutionFaulted, InvalidInput, MethodNotAllowed, NotFound,
                           RunFailed, UnsupportedMedia)
from engine.observability.health import Health
from engine.limits import load_json
from engine.services.routes import Match
from engine.system import Dispatch

from .. import errors, observability
from ..body import body_limit_message, check_declared_length, read_body
from .auth import GatewayUnauthenticated, authenticate

log = logging.getLogger("dispatch.gateway")

#: first path segments that belong to the API itself, never to the gateway
API_SEGMENTS = frozenset({"v1", "healthz", "readyz", "metrics", "docs", "openapi.json",
                          "oidc", "ui", ""})
#: whole paths that belong to the API (Dispatch's identity manager's ``/home``, which the
#: original CLI's login calls); ``/home/…`` stays the gateway's (an organization "home")
API_PATHS = frozenset({"/home"})
#: the response header naming a non-blocking call's run
RUN_HEADER = "X-Dispatch-Run"
#: request headers a function never sees
HIDDEN_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# TRACE too: the route table answers it (405 with Allow on an API's path, else 404)
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]


def create_gateway_app(system: Dispatch, health: Health | None = None,
                       health_routes: bool = True) -> Flask:
    """The gateway as a Flask app of its own over ``system``.

    :param health: the process's readiness (default: the store's and the job queue's).
    :param health_routes: serve ``/healthz``, ``/readyz`` and ``/metrics`` (the gateway
        process); not when mounted in the API app, which serves its own.
    """
    app = Flask("dispatch.gateway")
    limit = system.settings.max_body_bytes
    # forms are parsed by werkzeug: the same limit for them, in memory too
    app.config.update(MAX_CONTENT_LENGTH=limit, MAX_FORM_MEMORY_SIZE=limit)
    app.json.sort_keys = False
    app.extensions["dispatch"] = system
    observability.register(app, "gateway",
                           health or observability.default_health(system, "gateway"))
    if health_routes:
        observability.add_health_routes(app)
    # every path and method reach one view: routing is the route table's
    app.add_url_rule("/", "gateway", _handle, defaults={"path": ""}, methods=ALL_METHODS,
                     provide_automatic_options=False)
    app.add_url_rule("/<path:path>", "gateway_path", _handle, methods=ALL_METHODS,
                     provide_automatic_options=False)
    errors.register(app)
    return app


def mount(app: Flask, system: Dispatch, health: Health | None = None) -> None:
    """Serve the gateway from ``app`` too: requests on an API host, and paths whose first
    segment is not the API's own, go to the gateway; the rest to ``app`` as before."""
    gateway = create_gateway_app(system, health, health_routes=False)
    app.extensions["dispatch.gateway"] = gateway
    app.wsgi_app = GatewayDispatcher(app.wsgi_app, gateway.wsgi_app,
                                     system.routes.is_api_host)


class GatewayDispatcher:
    """A WSGI app in front of the API app that sends gateway requests to the gateway."""

    def __init__(self, api: Callable, gateway: Callable, is_api_host: Callable[[str], bool]):
        self.api, self.gateway, self.is_api_host = api, gateway, is_api_host

    def __call__(self, environ: dict[str, Any], start_response: Callable):
        path = environ.get("PATH_INFO", "")
        first = path.lstrip("/").split("/", 1)[0]
        ours = first in API_SEGMENTS or path in API_PATHS
        if not ours or self.is_api_host(environ.get("HTTP_HOST")):
            return self.gateway(environ, start_response)
        return self.api(environ, start_response)


def _system() -> Dispatch:
    from flask import current_app

    return current_app.extensions["dispatch"]


def _handle(path: str) -> Response:
    system = _system()
    try:
        match = system.routes.match(request.host, request.path, request.method)
    except MethodNotAllowed as exc:
        return errors.dispatch_error_response(exc)
    if match is None:
        return errors.error_response(404, "no API found with those values")
    api = match.api
    try:
        response = _serve(system, match)
    except GatewayUnauthenticated as exc:
        response = exc.response
    except DispatchError as exc:
        response = errors.dispatch_error_response(exc)
    except RequestEntityTooLarge:  # werkzeug's, reading a form
        response = errors.error_response(413, body_limit_message(limit_of_app()))
    if api.get("cors"):
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _serve(system: Dispatch, match: Match) -> Response:
    api, method = match.api, request.method
    if method == "OPTIONS" and "OPTIONS" not in api["methods"]:
        return _preflight(api)  # routes match a non-listed OPTIONS only on CORS APIs
    protocols = api.get("protocols") or ["http", "https"]
    if request.scheme not in protocols:
        raise InvalidInput(f"Please use {protocols[0].upper()} protocol")
    authenticate(system, api)  # bearer APIs: 401/403 before the body is read
    limit = system.settings.max_body_bytes
    check_declared_length(limit)
    payload = read_input(limit)
    blocking = request.headers.get("X-Dispatch-Blocking", "").strip().lower() != "false"
    body = {"blocking": blocking, "input": payload, "httpContext": http_context(match)}
    if api.get("workflow"):
        return _serve_workflow(system, api, match, body)
    try:
        run = system.runs.start(match.org, api["function"], body)
    except NotFound as exc:
        # the API is fine, what stands behind it is not: a gateway's 502
        raise BehindFailed(f"api {api['name']}: {exc.message}") from None
    log.info("gateway.run api=%s run=%s blocking=%s", E.key_of(api), run["name"], blocking)
    if not blocking:
        response = Response(status=200)
        response.headers[RUN_HEADER] = run["name"]
        response.headers["Location"] = f"/v1/runs/{run['name']}"
        return response
    run = system.runs.wait(run)
    what = f"run {run['name']} of function {api['function']}"
    if run["status"] == E.READY:
        return _json(run.get("output"), 200)
    if run["status"] == E.ERROR:
        error = run.get("error") or {}
        kind = error.get("type") or "SystemError"
        raise RunFailed(kind, f"{what} failed: {kind}: {error.get('message') or ''}".rstrip())
    raise DeadlineExceeded(f"{what} did not finish in time (status {run['status']})")


def _serve_workflow(system: Dispatch, api: E.Entity, match: Match,
                    body: dict[str, Any]) -> Response:
    """An API that targets a workflow: an execution whose input is the request's; a
    blocking answer is its output (200), its error's status (a fault), or 504."""
    try:
        execution = system.executions.start(
            match.org, api["workflow"], {"input": body["input"]},
            trigger={"kind": "api", "api": api["name"], "httpContext": body["httpContext"]})
    except NotFound as exc:
        raise BehindFailed(f"api {api['name']}: {exc.message}") from None
    log.info("gateway.execution api=%s execution=%s", E.key_of(api), execution["name"])
    if not body["blocking"]:
        response = _json({"name": execution["name"], "status": execution["status"]}, 202)
        response.headers["Location"] = f"/v1/executions/{execution['name']}"
        return response
    execution = system.executions.wait(execution)
    what = f"execution {execution['name']} of workflow {api['workflow']}"
    if execution["status"] == "completed":
        return _json(execution.get("output"), 200)
    if execution["status"] == "faulted":
        error = execution.get("error") or {}
        raise ExecutionFaulted(error, f"{what} faulted: {error.get('title') or ''}: "
                                      f"{error.get('detail') or ''}".rstrip(": "))
    if execution["status"] == "cancelled":
        raise Conflict(f"{what} was cancelled")
    raise DeadlineExceeded(f"{what} did not finish in time (status {execution['status']})")


def _preflight(api: E.Entity) -> Response:
    response = Response(status=200)
    response.headers["Access-Control-Allow-Methods"] = ", ".join(api["methods"])
    requested = request.headers.get("Access-Control-Request-Headers")
    if requested:
        response.headers["Access-Control-Allow-Headers"] = requested
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def read_input(limit: int) -> Any:
    """The run's input from the request (see the module's docstring)."""
    content_type = request.mimetype  # lower-case, without parameters
    if content_type in FORMS:
        return simple(request.form)  # werkzeug caps it at MAX_CONTENT_LENGTH
    data = read_body(limit)
    if not data:
        return simple(request.args)
    if content_type == "application/json" or (content_type.startswith("application/")
                                              and content_type.endswith("+json")):
        return load_json(data)
    if not content_type:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsupportedMedia("request body without a content type must be UTF-8 "
                                   "text") from None
    raise UnsupportedMedia("request body type is not supported: "
                           f"{request.headers.get('Content-Type')}")


def http_context(match: Match) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": request.path,
        "uri": match.uri,
        "host": request.host,
        "headers": {k.lower(): v for k, v in request.headers.items()
                    if k.lower() not in HIDDEN_HEADERS},
        "query": simple(request.args),
    }


def simple(values: MultiDict) -> dict[str, Any]:
    """A field given once as its string, given more often as the list of them."""
    return {k: v[0] if len(v) == 1 else v for k, v in values.lists()}


def limit_of_app() -> int:
    from flask import current_app

    return current_app.config["MAX_CONTENT_LENGTH"]


def _json(value: Any, status: int) -> Response:
    return Response(json.dumps(value), status=status, mimetype="application/json")
