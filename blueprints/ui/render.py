"""What every page's template gets (who, where, the navigation), filters for entity
fields, and error pages (an HTML page, where the REST API answers JSON)."""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

from flask import Blueprint, g, render_template, request
from werkzeug.exceptions import HTTPException

from api.errors import status_of
from engine.errors import DispatchError, Forbidden, Unauthenticated

from . import session as ui_session

log = logging.getLogger("dispatch.ui")

#: the navigation: (endpoint, label)
NAVIGATION = (
    ("ui.overview.index", "Overview"),
    ("ui.functions.index", "Functions"),
    ("ui.runs.index", "Runs"),
    ("ui.workflows.index", "Workflows"),
    ("ui.images.index", "Images"),
    ("ui.secrets.index", "Secrets"),
    ("ui.events.index", "Events"),
    ("ui.apis.index", "APIs"),
)


def when(value: Any) -> str:
    """Unix seconds as ``2026-12-06 04:10:02 UTC``."""
    if not isinstance(value, (int, float)) or value <= 0:
        return "—"
    moment = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    """Any JSON value, indented (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "—"
    return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def tags_text(tags: Any) -> str:
    return ", ".join(f"{t.get('key')}={t.get('value')}" for t in tags or () if isinstance(t, dict))


def register_filters(ui: Blueprint) -> None:
    ui.add_app_template_filter(when, "when")
    ui.add_app_template_filter(pretty, "pretty")
    ui.add_app_template_filter(ms, "ms")
    ui.add_app_template_filter(tags_text, "tags_text")

    @ui.context_processor
    def shared():
        who = g.get("ui_principal")
        orgs: list[str] = []
        if who is not None:
            try:
                orgs = ui_session.visible_orgs()
            except DispatchError:
                orgs = [g.ui_org]
        return {"navigation": NAVIGATION, "who": who, "ui_org": g.get("ui_org"),
                "orgs": orgs, "here": request.full_path.rstrip("?")}


def page_error(status: int, title: str, message: str):
    return render_template("ui/error.html", status=status, title=title,
                           message=message), status


def register_errors(ui: Blueprint) -> None:
    @ui.errorhandler(Forbidden)
    def not_allowed(exc: Forbidden):
        return page_error(403, "Not allowed", exc.message)

    @ui.errorhandler(Unauthenticated)
    def unauthenticated(exc: Unauthenticated):
        return page_error(401, "Not signed in", exc.message)

    @ui.errorhandler(DispatchError)
    def dispatch_error(exc: DispatchError):
        status = status_of(exc)
        if status >= 500:
            log.error("ui.error %s: %s", type(exc).__name__, exc.message)
        titles = {400: "Bad input", 404: "Not found", 409: "Conflict", 413: "Too large",
                  503: "Unavailable"}
        return page_error(status, titles.get(status, "Error"), exc.message)

    @ui.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 403:
            return page_error(403, "Not allowed", exc.description or "not allowed")
        return page_error(exc.code or 500, exc.name, exc.description or exc.name)
