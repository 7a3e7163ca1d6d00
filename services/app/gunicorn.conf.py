"""gunicorn settings, read from the scenario's environment.

The same file serves native runs (the runner sets the environment) and the
compose stacks (the scenario's env file does). Names follow the scenario files
in compose/scenarios/.
"""

import os

_worker_classes = {
    "sync": "sync",
    "gthread": "gthread",
    "gevent": "gevent",
    "gevent-unpatched": "labapp.workers.UnpatchedGeventWorker",
}

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = _worker_classes[os.environ.get("WORKER_CLASS", "sync")]
workers = int(os.environ.get("WORKERS", "1"))
threads = int(os.environ.get("THREADS", "1"))  # only the gthread worker uses it (gevent ignores it)
# PRELOAD=1: import the app in the master, then fork. The gevent worker monkey-patches after the fork.
preload_app = os.environ.get("PRELOAD", "0") == "1"
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "1000"))
max_requests = int(os.environ.get("MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("MAX_REQUESTS_JITTER", "0"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 5
keepalive = 5
# A control socket under ~/.gunicorn would outlive the run and collide between runs.
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "warning")
