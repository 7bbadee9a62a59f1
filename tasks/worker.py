"""The distributed worker: ``dramatiq tasks.worker`` (see the Procfile).

Importing this module reads the settings, connects the broker named by
``DISPATCH_BROKER`` and declares the actors on it, as the dramatiq CLI expects.
"""

from __future__ import annotations

import logging

import dramatiq

from engine.settings import Settings

from .actors import assemble
from .broker import make_broker

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

settings = Settings.from_env()
broker = make_broker(settings.broker_url)
dramatiq.set_broker(broker)
system = assemble(settings, broker)
