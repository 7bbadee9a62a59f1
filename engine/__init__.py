"""Dispatch's domain: entities, the store, services, drivers and runtimes.

Nothing in this package imports Flask or Dramatiq: ``api/`` and ``tasks/`` plug the
real job queue and HTTP surface into the ports defined here.
"""

__version__ = "0.2.0"
