"""Who served this request: the fields every response carries."""

from __future__ import annotations

import os
import sys
import threading


def current_greenlet_id() -> int | None:
    """The greenlet's id when gevent runs this process, else None.

    Only asked when gevent is already imported: importing it here would change
    nothing about the worker, but would cost every non-gevent worker an import.
    """
    if "gevent" not in sys.modules:
        return None
    import gevent

    current = gevent.getcurrent()
    # The main greenlet of a thread is not a request greenlet.
    return None if current.parent is None else id(current)


def served_by(settings) -> dict:
    return {
        "pid": os.getpid(),
        # The OS thread: threading.get_ident() is the greenlet under patched gevent; get_native_id() is not.
        "tid": threading.get_native_id(),
        "greenlet": current_greenlet_id(),
        "worker_class": settings.worker_class,
        "instance": settings.instance,
    }
