"""``/healthz`` (live), ``/readyz`` (ready), ``/metrics`` and ``/v1/version``."""

from __future__ import annotations

import platform
import sys

from marshmallow import Schema, fields

from api import observability
from api.context import system
from engine import __version__

from .common import Blueprint

blp = Blueprint("health", __name__, description="Health, readiness, metrics and version")


class VersionSchema(Schema):
    """Dispatch's ``Version``."""

    class Meta:
        ordered = True

    version = fields.String()
    commit = fields.String()
    buildDate = fields.String()
    goVersion = fields.String()
    compiler = fields.String()
    platform = fields.String()
    builder = fields.String(metadata={"description": "local or docker"})
    registry = fields.String(metadata={"description": "the docker builder's registry"})


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
@blp.response(200, VersionSchema)
def healthz():
    """Live: the process answers (the body is the version, as Dispatch's). Whether it
    can serve is ``/readyz``'s question."""
    return version()


@blp.route("/readyz")
@blp.alt_response(200, description="ready: {role, ready, status, problems, checks}")
@blp.alt_response(503, description="not ready: problems names each failing check")
def readyz():
    """Ready: the store and the broker answer. 503 with ``problems`` naming what is
    wrong otherwise."""
    return observability.readiness()


@blp.route("/metrics")
@blp.alt_response(200, description="Prometheus text exposition format")
def metrics():
    """Prometheus metrics of this process group (text exposition format)."""
    return observability.metrics_response()


@blp.route("/v1/version")
@blp.response(200, VersionSchema)
def get_version():
    """The server's version."""
    return version()
