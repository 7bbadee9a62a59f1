"""Every marshmallow schema the API's blueprints define, for tests that go over them all."""

from __future__ import annotations

import importlib
import pkgutil

from marshmallow import Schema

import blueprints


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def api_schemas(base: type[Schema] = Schema) -> list[type[Schema]]:
    """The subclasses of ``base`` defined under ``blueprints`` (every module imported),
    sorted by their dotted names."""
    for module in pkgutil.walk_packages(blueprints.__path__, "blueprints."):
        importlib.import_module(module.name)
    return sorted({cls for cls in _subclasses(base) if cls.__module__.startswith("blueprints.")},
                  key=lambda c: f"{c.__module__}.{c.__name__}")
