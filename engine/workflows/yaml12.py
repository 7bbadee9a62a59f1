"""YAML with YAML 1.2's booleans (only ``true``/``false``), for workflow documents.

PyYAML follows YAML 1.1, where ``on``, ``off``, ``yes`` and ``no`` are booleans: the
DSL's ``schedule: {on: …}`` (and the official schema's own ``on`` property) would be
read as ``{true: …}``.
"""

from __future__ import annotations

import re
from typing import IO, Any

import yaml


class Loader(yaml.SafeLoader):
    """:class:`yaml.SafeLoader` resolving only true/false as booleans."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                             re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                             list("tTfF"))


def load(stream: str | IO[str]) -> Any:
    """One YAML document."""
    return yaml.load(stream, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
