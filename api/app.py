"""The Flask application factory."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from engine import __version__
from engine.observability.health import Health
from engine.settings import Settings
from engine.system import Dispatch

from . import auth, errors, observability, oidc_login
from .gateway import app as gateway

#: the largest request body the /v1 API takes (413 above it)
API_MAX_BODY_BYTES = 64 << 20


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
    app = Flask("dispatch")
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
