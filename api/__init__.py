"""The HTTP surface: the Flask app factory, error mapping and the embedded server."""

from .app import create_app

__all__ = ["create_app"]
