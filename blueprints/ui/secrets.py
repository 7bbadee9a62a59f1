"""``/ui/secrets``: secret names (values never reach the browser), create and delete."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from engine.errors import InvalidInput

from . import forms
from .session import allow, may, org, system

bp = Blueprint("secrets", __name__, url_prefix="/secrets")


def _page(errors: dict | None = None, values: dict | None = None, status: int = 200):
    allow("secret")
    listed = [{"name": s["name"], "keys": sorted((s.get("secrets") or {}).keys()),
               "createdTime": s.get("createdTime"), "tags": s.get("tags")}
              for s in system().secrets.list(org())]
    return render_template("ui/secrets.html", secrets=listed, errors=errors or {},
                           values=values or {"name": "", "values": ""},
                           may_create=may("secret", "create"),
                           may_delete=may("secret", "delete")), status


@bp.route("/")
def index():
    return _page()


@bp.route("/", methods=["POST"])
def create():
    allow("secret", "create")
    values = {"name": request.form.get("name", ""), "values": ""}
    try:
        data = forms.json_field(request.form, "values", "Values", required=True)
        if not isinstance(data, dict):
            raise forms.FieldError("values", "Values must be a JSON object of names to strings")
        system().secrets.create(org(), {"name": values["name"].strip(), "secrets": data})
    except InvalidInput as exc:
        field = getattr(exc, "field", "name" if "name" in exc.message[:20] else "values")
        return _page({field: exc.message}, values, 400)
    return redirect(url_for(".index"), 303)


@bp.route("/<name>/delete", methods=["GET", "POST"])
def delete(name: str):
    allow("secret", "delete")
    if request.method == "POST":
        system().secrets.delete(org(), name)
        return redirect(url_for(".index"), 303)
    return render_template("ui/confirm_delete.html", what="secret", name=name,
                           consequence="Functions that name it fail to run until it exists "
                                       "again.",
                           action=url_for(".delete", name=name), back=url_for(".index"))
