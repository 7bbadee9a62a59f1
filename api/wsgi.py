"""The distributed API process: ``gunicorn 'api.wsgi:app'`` (see the Procfile).

Until its engine is assembled (settings whole, etcd reachable, the admin bootstrapped)
it answers ``/healthz``, ``/readyz`` (503 naming the problem) and ``/metrics``, and 503
to everything else; see :class:`tasks.process.Process`.
"""

from tasks.process import Process

from .app import create_app
from .auth import bootstrap_distributed
from .observability import ProcessApp

# the admin from DISPATCH_BOOTSTRAP_PUBLIC_KEY_FILE, before the process counts as ready
process = Process("api", prepare=bootstrap_distributed)
app = ProcessApp(process, lambda system, health: create_app(system, health=health), "api")
