"""``/healthz`` (live), ``/readyz`` (ready), ``/metrics`` and ``/v1/version``."""

from __future__ import annotations

import platform
import sys

from flask_smorest import Blueprint

from api import observability
from api.context import system
from engine import __version__

blp = Blueprint("health", __name__, description="Health, readiness, metrics and version")


def version() -> dict:
    """Dispatch's ``Version``, plus which builder this server has (``local`` or
    ``docker``) and, for ``docker``, its registry: ``dispatch create seed-images`` picks
    its base images by them."""
    settings = system().settings
    builder = {"builder": settings.builder}
    if settings.builder == "docker":
        builder["registry"] = settings.registry
    return {
        "version": __version__,
        "commit": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": f"{sys.platform}/{platform.machine()}",
        **builder,
    }


@blp.route("/healthz")
def healthz():
    """Live: the process answers (the body is the version, as Dispatch's). Whether it
    can serve is ``/readyz``'s question."""
    return version()


@blp.route("/readyz")
def readyz():
    """Ready: the store and the broker answer. 503 with ``problems`` naming what is
    wrong otherwise."""
    return observability.readiness()


@blp.route("/metrics")
def metrics():
    """Prometheus metrics of this process group (text exposition format)."""
    return observability.metrics_response()


@blp.route("/v1/version")
def get_version():
    """The server's version."""
    return version()
