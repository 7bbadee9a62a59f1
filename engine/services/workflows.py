"""Workflows: create, read, update and delete workflow definitions (Serverless Workflow
DSL 1.0 documents), checked by :func:`engine.workflows.definition.load` on the way in.

A workflow is ``READY`` as soon as its definition is checked: there is nothing to build.
A definition that calls a function that does not exist is accepted (the function may be
created later); the call faults at run time, naming the function.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import entities as E
from ..errors import InvalidInput
from ..names import validate_name
from ..store import Store
from ..workflows.definition import Workflow, load
from .workflow_triggers import check_schedule

log = logging.getLogger("dispatch.workflows")

#: the fields a client sets; everything else is the server's
SPEC_FIELDS = ("definition", "tags")


def check_definition(definition: Any) -> Workflow:
    """The checked workflow of ``definition``; InvalidInput whose message starts with the
    JSON path of the problem."""
    if not isinstance(definition, dict):
        raise InvalidInput("definition is required: the workflow document as a JSON object")
    workflow = load(definition)
    check_schedule(definition.get("schedule"))
    return workflow


class WorkflowService:
    """The workflows of each organization (``/dispatch/workflow/<org>/<name>``)."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, org: str, spec: dict[str, Any]) -> E.Entity:
        name = validate_name(spec.get("name"))
        workflow = check_definition(spec.get("definition"))
        entity = E.new(E.WORKFLOW, org, name, status=E.READY, definition=workflow.document,
                       tags=list(spec.get("tags") or []), **_summary(workflow))
        entity = self.store.add(entity)
        log.info("workflow.created key=%s", E.key_of(entity))
        return entity

    def get(self, org: str, name: str) -> E.Entity:
        return self.store.get(E.WORKFLOW, org, name)

    def list(self, org: str, tags: dict[str, str] | None = None) -> list[E.Entity]:
        return self.store.list(E.WORKFLOW, org, tags=tags)

    def update(self, org: str, name: str, spec: dict[str, Any]) -> E.Entity:
        """Replace the definition (and tags). Executions already started keep the
        definition they started with (they hold a snapshot)."""
        if spec.get("name") not in (None, name):
            raise InvalidInput(f"name {spec.get('name')!r} does not match the path's {name!r}")
        workflow = check_definition(spec.get("definition"))

        def change(current: E.Entity) -> E.Entity:
            current.update(definition=workflow.document, status=E.READY, reason=[],
                           **_summary(workflow))
            if "tags" in spec:
                current["tags"] = list(spec.get("tags") or [])
            current["definitionRevision"] = current.get("definitionRevision", 1) + 1
            return current

        entity = self.store.modify(E.WORKFLOW, org, name, change)
        log.info("workflow.updated key=%s", E.key_of(entity))
        return entity

    def delete(self, org: str, name: str) -> E.Entity:
        """Remove the workflow. Its executions are kept until their retention ends; those
        still running finish on their snapshot of the definition."""
        entity = self.store.get(E.WORKFLOW, org, name)
        self.store.delete(E.WORKFLOW, org, name)
        log.info("workflow.deleted key=%s", E.key_of(entity))
        return dict(entity, status=E.DELETING)

    def loaded(self, entity: E.Entity) -> Workflow:
        """The checked workflow of a stored entity (checked again: cheap, and the stored
        document may predate a change of what is supported)."""
        return load(entity["definition"])


def _summary(workflow: Workflow) -> dict[str, Any]:
    """Fields shown beside the definition: the document's own name, version, schedule."""
    doc = workflow.document.get("document") or {}
    return {"document": {k: doc.get(k) for k in ("dsl", "namespace", "name", "version")},
            "schedule": workflow.document.get("schedule")}
