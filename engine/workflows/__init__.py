"""Workflows: the CNCF Serverless Workflow DSL 1.0 (``dsl: '1.0.x'``) on Dispatch.

- :mod:`engine.workflows.definition` loads and checks a workflow document (``load``).
- :mod:`engine.workflows.expressions` evaluates runtime expressions (jq, ``${ … }``).
- :mod:`engine.workflows.interpreter` replays an execution deterministically over the
  recorded results of its activities (``interpret``).

This package is pure: it performs no I/O. The host (``engine/services/workflows.py``)
performs the activities the interpreter asks for and records their results.
"""
