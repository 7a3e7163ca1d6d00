"""The race window: what happens between reading shared state and writing it back.

The GIL hides most races: `x += 1` on a global rarely interleaves unless the
thread gives up the interpreter between the read and the write. Real handlers do
give it up (a database call, a log line that flushes, a template render), so the
lab makes that explicit and configurable:

- ``none``: read and write back to back; races are rare and luck-dependent.
- ``yield``: a cooperative yield. ``time.sleep(0)`` releases the GIL to other
  threads; under gevent it is ``gevent.sleep(0)`` (what a monkey-patched
  ``time.sleep`` is), so greenlets switch too, patched or not.
- ``io``: a real network round trip (redis PING when redis is configured) -
  blocking I/O in an unpatched process, a switch point under patched gevent.
"""

from __future__ import annotations

import os
import sys
import threading
import time

RACE_WINDOWS = ("none", "yield", "io")  # the modes above; LAB_RACE_WINDOW and the runner's --race-window
# A value made on first use (a connection's set-up) races once per process, not once per request: the next
# request must arrive while the first is still making it. Over a network that set-up takes a DNS round trip
# and a handshake - tens of milliseconds, in which the next users' requests (the load starts them 2 ms apart)
# arrive. A bare yield resumes the maker before the worker has even accepted the next request, and a lookup
# in /etc/hosts lasts microseconds: the race would rest on luck.
FIRST_USE_S = 0.05


def in_greenlet() -> bool:
    """True in a greenlet of gevent's hub (a gevent worker's request), patched or not."""
    if "gevent" not in sys.modules:
        return False
    import gevent

    return gevent.getcurrent().parent is not None


def cooperative_sleep(seconds: float) -> None:
    """Sleep without stalling the other greenlets of this thread, patched or not."""
    if in_greenlet():
        import gevent

        gevent.sleep(seconds)
    else:
        time.sleep(seconds)


class RaceWindow:
    def __init__(self, mode: str, redis_client=None):
        self.mode = mode
        self.redis_client = redis_client

    def __call__(self) -> None:
        if self.mode == "none":
            return
        if self.mode == "io" and self.redis_client is not None:
            self.redis_client.ping()
            return
        if in_greenlet():
            import gevent

            gevent.sleep(0)
        else:
            time.sleep(0)

    def first_use(self) -> None:
        """The window of a value being made on first use (see FIRST_USE_S). Under ``yield`` it waits as the
        set-up's network I/O would here: ``time.sleep`` looked up now, so a greenlet switch where gevent has
        patched (the sockets too) and a blocked thread where it has not - an unpatched gevent worker's set-up
        blocks its one thread, and switching there would invent a hang the real code cannot have."""
        if self.mode == "yield":
            time.sleep(FIRST_USE_S)
        else:
            self()


def real_lock_in_greenlet(lock) -> bool:
    """True in a greenlet when ``lock`` is the interpreter's own lock, not gevent's: waiting on it stalls
    every greenlet of the thread. So it is where gevent did not patch threading - and where it patched only
    after the lock was made (an app imported before the worker patched: gunicorn --preload)."""
    return in_greenlet() and not type(lock).__module__.startswith("gevent")


class ProcessLock:
    """A lock made on first use in each process that uses it: after the fork, and after gevent patched the
    worker. One made at import under ``--preload`` is the thread's real lock; a greenlet that holds it across a
    yield (a pool connecting, a fault point) and a second greenlet that then waits on it stall the whole worker
    - no request answered until gunicorn's timeout kills it."""

    def __init__(self):
        self._guard = threading.Lock()  # held only to make the lock, never across a yield
        self._lock: threading.Lock | None = None
        self._pid: int | None = None

    def _of_this_process(self) -> threading.Lock:
        with self._guard:
            if self._pid != os.getpid():
                self._lock, self._pid = threading.Lock(), os.getpid()
            return self._lock

    def __enter__(self) -> ProcessLock:
        self._of_this_process().acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()
