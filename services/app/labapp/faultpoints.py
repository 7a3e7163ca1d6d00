"""Fault points: places where the fault runner (``workerlab faults``) can hold a request still.

Inert unless ``LAB_FAULT_POINTS`` names a folder (only the fault runner sets it). A point
is armed by creating ``<folder>/<point>.arm``; the first request that reaches the point
claims it (an atomic rename, so exactly one request wins), writes its pid to
``<point>.pid`` and sleeps, so the runner can ``kill -9`` that worker at a known place:
inside an open SQLite write transaction (``sql-in-transaction``), or after an increment was
written and before its answer (``incr-answering``). Nothing a client sends can arm a point.

``served()`` notes, once per process, that it answered an increment (``<folder>/served.<pid>``): after a
worker kill the runner keeps the load going until the replacement has served.
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


_served_pid: int | None = None


def served() -> None:
    """Note that this process answers an increment: ``<folder>/served.<pid>``, written once per process."""
    global _served_pid
    folder = os.environ.get("LAB_FAULT_POINTS")
    if not folder or _served_pid == os.getpid():  # a forked worker is a new pid: it notes its own
        return
    _served_pid = os.getpid()
    with open(os.path.join(folder, f"served.{_served_pid}"), "w"):
        pass
