"""Counters in a PostgreSQL row, through psycopg 3: the "use a database" answer as users deploy it.

One server shared by every process and every instance (unlike SQLite's file, one per host):

- ``postgres-update``: ``UPDATE ... SET n = n + 1 RETURNING n``. The server reads and writes under the
  row lock; a concurrent UPDATE waits for it, then works on the committed row. Atomic.
- ``postgres-read-modify-write``: SELECT, the race window, ``UPDATE ... SET n = <value + 1>``, in one
  transaction at PostgreSQL's default READ COMMITTED. The transaction does not stop two requests from
  reading the same value: the second UPDATE waits for the first, then writes the same number.
- ``postgres-for-update``: the same with ``SELECT ... FOR UPDATE``: the row lock is taken at the read,
  so the next reader waits until the first commits.
- ``postgres-serializable``: the same read-modify-write at SERIALIZABLE: the server refuses to commit
  the second of two that read the same value (SQLSTATE 40001), and the request retries with a jittered
  backoff, a bounded number of times; a request that runs out of tries is a 503, never a silent success.
"""

from __future__ import annotations

import logging
import random
import time

from ..errors import RetriesExhausted
from ..race import cooperative_sleep
from .base import CounterStrategy

log = logging.getLogger("labapp")

READ = "SELECT n FROM counters WHERE key = %s"
CREATE_ROW = "INSERT INTO counters (key, n) VALUES (%s, 0) ON CONFLICT (key) DO NOTHING"
INCREMENT = "UPDATE counters SET n = n + 1 WHERE key = %s RETURNING n"
WRITE = "UPDATE counters SET n = %s WHERE key = %s"
# Retries: at most LAB_POSTGRES_MAX_TRIES tries (30 by default: settings.py) and RETRY_DEADLINE_S, whichever
# comes first - a request gives up (503) before the load generator's and gunicorn's 30 s timeouts. Between
# tries, "full jitter" exponential backoff: each sleep uniform below a bound that doubles from
# BACKOFF_FIRST_S up to BACKOFF_MAX_S, so that contenders spread out.
RETRY_DEADLINE_S = 20.0
BACKOFF_FIRST_S = 0.005
BACKOFF_MAX_S = 1.0


class _NoRow(Exception):
    """The key has no row yet: it is made outside the transaction, committed, before the transaction runs again
    (made inside, its uncommitted insert would make every other request's insert wait for this one)."""


def _read_modify_write(strategy: CounterStrategy, conn, key: str, lock: str = "", isolation: str = "") -> int:
    """One transaction: read the row (``lock``: `` FOR UPDATE``), the race window, write value + 1."""
    with conn.transaction():
        if isolation:
            conn.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        row = conn.execute(READ + lock, (key,)).fetchone()
        if row is None:
            raise _NoRow(key)
        value = int(row[0])
        strategy.window()
        conn.execute(WRITE, (value + 1, key))
    return value + 1


def _with_row(conn, key: str, transaction):
    """``transaction()``; when the key has no row yet, make it (committed, outside any transaction) and run
    ``transaction()`` again."""
    try:
        return transaction()
    except _NoRow:
        conn.execute(CREATE_ROW, (key,))
        return transaction()


class PostgresCounter(CounterStrategy):
    def read(self, key):
        with self.res.postgres.connection() as conn:
            row = conn.execute(READ, (key,)).fetchone()
        return int(row[0]) if row else 0


class PostgresUpdate(PostgresCounter):
    def incr(self, key):
        with self.res.postgres.connection() as conn:
            row = conn.execute(INCREMENT, (key,)).fetchone()
            if row is None:
                conn.execute(CREATE_ROW, (key,))
                row = conn.execute(INCREMENT, (key,)).fetchone()
        return int(row[0])


class PostgresReadModifyWrite(PostgresCounter):
    lock = ""

    def incr(self, key):
        with self.res.postgres.connection() as conn:
            return _with_row(conn, key, lambda: _read_modify_write(self, conn, key, self.lock))


class PostgresForUpdate(PostgresReadModifyWrite):
    lock = " FOR UPDATE"


class PostgresSerializable(PostgresCounter):
    def incr(self, key):
        import psycopg

        max_tries = self.res.settings.postgres_max_tries
        started = time.monotonic()
        for attempt in range(max_tries):
            try:  # a connection per try: a request never sleeps holding one
                with self.res.postgres.connection() as conn:
                    return _with_row(conn, key, lambda: _read_modify_write(self, conn, key, isolation="SERIALIZABLE"))
            except psycopg.errors.SerializationFailure as exc:
                failure = exc
            pause = random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** attempt))
            if attempt + 1 == max_tries or time.monotonic() + pause - started > RETRY_DEADLINE_S:
                break
            cooperative_sleep(pause)
        log.warning("postgres-serializable: gave up on %s after %d tries in %.1f s", key, attempt + 1,
                    time.monotonic() - started)
        raise RetriesExhausted(f"gave up (at most {max_tries} tries in {RETRY_DEADLINE_S:.0f} s), each try refused: "
                               f"{failure}")


_NEEDS = ("postgres",)
STRATEGIES = [
    PostgresUpdate("postgres-update", "counter", "PostgreSQL UPDATE ... SET n = n + 1 RETURNING n (atomic)",
                   _NEEDS, question=6,
        lives="store", updates="atomic", store="PostgreSQL (one server for every process and instance)"),
    PostgresReadModifyWrite("postgres-read-modify-write", "counter",
                            "PostgreSQL SELECT, then UPDATE value+1, in a READ COMMITTED transaction", _NEEDS,
                            question=6,
        lives="store", updates="racy",
        store="PostgreSQL row (READ COMMITTED: the transaction locks nothing at the read)"),
    PostgresForUpdate("postgres-for-update", "counter", "PostgreSQL SELECT ... FOR UPDATE, then UPDATE value+1",
                      _NEEDS, question=6,
        lives="store", updates="locked", store="PostgreSQL (one server for every process and instance)"),
    PostgresSerializable("postgres-serializable", "counter",
                         "PostgreSQL SELECT, then UPDATE value+1 at SERIALIZABLE, retried (a bounded number of "
                         "tries) on serialization failure", _NEEDS, question=6,
        lives="store", updates="retried", store="PostgreSQL (one server for every process and instance)"),
]
