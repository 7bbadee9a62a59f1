"""``/ui/events``: emit an event, recent events, subscriptions (create, delete) and event
drivers, with the next fire times of cron drivers."""

from __future__ import annotations

import time
import uuid

from flask import Blueprint, redirect, render_template, request, url_for

from engine.cloudevents import normalize
from engine.errors import InvalidInput
from engine.scheduler.cron import config_map, due_times, parse_config

from . import forms
from .session import allow, may, org, system

bp = Blueprint("events", __name__, url_prefix="/events")

RECENT_EVENTS = 20
NEXT_FIRES = 3
#: how far ahead next fire times are looked for
HORIZON_SECONDS = 366 * 86400


def next_fires(driver: dict, now: float) -> list[float]:
    """The next :data:`NEXT_FIRES` times a cron driver fires (empty for other types or a
    config that does not parse)."""
    if driver.get("type") != "cron":
        return []
    try:
        config = parse_config(config_map(driver))
    except InvalidInput:
        return []
    times, _ = due_times(config["schedule"], config["timezone"], now, now + HORIZON_SECONDS,
                         limit=NEXT_FIRES)
    return times


def _page(errors: dict | None = None, values: dict | None = None, status: int = 200,
          emitted: dict | None = None):
    allow("event")
    now = time.time()
    subscriptions = system().subscriptions.list(org()) if may("subscription") else None
    drivers = None
    if may("driver"):
        drivers = [{"name": d["name"], "type": d.get("type"), "status": d.get("status"),
                    "reason": d.get("reason") or [], "config": d.get("config") or [],
                    "next": next_fires(d, now)}
                   for d in system().event_drivers.list(org())]
    return render_template(
        "ui/events.html", events=system().events.list(org(), limit=RECENT_EVENTS),
        subscriptions=subscriptions, drivers=drivers, errors=errors or {},
        values=values or {"type": "", "source": "dispatch-ui", "data": "", "eventType": "",
                          "function": ""},
        functions=[f["name"] for f in system().functions.list(org())],
        may_emit=may("event", "create"), may_subscribe=may("subscription", "create"),
        may_unsubscribe=may("subscription", "delete"), emitted=emitted), status


@bp.route("/")
def index():
    return _page()


@bp.route("/emit", methods=["POST"])
def emit():
    allow("event", "create")
    values = {k: request.form.get(k, "") for k in ("type", "source", "data")}
    try:
        data = forms.json_field(request.form, "data", "Data")
        if not values["type"].strip():
            raise forms.FieldError("type", "type is required")
        event = normalize({"specversion": "1.0", "id": str(uuid.uuid4()),
                           "source": values["source"].strip() or "dispatch-ui",
                           "type": values["type"].strip(),
                           "datacontenttype": "application/json", "data": data})
    except InvalidInput as exc:
        field = getattr(exc, "field", "source" if exc.message.startswith("source") else "type")
        return _page({field: exc.message}, values, 400)
    record = system().events.emit(org(), event)
    return _page(values=values, emitted=record)


@bp.route("/subscriptions", methods=["POST"])
def subscribe():
    allow("subscription", "create")
    values = {k: request.form.get(k, "") for k in ("eventType", "function")}
    try:
        system().subscriptions.create(org(), {"eventType": values["eventType"].strip(),
                                              "function": values["function"].strip()})
    except InvalidInput as exc:
        field = "function" if "function" in exc.message[:30] else "eventType"
        return _page({field: exc.message}, values, 400)
    return redirect(url_for(".index"), 303)


@bp.route("/subscriptions/<name>/delete", methods=["GET", "POST"])
def unsubscribe(name: str):
    allow("subscription", "delete")
    if request.method == "POST":
        system().subscriptions.delete(org(), name)
        return redirect(url_for(".index"), 303)
    return render_template("ui/confirm_delete.html", what="subscription", name=name,
                           consequence="Its function no longer runs on these events.",
                           action=url_for(".unsubscribe", name=name), back=url_for(".index"))
