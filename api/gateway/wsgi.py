"""The gateway as its own process: ``gunicorn 'api.gateway.wsgi:app'`` (see the Procfile).

It reads APIs from the store (watch-fed), starts runs on the broker ``DISPATCH_BROKER``
names and waits for them on the store, like the ``api`` process; it serves no ``/v1``.
Until its engine is assembled it serves only ``/healthz``, ``/readyz`` and ``/metrics``.
"""

from tasks.process import Process

from ..observability import ProcessApp
from .app import create_gateway_app


def _build(system, health):
    # built now, not by concurrent first requests: bearer APIs verify tokens with it
    system.identity
    return create_gateway_app(system, health)


process = Process("gateway")
app = ProcessApp(process, _build, "gateway")
