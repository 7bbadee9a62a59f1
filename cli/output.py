"""Printing entities and lists: a table by default, or JSON / YAML with ``-o``.

Commands describe a table as a list of :class:`Column`; everything else about rendering
lives here, so that every command prints the same way.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, NamedTuple, Sequence

import click
import yaml
from tabulate import tabulate

TABLE, JSON, YAML = "table", "json", "yaml"


class Column(NamedTuple):
    """One table column: its header and how to get the cell from an entity."""

    header: str
    cell: Callable[[dict[str, Any]], Any]


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    """A cell that is the entity's ``name`` field, blank when missing."""
    return lambda entity: entity.get(name) if entity.get(name) is not None else ""


def timestamp(name: str) -> Callable[[dict[str, Any]], str]:
    """A cell that is the entity's Unix-seconds field ``name``, as Go's ``UnixDate``."""
    return lambda entity: format_time(entity.get(name))


def format_time(seconds: Any) -> str:
    """``Tue Nov 14 10:03:12 UTC 2017`` in local time; blank for a missing or zero time."""
    if not seconds:
        return ""
    return time.strftime("%a %b %e %H:%M:%S %Z %Y", time.localtime(float(seconds)))


def without_values(data: Any) -> Any:
    """Secrets (one or a list) as shown by default: without ``secrets``, their values.

    The field is left out rather than masked, so that a document printed without
    ``--all`` and sent back by an update cannot overwrite the values with a mask.
    """
    if isinstance(data, list):
        return [without_values(item) for item in data]
    return {k: v for k, v in data.items() if k != "secrets"}


def dump(data: Any, fmt: str) -> str:
    """``data`` as JSON (indented like the original CLI's) or YAML."""
    if fmt == YAML:
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip("\n")
    return json.dumps(data, indent=4)


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Rows under upper-case headers, columns split by ``|`` as in Dispatch's tables."""
    return tabulate(
        [[column.cell(row) for column in columns] for row in rows],
        headers=[column.header for column in columns],
        tablefmt="presto",
        disable_numparse=True,  # ids and names must print as sent
    )


def show(data: Any, fmt: str, columns: Sequence[Column]) -> None:
    """Print an entity or a list of entities in format ``fmt``."""
    if fmt == TABLE:
        click.echo(render_table(data if isinstance(data, list) else [data], columns))
    else:
        click.echo(dump(data, fmt))


def show_outcome(entity: Any, fmt: str, message: str) -> None:
    """After a change: ``message`` (e.g. ``Created function: hello``) or the entity."""
    click.echo(message if fmt == TABLE else dump(entity, fmt))


def show_document(data: Any, fmt: str) -> None:
    """Print something that has no table form (a Run): JSON unless YAML was asked for."""
    click.echo(dump(data, YAML if fmt == YAML else JSON))
