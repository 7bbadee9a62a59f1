"""gunicorn settings of the api and gateway processes (``gunicorn -c
python:api.gunicorn_conf``, see the Procfile): Prometheus multiprocess files.

With ``PROMETHEUS_MULTIPROC_DIR`` set (a directory for this process group alone), the
master empties it before its workers start, so counters of an earlier run are not
summed in, and drops a worker's live gauges when it exits (prometheus-client's
``mark_process_dead``); its counters stay, so totals never go backwards.
"""

import os
import shutil


def on_starting(server) -> None:
    from engine.observability import metrics

    path = metrics.multiprocess_dir()
    if path and os.path.isdir(path):
        for name in os.listdir(path):
            target = os.path.join(path, name)
            if os.path.isdir(target):
                shutil.rmtree(target, ignore_errors=True)
            else:
                os.unlink(target)


def child_exit(server, worker) -> None:
    from engine.observability import metrics

    metrics.mark_dead(worker.pid)
