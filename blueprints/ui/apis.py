"""``/ui/apis``: the gateway's APIs and their routes, with a try-it form per API."""

from __future__ import annotations

from flask import Blueprint, render_template

from .session import allow, org, system

bp = Blueprint("apis", __name__, url_prefix="/apis")


@bp.route("/")
def index():
    allow("api")
    apis = system().apis.list(org())
    return render_template("ui/apis.html", apis=apis)
