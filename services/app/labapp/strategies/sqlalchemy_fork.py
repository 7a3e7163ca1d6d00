"""A SQLAlchemy engine made when the app is made, and the two fixes SQLAlchemy's docs give for a fork.

SQLAlchemy's pool keeps the connections it opened and hands them out in whatever process it finds itself: it
never looks at the pid (unlike redis-py's, see ``fork_safety``). An engine used when the app is made (here, to
create its table, as apps run ``metadata.create_all`` at start-up) keeps that connection in its pool, and under
``--preload`` every worker is forked with a copy of it - one PostgreSQL session, one socket, for all of them.
SQLAlchemy's "Using Connection Pools with Multiprocessing or os.fork()" says so, and gives the fixes.

``import-sqlalchemy``   the engine (psycopg 3 driver) made and used when the app is made.
``lazy-sqlalchemy``     the fix: the engine is made on first use in each process (the pid is checked); its
                        set-up lasts the race window's first-use length (``race.FIRST_USE_S``).
``dispose-sqlalchemy``  the other fix: the engine made and used when the app is made, and
                        ``engine.dispose(close=False)`` run in every child right after a fork
                        (``os.register_at_fork``: gunicorn's workers and the dev server's forks alike - what a
                        ``post_fork`` hook in gunicorn's config does for gunicorn alone). The child drops the
                        copied connections without closing them (closing would end the parent's session too) and
                        opens its own.

Each request writes its nonce under its own key and reads it back in one connection checkout and one
transaction, the race window between (check ``nonce``).
"""

from __future__ import annotations

import logging
import os
import weakref

from ..errors import SidecarUnreachable
from ..postgres import SCHEMA_LOCK_ID, server_lost
from .base import IsolationStrategy
from .fork_safety import PerProcess, _bytes, _text, nonce_key

log = logging.getLogger("labapp")

NO_POSTGRES = "postgres unreachable: LAB_POSTGRES_URL is not set"
SCHEMA = "CREATE TABLE IF NOT EXISTS lab_nonces (key text PRIMARY KEY, value bytea NOT NULL)"
WRITE = ("INSERT INTO lab_nonces (key, value) VALUES (:key, :value) "
         "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
READ = "SELECT value FROM lab_nonces WHERE key = :key"
# The pool keeps POOL_SIZE connections and opens more when they are all lent (no limit): a request never waits
# for one, so these rows measure what a fork does, not a pool's waiters (a waiter on a lock gevent did not
# patch would stall the greenlets holding the connections: see labapp/postgres.py).
POOL_SIZE = 5
CONNECT_TIMEOUT_S = 2


def new_engine(postgres_url: str):
    """An engine on the lab's server through psycopg 3 (it connects on first use)."""
    from sqlalchemy import create_engine, make_url

    url = make_url(postgres_url).set(drivername="postgresql+psycopg")
    return create_engine(url, pool_size=POOL_SIZE, max_overflow=-1, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})


def make_schema(engine) -> None:
    """The nonces' table, made under an advisory lock (two processes running CREATE TABLE IF NOT EXISTS at once
    can both try to create it)."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK_ID})
        conn.execute(text(SCHEMA))


# Engines whose pools a forked child must not use: each child drops the copies right after the fork.
_DISPOSED_AFTER_FORK: weakref.WeakSet = weakref.WeakSet()


def _drop_inherited_connections() -> None:
    for engine in list(_DISPOSED_AFTER_FORK):
        engine.dispose(close=False)  # a new, empty pool; the parent's connections stay open for the parent


os.register_at_fork(after_in_child=_drop_inherited_connections)


class SqlalchemyNonce(IsolationStrategy):
    def engine(self):
        raise NotImplementedError

    def echo(self, token):
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError

        nonce = _bytes(token)
        key = nonce_key(nonce)
        try:
            with self.engine().begin() as conn:  # one checkout, one transaction
                conn.execute(text(WRITE), {"key": key, "value": nonce})
                self.window()
                row = conn.execute(text(READ), {"key": key}).fetchone()
        except DBAPIError as exc:
            if server_lost(exc.orig):
                raise SidecarUnreachable(f"postgres unreachable: {type(exc.orig).__name__}: {exc.orig}") from exc
            raise
        return _text(row[0]) if row else None


class ImportSqlalchemy(SqlalchemyNonce):
    dispose_after_fork = False
    _engine = None
    _schema_made = False

    def bind(self, res) -> None:
        super().bind(res)
        if not res.settings.postgres_url:
            return
        self._engine = new_engine(res.settings.postgres_url)
        if self.dispose_after_fork:
            _DISPOSED_AFTER_FORK.add(self._engine)
        try:  # used at app creation: its connection stays in the pool - in the master under --preload
            make_schema(self._engine)
            self._schema_made = True
        except Exception as exc:  # a database down at start-up: the first request makes the table
            log.warning("%s: no connection at start-up (%s)", self.name, exc)

    def engine(self):
        if self._engine is None:
            raise SidecarUnreachable(NO_POSTGRES)
        if not self._schema_made:
            make_schema(self._engine)
            self._schema_made = True
        return self._engine


class DisposeSqlalchemy(ImportSqlalchemy):
    dispose_after_fork = True


class LazySqlalchemy(SqlalchemyNonce):
    """One engine per process, made by the first request of that process: nothing crosses a fork."""

    def bind(self, res) -> None:
        super().bind(res)
        self._engine = PerProcess(self._make)

    def _make(self):
        if not self.res.settings.postgres_url:
            raise SidecarUnreachable(NO_POSTGRES)
        engine = new_engine(self.res.settings.postgres_url)
        make_schema(engine)
        self.window.first_use()  # the set-up's length over a network: the next request comes while it runs
        return engine

    def engine(self):
        return self._engine.get()


_NEEDS = ("postgres",)
STRATEGIES = [
    ImportSqlalchemy("import-sqlalchemy", "nonce", "SQLAlchemy engine (psycopg 3) made and used at import: its "
                     "pool's connection is copied into every fork", _NEEDS),
    LazySqlalchemy("lazy-sqlalchemy", "nonce", "SQLAlchemy engine made on first use in each process", _NEEDS),
    DisposeSqlalchemy("dispose-sqlalchemy", "nonce", "SQLAlchemy engine made at import, engine.dispose(close=False) "
                      "in every child after a fork", _NEEDS),
]
