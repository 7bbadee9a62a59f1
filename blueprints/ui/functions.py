"""``/ui/functions``: list, create (editor or upload), read, update, delete and invoke."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from engine import entities as E
from engine.errors import InvalidInput, NotFound
from engine.names import NAME_MAX, NAME_MESSAGE, is_name
from engine.services.functions import serving_version
from engine.steps.validation import problem

from . import forms
from .session import allow, may, org, system

bp = Blueprint("functions", __name__, url_prefix="/functions")

MAX_RECENT_RUNS = 10


def _images() -> list[str]:
    known = set(system().catalog.builtin)
    known.update(i["name"] for i in system().images.list(org()) if i["status"] != E.DELETING)
    return sorted(known)


def _language(image: str) -> str:
    try:
        return system().catalog.resolve(org(), image).language
    except InvalidInput:
        return "python3"


@bp.route("/")
def index():
    allow("function")
    return render_template("ui/functions.html", functions=system().functions.list(org()),
                           may_create=may("function", "create"))


def _form_values(fn: dict[str, Any] | None) -> dict[str, Any]:
    if fn is None:
        return {"name": "", "image": "python3", "handler": "hello.handle", "code": "",
                "schema_in": "", "schema_out": "", "secrets": "", "timeout": "",
                "concurrency": "", "network": False, "tags": ""}
    schema = fn.get("schema") or {}
    values = {
        "name": fn["name"], "image": fn.get("image"), "handler": fn.get("handler"),
        "code": "",
        "schema_in": forms_pretty(schema.get("in")), "schema_out": forms_pretty(schema.get("out")),
        "secrets": ", ".join(fn.get("secrets") or []), "timeout": fn.get("timeout") or "",
        "concurrency": fn.get("concurrency") or "", "network": bool(fn.get("network")),
        "tags": forms.tags_text(fn.get("tags")),
    }
    source = _current_source(fn)
    if source is not None:
        values["code"] = source[1]
    return values


def forms_pretty(value: Any) -> str:
    return "" if value is None else json.dumps(value, indent=2)


def versions_of(fn: dict[str, Any]) -> list[dict[str, Any]]:
    """The function's versions, newest first: the current one (building, serving or
    failed) and the one it replaces while an update builds or after it failed."""
    serving = serving_version(fn)
    serving_id = serving["faasId"] if serving else None
    versions = [{"faasId": fn["faasId"], "status": fn["status"], "image": fn.get("image"),
                 "handler": fn.get("handler"), "serving": fn["faasId"] == serving_id,
                 "reason": fn.get("reason") or []}]
    previous = fn.get("previous")
    if previous:
        versions.append({"faasId": previous.get("faasId"), "status": "previous",
                         "image": previous.get("image"), "handler": previous.get("handler"),
                         "serving": previous.get("faasId") == serving_id, "reason": []})
    return versions


def _current_source(fn: dict[str, Any]) -> tuple[str, str] | None:
    name = (fn.get("sourceURL") or "").removeprefix("es://")
    try:
        data = system().store.get(E.SOURCE, org(), name).get("data")
    except NotFound:
        return None
    return forms.single_file(data) if data else None


def _spec(form, files, fn: dict[str, Any] | None) -> dict[str, Any]:
    """A function spec from the editor's form; FieldError naming the field at fault."""
    name = fn["name"] if fn else (form.get("name") or "").strip()
    image = (form.get("image") or "").strip()
    handler = (form.get("handler") or "").strip()
    if not name:
        raise forms.FieldError("name", "name is required")
    if not is_name(name):
        raise forms.FieldError("name", f"name {name!r} {NAME_MESSAGE} (at most {NAME_MAX} "
                                       "characters)")
    if not handler:
        raise forms.FieldError("handler", "handler is required")
    spec: dict[str, Any] = {
        "name": name, "image": image, "handler": handler,
        "schema": {"in": forms.json_field(form, "schema_in", "Input schema"),
                   "out": forms.json_field(form, "schema_out", "Output schema")},
        "secrets": forms.names_field(form, "secrets"),
        "timeout": forms.int_field(form, "timeout", "Timeout"),
        "concurrency": forms.int_field(form, "concurrency", "Concurrency"),
        "network": form.get("network") == "on",
        "tags": forms.tags_field(form),
    }
    upload = files.get("upload")
    code = form.get("code") or ""
    if upload is not None and upload.filename:
        spec["source"] = forms.pack_upload(upload.filename, upload.read())
    elif code.strip():
        spec["source"] = forms.pack_text(forms.source_file_name(handler, _language(image)),
                                         code.replace("\r\n", "\n"))
    elif fn is not None:
        current = system().store.get(E.SOURCE, org(), fn["sourceURL"].removeprefix("es://"))
        spec["source"] = current["data"]
    else:
        raise forms.FieldError("code", "write the function's code or upload a file")
    return spec


