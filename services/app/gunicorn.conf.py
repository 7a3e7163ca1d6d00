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
# PRELOAD=1: the master imports the app (labapp.wsgi creates it) and forks the workers from it.
preload_app = os.environ.get("PRELOAD", "0") == "1"
# DIRTY_WORKERS>0: the master also forks gunicorn's dirty arbiter, which holds gunicorn.dirty.stash (the
# gunicorn-stash strategy); gunicorn starts it only when a dirty app is named too. The one named is gunicorn's
# own base class, which serves nothing: the master imports every dirty app's module (to read its `workers`)
# before it forks, and a module of the app imported there would make its threading.local and Lock before
# a gevent worker patches them (measured: iso-thread-local leaked 277 of 300 under gevent-x1).
dirty_workers = int(os.environ.get("DIRTY_WORKERS", "0"))
dirty_apps = ["gunicorn.dirty:DirtyApp"] if dirty_workers else []
# gunicorn keeps the dirty arbiter's pid in <tmp>/gunicorn-dirty-<proc_name>.pid and, starting, kills the
# process that file names: every master of the machine needs a name of its own (the lab runs several).
proc_name = "worker-lab-{}-{}".format(os.environ.get("LAB_INSTANCE", "i1"), bind.rpartition(":")[2])
graceful_timeout = 5
keepalive = 5
# A control socket under ~/.gunicorn would outlive the run and collide between runs.
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "warning")


def on_dirty_starting(arbiter):
    """In the dirty arbiter, as it starts: say which of the master's children it is (LAB_DIRTY_PIDFILE), so
    the lab's faults never take it for an HTTP worker."""
    path = os.environ.get("LAB_DIRTY_PIDFILE")
    if path:
        try:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
        except OSError as exc:  # never let the lab's note stop the arbiter
            arbiter.log.warning("LAB_DIRTY_PIDFILE %s: %s", path, exc)


def post_worker_init(worker):
    """In each HTTP worker, just before it starts accepting: say so (LAB_READY_DIR/ready.<pid>). The lab starts
    the load once every worker can take a connection; a worker still booting when the first burst of
    connections comes in gets none of them, and through nginx's kept-alive connections may serve nothing for a
    whole cell (CI: gthread-2x8-preload, two clean cells judged inconclusive, served by 1 of 2 workers)."""
    folder = os.environ.get("LAB_READY_DIR")
    if folder:
        try:
            with open(os.path.join(folder, f"ready.{os.getpid()}"), "w"):
                pass
        except OSError as exc:  # never let the lab's note stop a worker
            worker.log.warning("LAB_READY_DIR %s: %s", folder, exc)
