"""Fault points: places where the fault runner (``workerlab faults``) can hold a request still.

Inert unless ``LAB_FAULT_POINTS`` names a folder (only the fault runner sets it). A point
is armed by creating ``<folder>/<point>.arm``; the first request that reaches the point
claims it (an atomic rename, so exactly one request wins), writes its pid to
``<point>.pid`` and sleeps, so the runner can ``kill -9`` that worker at a known place:
inside an open SQLite write transaction (``sql-in-transaction``), or after an increment was
written and before its answer (``incr-answering``). Nothing a client sends can arm a point.
"""

from __future__ import annotations

import os
import time

HOLD_S = 10.0  # the runner kills within milliseconds; past this the request simply goes on


def reach(point: str) -> bool:
    """Hold here if ``point`` is armed; True when this request was the one held."""
    folder = os.environ.get("LAB_FAULT_POINTS")
    if not folder:
        return False
    base = os.path.join(folder, point)
    try:
        os.rename(f"{base}.arm", f"{base}.held")
    except OSError:  # not armed (the common case), or another request claimed it first
        return False
    tmp = f"{base}.pid.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(str(os.getpid()))
    os.replace(tmp, f"{base}.pid")
    time.sleep(HOLD_S)
    return True
