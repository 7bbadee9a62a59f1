"""The ``dispatch`` command line: a client of Dispatch's REST API, plus ``dispatch up``.

Layout: ``main`` (the group and its global options), ``config`` (which server to talk to),
``client`` (one method per REST endpoint), ``output`` (tables, JSON, YAML), ``progress``
(waiting for an entity to settle) and ``commands/`` (one module per verb).
"""
