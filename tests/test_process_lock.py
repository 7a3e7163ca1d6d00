"""race.ProcessLock: the lab's own locks that a greenlet may hold across a yield (the PostgreSQL pool being built,
SQLite's writers queue) must not be the thread's real lock under ``--preload``, where the app - and every lock
it makes at import - exists before gevent patches the worker. Measured in a child process that does what
gunicorn's gevent worker does after a preload: import first, patch second, then serve greenlets."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[1] / "services" / "app"
# A deadlock never ends; a child that has not finished after this long is stuck, not slow.
STUCK_AFTER_S = 10

CHILD = textwrap.dedent("""
    import sys, threading
    from labapp.race import ProcessLock          # imported before the patch, as under --preload
    lock = ProcessLock() if sys.argv[1] == "process-lock" else threading.Lock()
    from gevent import monkey
    monkey.patch_all()
    import gevent

    def holder_then_waiter(name):
        with lock:
            gevent.sleep(0.05)                   # a yield while holding it: a pool connecting, a fault point
        print(name, flush=True)

    gevent.joinall([gevent.spawn(holder_then_waiter, n) for n in ("first", "second", "third")])
    print("done", flush=True)
""")


def run_child(kind: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run([sys.executable, "-c", CHILD, kind], cwd=APP_DIR, capture_output=True, text=True,
                              timeout=STUCK_AFTER_S)
    except subprocess.TimeoutExpired:
        return None


def test_a_process_lock_made_before_gevent_patched_lets_every_greenlet_through():
    done = run_child("process-lock")
    assert done is not None, f"greenlets contending for a ProcessLock were still stuck after {STUCK_AFTER_S} s"
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["first", "second", "third", "done"]


def test_a_threading_lock_made_before_gevent_patched_stalls_the_worker():
    """The trap ProcessLock avoids, shown: the second greenlet blocks the thread on the real lock, and the
    first, which holds it, never runs again."""
    assert run_child("threading-lock") is None