FIELD_OF_MESSAGE = (("image", "image"), ("handler", "handler"), ("schema.in", "schema_in"),
                    ("schema.out", "schema_out"), ("secrets", "secrets"),
                    ("timeout", "timeout"), ("concurrency", "concurrency"),
                    ("source", "code"), ("name", "name"))


def _field_of(exc: InvalidInput) -> str:
    """The form field an engine message is about (they start with the field's name)."""
    if isinstance(exc, forms.FieldError):
        return exc.field
    for prefix, field in FIELD_OF_MESSAGE:
        if exc.message.startswith(prefix) or f" {prefix} " in exc.message[:40]:
            return field
    return "form"


@bp.route("/new", methods=["GET", "POST"])
def create():
    allow("function", "create")
    values = _form_values(None)
    if request.method == "POST":
        values.update({k: request.form.get(k, "") for k in values if k != "network"},
                      network=request.form.get("network") == "on")
        try:
            fn = system().functions.create(org(), _spec(request.form, request.files, None))
        except InvalidInput as exc:
            return render_template("ui/function_form.html", fn=None, values=values,
                                   images=_images(), errors={_field_of(exc): exc.message}), 400
        return redirect(url_for(".show", name=fn["name"]), 303)
    return render_template("ui/function_form.html", fn=None, values=values, images=_images(),
                           errors={})


@bp.route("/<name>/edit", methods=["GET", "POST"])
def update(name: str):
    allow("function", "update")
    fn = system().functions.get(org(), name)
    values = _form_values(fn)
    if request.method == "POST":
        values.update({k: request.form.get(k, "") for k in values if k not in ("network", "name")},
                      network=request.form.get("network") == "on")
        try:
            system().functions.update(org(), name, _spec(request.form, request.files, fn))
        except InvalidInput as exc:
            return render_template("ui/function_form.html", fn=fn, values=values,
                                   images=_images(), errors={_field_of(exc): exc.message}), 400
        return redirect(url_for(".show", name=name), 303)
    return render_template("ui/function_form.html", fn=fn, values=values, images=_images(),
                           errors={})


def _show(name: str, *, invoke_input: str = "", invoke_error: str | None = None,
          status: int = 200):
    allow("function")
    fn = system().functions.get(org(), name)
    runs = system().runs.list(org(), name, limit=MAX_RECENT_RUNS) if may("run") else None
    return render_template("ui/function.html", fn=fn, versions=versions_of(fn), runs=runs,
                           schema_in=(fn.get("schema") or {}).get("in"),
                           invoke_input=invoke_input, invoke_error=invoke_error,
                           may_run=may("run", "create"), may_update=may("function", "update"),
                           may_delete=may("function", "delete")), status


@bp.route("/<name>")
def show(name: str):
    return _show(name)


@bp.route("/<name>/invoke", methods=["POST"])
def invoke(name: str):
    """Run the function with the form's JSON input, checked here against ``schema.in``
    as the browser checked it (nothing starts on bad input), and show the run."""
    allow("run", "create")
    fn = system().functions.get(org(), name)
    text = request.form.get("input", "")
    try:
        payload = forms.json_field(request.form, "input", "Input", default=None)
    except forms.FieldError as exc:
        return _show(name, invoke_input=text, invoke_error=exc.message, status=400)
    why = problem((fn.get("schema") or {}).get("in"), payload)
    if why is not None:
        return _show(name, invoke_input=text,
                     invoke_error=f"Input invalid against schema: {why}", status=400)
    runs = system().runs
    run = runs.start(org(), name, {"input": payload, "blocking": True,
                                   "tags": forms.tags_field(request.form)})
    run = runs.wait(run)
    return redirect(url_for("ui.runs.show", name=run["name"]), 303)


@bp.route("/<name>/delete", methods=["GET", "POST"])
def delete(name: str):
    allow("function", "delete")
    fn = system().functions.get(org(), name)
    if request.method == "POST":
        system().functions.delete(org(), name)
        return redirect(url_for(".index"), 303)
    return render_template("ui/confirm_delete.html", what="function", name=fn["name"],
                           consequence="Its runs are deleted with it; the function stops "
                                       "answering at once.",
                           action=url_for(".delete", name=name),
                           back=url_for(".show", name=name))
