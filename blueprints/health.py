"""``/healthz`` and ``/v1/version``."""

from __future__ import annotations

import platform
import sys

from flask_smorest import Blueprint

from api.context import system
from api.errors import error_response
from engine import __version__

blp = Blueprint("health", __name__, description="Health and version")


def version() -> dict:
    return {
        "version": __version__,
        "commit": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": f"{sys.platform}/{platform.machine()}",
    }


@blp.route("/healthz")
def healthz():
    """Healthy when the store answers; the body is the version, as Dispatch's."""
    try:
        system().store.revision()
    except Exception as exc:
        return error_response(503, f"store unavailable: {exc}")
    return version()


@blp.route("/v1/version")
def get_version():
    """The server's version."""
    return version()
