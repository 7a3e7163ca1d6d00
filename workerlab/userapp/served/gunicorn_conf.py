"""gunicorn settings for a user's app: the lab's own (services/app/gunicorn.conf.py, read from the
scenario's environment), with the lab's unpatched gevent worker loaded from its file - the app's venv has
gunicorn and gevent, not the lab's app package."""

import importlib.util
import os
import runpy

_lab = runpy.run_path(os.environ["LAB_GUNICORN_CONF"])
globals().update({k: v for k, v in _lab.items() if not k.startswith("_") and k not in ("os",)})

if os.environ.get("WORKER_CLASS") == "gevent-unpatched":
    _spec = importlib.util.spec_from_file_location("lab_workers", os.environ["LAB_WORKERS_PY"])
    _workers = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_workers)
    worker_class = _workers.UnpatchedGeventWorker
