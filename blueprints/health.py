"""``/healthz`` and ``/v1/version``."""

from __future__ import annotations

import platform
import sys

from marshmallow import Schema, fields

from api.context import system
from api.errors import error_response
from engine import __version__

from .common import Blueprint

blp = Blueprint("health", __name__, description="Health and version")


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
@blp.alt_response(503, description="the store does not answer: {code, message}")
def healthz():
    """Healthy when the store answers; the body is the version, as Dispatch's."""
    try:
        system().store.revision()
    except Exception as exc:
        return error_response(503, f"store unavailable: {exc}")
    return version()


@blp.route("/v1/version")
@blp.response(200, VersionSchema)
def get_version():
    """The server's version."""
    return version()
