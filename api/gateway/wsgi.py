"""The gateway as its own process: ``gunicorn 'api.gateway.wsgi:app'`` (see the Procfile).

It reads APIs from the store (watch-fed), starts runs on the broker ``DISPATCH_BROKER``
names and waits for them on the store, like the ``api`` process; it serves no ``/v1``.
"""

import logging

from engine.settings import Settings
from tasks.actors import assemble
from tasks.broker import make_broker

from .app import create_gateway_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
settings = Settings.from_env()
system = assemble(settings, make_broker(settings.broker_url))
# built now, not by concurrent first requests: bearer APIs verify tokens with it
system.identity
app = create_gateway_app(system)
