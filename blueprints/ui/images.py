"""``/ui/images``: images and base images with their status and build log."""

from __future__ import annotations

from flask import Blueprint, render_template

from .session import allow, may, org, system

bp = Blueprint("images", __name__, url_prefix="/images")


@bp.route("/")
def index():
    allow("image")
    base_images = system().base_images.list(org()) if may("baseimage") else None
    return render_template("ui/images.html", images=system().images.list(org()),
                           base_images=base_images, builtin=sorted(system().catalog.builtin))


@bp.route("/<name>")
def show(name: str):
    allow("image")
    image = system().images.get(org(), name)
    return render_template("ui/image.html", image=image, kind="Image",
                           users=system().images.functions_on(org(), name))


@bp.route("/base/<name>")
def show_base(name: str):
    allow("baseimage")
    image = system().base_images.get(org(), name)
    return render_template("ui/image.html", image=image, kind="Base image",
                           users=system().base_images.images_on(org(), name))
