"""The distributed worker: ``dramatiq tasks.worker`` (see the Procfile).

Importing this module reads the settings, connects the broker named by
``DISPATCH_BROKER`` and assembles the engine, whose actors are then declared on the
broker, as the dramatiq CLI expects. If the engine cannot be assembled (a missing key,
an unreachable etcd) no actor is declared, so this worker consumes nothing; it says why
on ``/readyz`` (``DISPATCH_HEALTH_PORT``) and tries again while the cause may pass.
"""

from __future__ import annotations

import dramatiq

from .process import Process

process = Process("worker")
broker = process.broker
dramatiq.set_broker(broker)
process.health.add("actors", process.check_actors)
process.serve_health()
system = process.system
