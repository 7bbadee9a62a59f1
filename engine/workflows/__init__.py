"""Workflows: the CNCF Serverless Workflow DSL 1.0 (``dsl: '1.0.x'``) on Dispatch.

- :mod:`engine.workflows.definition` loads and checks a workflow document (``load``)
  against the official schema (shipped in ``schema/``) and :mod:`~.subset`, what
  Dispatch supports; :mod:`~.structure` knows the shape of task lists.
- :mod:`engine.workflows.expressions` evaluates runtime expressions (jq, ``${ … }``).
- :mod:`engine.workflows.interpreter` replays an execution deterministically over the
  recorded results of its activities (``interpret``); the task kinds are in
  :mod:`~.tasks` (flow and data) and :mod:`~.calls` (those asking the host for work).
- :mod:`~.problems` (the spec's error types), :mod:`~.durations`, :mod:`~.yaml12`
  (YAML with 1.2 booleans, for documents with ``schedule.on``).

This package is pure: it performs no I/O. The host (``engine/services/executions.py``)
performs the activities the interpreter asks for and records their results.
"""
