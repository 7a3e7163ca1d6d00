"""The fault table: each fault declared once (what it hits, the stack settings it needs, its injector),
and the strategies it covers with where each keeps its state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import evidence
from .injectors import (
    Injection,
    inject_graceful_reload,
    inject_master_restart,
    inject_memcached_evict,
    inject_nginx_reload,
    inject_nothing,
    inject_restart,
    inject_sql_kill_in_transaction,
    inject_worker_kill,
)

# -- strategies the fault table covers, and where each keeps its state --------------------

# strategy -> (checker scope, where the state lives)
SCOPES: dict[str, tuple[str, str]] = {
    "naive-global": ("process", "process"),
    "locked-global": ("process", "process"),
    "cache-simple-inc": ("process", "process"),
    "redis-incr": ("store", "redis"),
    "memcached-incr": ("store", "memcached"),
    "sql-update": ("store", "sqlite"),
    "mp-manager": ("store", "manager"),
    "server-session-redis": ("session", "redis"),
    "cookie-session": ("session", "cookie"),
    "gunicorn-stash": ("store", "stash"),
}
FAULT_STRATEGIES = tuple(SCOPES)
WHERE = {
    "process": "a module global of each worker process",
    "redis": "redis",
    "memcached": "memcached",
    "sqlite": "an SQLite file (WAL)",
    "manager": "the manager server process",
    "cookie": "the user's signed cookie",
    "stash": "gunicorn's dirty arbiter (gunicorn.dirty.stash), a child of the master",
}

# -- the declarations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    inject: Callable[[Injection], None]
    hits: str  # what it restarts: process | master | redis | memcached | sqlite | nginx
    proof: evidence.Evidence  # what in the injector's record proves it happened (workerlab/faults/evidence.py)
    moment: bool = True  # False: lasts the whole run
    needs_gunicorn: bool = False
    kills_written_request: bool = False  # it kills a worker holding a request whose write is done, not answered
    only: tuple[str, ...] = ()  # strategies it applies to; empty = all
    redis_persistence: str = "none"
    memcached_mb: int = 64
    memcached_item_max: str | None = None
    app_env: tuple[tuple[str, str], ...] = ()
    host_crash: bool = False  # redis runs under the shim: kill -9 loses what it had not fsynced
    # The load goes on until the injector returns (a killed worker's replacement has served), however long the
    # machine takes: what comes after the fault is then always seen (CellPlan.hold_load).
    holds_load: bool = False

    def used_by(self, strategy: str) -> bool:
        """Whether the strategy keeps its state in what this fault hits: under a store fault (redis, memcached)
        a strategy that does not is a control."""
        return SCOPES[strategy][1] == self.hits

    def stack_settings(self) -> dict:
        return {"redis_persistence": self.redis_persistence, "memcached_mb": self.memcached_mb,
                "memcached_item_max": self.memcached_item_max, "app_env": dict(self.app_env),
                "host_crash_shim": self.host_crash}


RECYCLE_MAX_REQUESTS = 60
RECYCLE_JITTER = 20

FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("worker-kill", "kill -9 of one gunicorn worker mid-request (its increment written, not yet answered); "
          "the master forks a new one", inject_worker_kill, "process", evidence.killed_holding_request,
          needs_gunicorn=True, kills_written_request=True, holds_load=True),
    Fault("worker-recycle", f"gunicorn max_requests={RECYCLE_MAX_REQUESTS} (+jitter {RECYCLE_JITTER}): "
          "workers retire and are replaced all run long", inject_nothing, "process", evidence.workers_recycled,
          moment=False,
          needs_gunicorn=True,
          app_env=(("MAX_REQUESTS", str(RECYCLE_MAX_REQUESTS)), ("MAX_REQUESTS_JITTER", str(RECYCLE_JITTER)))),
    Fault("graceful-reload", "SIGHUP to the gunicorn master: every worker replaced gracefully",
          inject_graceful_reload, "process", evidence.every_worker_replaced, needs_gunicorn=True),
    Fault("master-restart", "SIGTERM to the gunicorn master's process group (a deploy): master, workers and dirty "
          "arbiter stop gracefully, then the app starts again", inject_master_restart, "master",
          evidence.master_restarted, needs_gunicorn=True),
    Fault("redis-restart", "kill -9 and restart of redis without persistence", inject_restart("redis"), "redis",
          evidence.server_restarted),
    Fault("redis-restart-aof-always", "kill -9 and restart of redis with appendonly, appendfsync always",
          inject_restart("redis"), "redis", evidence.server_restarted, redis_persistence="aof-always"),
    Fault("redis-restart-aof-everysec", "kill -9 and restart of redis with appendonly, appendfsync everysec",
          inject_restart("redis"), "redis", evidence.server_restarted, redis_persistence="aof-everysec"),
    Fault("redis-host-crash-aof-always", "emulated host crash of redis (appendfsync always): unsynced AOF "
          "writes lost, then restart", inject_restart("redis"), "redis", evidence.host_crash,
          redis_persistence="aof-always",
          host_crash=True),
    Fault("redis-host-crash-aof-everysec", "emulated host crash of redis (appendfsync everysec): unsynced AOF "
          "writes lost, then restart", inject_restart("redis"), "redis", evidence.host_crash_with_tail,
          redis_persistence="aof-everysec",
          host_crash=True),
    Fault("memcached-restart", "kill -9 and restart of memcached", inject_restart("memcached"), "memcached",
          evidence.server_restarted),
    Fault("memcached-evict", "memcached with -m 2 and filler writes from the fault on: LRU eviction",
          inject_memcached_evict, "memcached", evidence.evictions, memcached_mb=2, memcached_item_max="512k"),
    Fault("sql-kill-in-transaction", "kill -9 of a worker held inside an open SQLite write transaction",
          inject_sql_kill_in_transaction, "sqlite", evidence.killed_in_transaction, needs_gunicorn=True,
          only=("sql-update",)),
    Fault("nginx-reload", "SIGHUP to nginx during the run: new workers, old ones retire gracefully",
          inject_nginx_reload, "nginx", evidence.new_nginx_workers),
)}
