"""The Flask application factory."""

from __future__ import annotations

from inspect import iscoroutinefunction
from typing import Any, Callable

from flask import Flask, Request, Response
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_smorest import Api

from engine import __version__, fastjson
from engine.observability.health import Health
from engine.settings import Settings
from engine.system import Dispatch

from . import auth, errors, observability, oidc_login
from .gateway import app as gateway

#: the largest request body the /v1 API takes (413 above it)
API_MAX_BODY_BYTES = 64 << 20


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, without making the cookie's signer for a request
    that carries no session cookie (every API call with a token): Flask makes one for
    every request, then finds no cookie and answers an empty session, as this does."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and ("HTTP_COOKIE" not in request.environ
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)


class _FastJSON(DefaultJSONProvider):
    """Flask's JSON answers written by :mod:`engine.fastjson` (Flask's ``default`` still
    turns dates, decimals and dataclasses into JSON), unless they are to be indented or
    sorted, which Flask's own provider does."""

    sort_keys = False

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if self.sort_keys or self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)
        body = fastjson.dumpb(self._prepare_response_obj(args, kwargs), self.default)
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)


class DispatchFlask(Flask):
    """Flask, with what it does on every request for every hook made cheaper: sessions
    as above, JSON answers as :class:`_FastJSON` writes them, and whether a function is a
    coroutine function asked once per function (Flask asks ``inspect`` for each hook and
    view of each request)."""

    session_interface = _CookieSessions()
    json_provider_class = _FastJSON
    #: functions seen, bounded: a view's bound method is new each request, its function not
    _ASYNC_CACHE_MAX = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._is_async: dict[Callable, bool] = {}

    def ensure_sync(self, func: Callable) -> Callable:
        plain = getattr(func, "__func__", func)
        is_async = self._is_async.get(plain)
        if is_async is None:
            if len(self._is_async) >= self._ASYNC_CACHE_MAX:
                self._is_async.clear()
            is_async = self._is_async[plain] = iscoroutinefunction(func)
        return self.async_to_sync(func) if is_async else func


def create_app(system: Dispatch | None = None, settings: Settings | None = None,
               health: Health | None = None) -> Flask:
    """A Dispatch API app over ``system`` (assembled from ``settings`` if not given).

    :param system: the engine to serve; the embedded server and tests pass their own.
    :param settings: used to assemble an engine on the broker ``DISPATCH_BROKER`` names
        when ``system`` is None.
    :param health: the process's readiness (``/readyz``); by default the store's and the
        job queue's (the distributed ``api`` process passes its own, see
        :mod:`api.wsgi`).
    """
    app = DispatchFlask("dispatch")
    app.config.update(
        API_TITLE="Dispatch",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        JSON_SORT_KEYS=False,
        # function sources travel in request bodies: a larger limit than the gateway's
        MAX_CONTENT_LENGTH=API_MAX_BODY_BYTES,
    )
    app.json.sort_keys = False
    if system is None:
        from tasks.actors import assemble
        from tasks.broker import make_broker

        settings = settings or Settings.from_env()
        system = assemble(settings, make_broker(settings.broker_url))
        # the distributed api process: the admin from DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE
        auth.bootstrap_distributed(system)
    app.extensions["dispatch"] = system
    # request ids, traces, log context and request metrics: before every other hook
    observability.register(app, "api", health or observability.default_health(system, "api"))

    # browser sessions (api.oidc_login) register here, before auth
    oidc_login.register(app)
    auth.register(app)

    api = Api(app)
    from blueprints import (apis, event_drivers, events, functions, health, home, iam,
                            images, runs, secrets, workflows)

    for module in (health, functions, runs, secrets, images, events, event_drivers, apis,
                   iam, home, workflows):
        api.register_blueprint(module.blp)
    api.register_blueprint(workflows.executions_blp)
    errors.register(app)
    from blueprints import ui

    ui.register(app)  # the web UI at /ui/ (after the browser login: it shares the session)
    # the gateway answers paths outside the API's own and requests on APIs' hosts
    gateway.mount(app, system, app.extensions[observability.HEALTH_KEY])
    return app
