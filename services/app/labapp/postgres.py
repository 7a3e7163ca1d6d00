"""PostgreSQL for the strategies: a psycopg 3 connection pool per process, made by the first request.

Fork-safety: nothing connects at import or in the app factory. The pool is made by the first request a
process serves, and a process that finds a pool another pid made (it was forked after) makes its own: a
connection inherited across a fork would carry two processes' queries on one socket. psycopg itself is
imported by the app factory when a server is configured - in the process that forks (the dev server's
fork per request pays no import, up to a second here), and after gevent patched: gunicorn's gevent
worker patches before it loads the app, and psycopg picks its way of waiting at import (cooperative when
gevent patched ``select``, blocking the thread otherwise).

Every request takes a connection of its own from the pool, in autocommit mode; a strategy opens its own
transaction where it wants one.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

from .errors import LockTimeout, SidecarUnreachable
from .race import ProcessLock, in_greenlet, real_lock_in_greenlet

# The lab's one table in PostgreSQL, made once per process under an advisory lock (two processes running
# CREATE TABLE IF NOT EXISTS at once can both try to create it).
SCHEMA = "CREATE TABLE IF NOT EXISTS counters (key text PRIMARY KEY, n bigint NOT NULL)"
SCHEMA_LOCK_ID = 0x6C6162  # pg_advisory_xact_lock key
# Connections per process: few, as PostgreSQL advises (a few active connections per core of the server;
# this machine has 2), so at most that many transactions of a process run at once and the others wait for
# a connection in turn (the pool serves its waiters first come, first served). Not in an unpatched gevent
# worker: there a waiter blocks its thread and with it the greenlets holding the connections - a deadlock
# until the pool's timeout - so its pool holds as many connections as requests the worker serves at once.
POOL_MAX = 2
POOL_MAX_UNPATCHED = 64
GETCONN_TIMEOUT_S = 5.0  # no connection from the pool by then (the server is down): 503
CONNECT_TIMEOUT_S = 2
# Waiting for a row lock: where psycopg waits by blocking (a gevent worker unpatched, or that patched after the
# app imported psycopg) the waiter blocks its thread, and the holder is a greenlet of that thread that can only
# release it once the waiter gives up - so give up fast there.
LOCK_TIMEOUT_MS = 5000
LOCK_TIMEOUT_UNPATCHED_MS = 100
# Errors that mean the server is not there: no SQLSTATE (the client lost the connection), class 08
# (connection exception), 57P01-57P03 (the server is shutting down or starting).
LOST_STATES = ("08", "57P01", "57P02", "57P03")


def server_lost(exc: BaseException) -> bool:
    """True when ``exc``, a psycopg error, means the server is not there (or the connection to it is gone)."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError) and (exc.sqlstate is None or exc.sqlstate.startswith(LOST_STATES))


def _psycopg_blocks_greenlets() -> bool:
    """True in a greenlet when psycopg waits for the server by blocking the thread. psycopg picks how it waits
    when it is imported: its C wait (``wait_c``) unless gevent had patched ``select`` by then - not in an
    unpatched worker, nor when the app imported it before the worker patched (``--preload``: the factory runs in
    the master). Its Python waits (``wait_poll`` on Linux once patched, ``wait_select``) look ``select`` up at
    each call, gevent's then: they cooperate. (Comparing with ``wait_select`` alone took every patched worker
    for a blocking one and gave it the 100 ms lock timeout: gevent-x4's FOR UPDATE failed a waiter under load.)"""
    import psycopg.waiting

    return in_greenlet() and psycopg.waiting.wait is getattr(psycopg.waiting, "wait_c", None)


class Postgres:
    def __init__(self, url: str | None):
        self.url = url
        if url:
            import psycopg  # noqa: F401 - see the module's docstring
            import psycopg_pool  # noqa: F401
        # Held while the first request of a process builds its pool - which yields under gevent (the pool's
        # own greenlet connects): so a lock of this process, made after gevent patched (race.ProcessLock).
        self._lock = ProcessLock()
        self._pool = None
        self._pid = None
        self.lock_timeout_ms = LOCK_TIMEOUT_MS

    @contextmanager
    def connection(self):
        """A connection of the pool for one request; a server that is not there is a 503 naming it."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._pool_of_this_process().connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise SidecarUnreachable(f"postgres unreachable: {exc}") from exc
        except psycopg.errors.LockNotAvailable as exc:
            raise LockTimeout(f"row lock not acquired in {self.lock_timeout_ms} ms (a row lock held by a yielding "
                              f"greenlet of this thread is never released while the thread waits): {exc}") from exc
        except psycopg.OperationalError as exc:
            if server_lost(exc):
                raise SidecarUnreachable(f"postgres unreachable: {type(exc).__name__}: {exc}") from exc
            raise

    def _pool_of_this_process(self):
        if not self.url:
            raise SidecarUnreachable("postgres unreachable: LAB_POSTGRES_URL is not set")
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = self._new_pool()
                self._pid = os.getpid()
            return self._pool

    def _new_pool(self):
        from psycopg_pool import ConnectionPool

        # The pool waits on locks it makes now: real ones in a greenlet where gevent has not patched threading.
        unpatched = real_lock_in_greenlet(threading.Lock())
        if unpatched or _psycopg_blocks_greenlets():
            self.lock_timeout_ms = LOCK_TIMEOUT_UNPATCHED_MS
        pool = ConnectionPool(
            self.url, min_size=1, max_size=POOL_MAX_UNPATCHED if unpatched else POOL_MAX, timeout=GETCONN_TIMEOUT_S,
            open=True, name=f"lab-{os.getpid()}",
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S,
                    "options": f"-c lock_timeout={self.lock_timeout_ms}"},
        )
        try:
            with pool.connection() as conn:
                if conn.execute("SELECT to_regclass('counters')").fetchone()[0] is None:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
                        conn.execute(SCHEMA)
        except BaseException:
            pool.close(timeout=1.0)
            raise
        return pool
