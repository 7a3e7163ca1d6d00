"""A counter row in SQLite (WAL mode): UPDATE ... RETURNING inside one transaction.

SQLite is a file on one host: shared by every process and instance of this
machine, not by other machines.
"""

from __future__ import annotations

import sqlite3
import threading

from .. import faultpoints
from ..race import ProcessLock, cooperative_sleep
from .base import CounterStrategy

_SCHEMA = "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, n INTEGER NOT NULL)"
SETUP_ATTEMPTS = 50


class SqlCounter(CounterStrategy):
    _local = threading.local()  # sqlite3 connections must not cross threads
    # SQLite has one write lock per database, and a writer that finds it taken polls for it (its busy handler
    # sleeps 1, 2, 5 ... then 100 ms between tries), so newcomers overtake the ones that waited longest: with
    # 50 threads of one process writing at once, on a busy machine, one waited past 30 s. The writers of one
    # process queue here instead (woken as soon as the lock is free); only one per process polls SQLite.
    _writers = ProcessLock()  # made in the worker, after gevent patched it (race.ProcessLock)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.res.sqlite_path, timeout=30, isolation_level=None)
            # Several workers opening a new database at once: switching it to WAL does not wait on
            # the busy timeout and can fail with "database is locked" - retry that, briefly.
            for attempt in range(SETUP_ATTEMPTS):
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute(_SCHEMA)
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt + 1 == SETUP_ATTEMPTS:
                        raise
                    cooperative_sleep(0.01 * (attempt + 1))
            self._local.conn = conn
        return conn

    def incr(self, key):
        conn = self._conn()
        with self._writers:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT OR IGNORE INTO counters (key, n) VALUES (?, 0)", (key,))
                (value,) = conn.execute(
                    "UPDATE counters SET n = n + 1 WHERE key = ? RETURNING n", (key,)
                ).fetchone()
                faultpoints.reach("sql-in-transaction")  # workerlab faults: kill -9 lands here, before COMMIT
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return int(value)

    def read(self, key):
        row = self._conn().execute("SELECT n FROM counters WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0


STRATEGIES = [SqlCounter("sql-update", "counter", "SQLite WAL, UPDATE ... RETURNING in a transaction", question=6,
        lives="store", updates="atomic", store="SQLite (one transaction)", host_files="SQLite file")]
