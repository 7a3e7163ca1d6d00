"""The same global with a threading.Lock around read-modify-write.

Correct inside one process for threads, and for greenlets when gevent has
patched threading before the lock was made. Under gevent *without* patching - or
patching only after the module was imported (gunicorn --preload) - the lock is a
real one, and a greenlet that yields while holding it blocks every other greenlet
of its thread on acquire: a deadlock. The acquire has a timeout so that shows up as 503 errors instead of a
hung worker.
"""

from __future__ import annotations

import threading

from ..errors import LockTimeout
from ..race import real_lock_in_greenlet
from .base import CounterStrategy

LOCK_TIMEOUT_S = 5.0
# Waiting on a real lock stalls every greenlet of the thread, so give up fast there.
LOCK_TIMEOUT_UNPATCHED_S = 0.1


class LockedGlobal(CounterStrategy):
    values: dict[str, int] = {}
    lock = threading.Lock()

    def incr(self, key):
        timeout = LOCK_TIMEOUT_UNPATCHED_S if real_lock_in_greenlet(self.lock) else LOCK_TIMEOUT_S
        if not self.lock.acquire(timeout=timeout):
            raise LockTimeout(f"lock not acquired in {timeout}s (a real lock held by a yielding greenlet deadlocks)")
        try:
            value = self.values.get(key, 0)
            self.window()
            self.values[key] = value + 1
            return value + 1
        finally:
            self.lock.release()

    def read(self, key):
        return self.values.get(key, 0)


STRATEGIES = [
    LockedGlobal("locked-global", "counter", "module global guarded by threading.Lock", question=2,
        lives="process", updates="locked")
]
