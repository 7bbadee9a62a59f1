"""Loading a workflow document (skeleton: the interface is final)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Workflow:
    """A checked workflow definition."""

    document: dict

    @property
    def name(self) -> str:
        return self.document["document"]["name"]

    @property
    def namespace(self) -> str:
        return self.document["document"]["namespace"]

    @property
    def version(self) -> str:
        return self.document["document"]["version"]


def load(document: dict) -> Workflow:
    """Check ``document`` and return the :class:`Workflow`; raises ``InvalidInput``."""
    return Workflow(document)
