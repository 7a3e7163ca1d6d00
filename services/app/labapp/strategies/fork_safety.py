"""Clients and threads made when the app is created, and the fix beside each.

``labapp.wsgi`` creates the app when it is imported. Without ``--preload`` every gunicorn worker imports
it itself, after the fork. With ``preload_app`` the master imports it once and forks the workers from it:
what the app made at import is copied into every worker. A socket opened then is *one* connection that
every worker writes to and reads from; a thread started then runs in the master only, because fork copies
the calling thread alone. The Flask dev server with ``processes=4`` is preloaded too: it makes the app once
and forks a child per request.

``import-redis``      a redis-py client used at app creation (PING). Its pool remembers the pid that made
                      its connections and starts afresh in a process that did not: fork-safe.
``import-pymemcache`` a pymemcache ``Client`` connected at app creation (a ``version`` round trip, as apps
                      check their cache at start-up): one socket per app, not safe between threads.
``import-python-memcached`` python-memcached's ``Client``, used at app creation (a cache warmed at start-up):
                      a socket per thread, and the importing thread's is the one a sync worker serves with.
``lazy-pymemcache``   the fix: a ``PooledClient`` made on first use in each process (the pid is checked).
``import-thread``     a thread started at app creation keeps a global copy of a redis counter fresh (a
                      config or feature-flag refresher); requests read that copy.
``lazy-thread``       the fix: the thread is started on first use in each process, behind a first-use lock
                      made at import that also guards the redis client the thread polls with (taken by the
                      thread as it starts) - the trap under gevent-preload, where that lock is the real one.

The nonce strategies (check ``nonce``) write the request's token under a key of its own, yield, and read it
back through the same client; the judge flags an answer that is another request's token (crossed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time

from ..errors import SidecarUnreachable
from ..race import cooperative_sleep
from .base import CounterStrategy, IsolationStrategy

log = logging.getLogger("labapp")

MEMCACHED_TIMEOUT_S = 2.0  # a reply another process consumed is waited for this long
REFRESH_PERIOD_S = 0.01
IDLE_PERIOD_S = 0.1  # nothing watched yet (every other cell): wake rarely
FRESH_WAIT_S = 0.5  # a read at rest waits this long for two refreshes that began after it
WATCHED_MAX = 64  # the refresher follows the keys read most recently, no more


def _bytes(token: str) -> bytes:
    return token.encode("utf-8", "surrogatepass")  # any text the query string can carry


def nonce_key(nonce: bytes) -> str:
    """The request's own key, whatever its token."""
    return "lab:nonce:" + hashlib.sha256(nonce).hexdigest()


def _text(raw) -> str | None:
    if not isinstance(raw, bytes):
        return raw
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # not a token at all: a piece of another reply
        return raw.decode("utf-8", "replace")


NO_MEMCACHED = "memcached unreachable: LAB_MEMCACHED is not set"
NO_REDIS = "redis unreachable: LAB_REDIS_URL is not set"


def _made(value, unset: str):
    """What the app made at import - None when the setting it needs was not there."""
    if value is None:
        raise SidecarUnreachable(unset)
    return value


def _memcached_address(res) -> tuple[str, int]:
    host, _, port = _made(res.settings.memcached, NO_MEMCACHED).rpartition(":")
    return host, int(port)


class PerProcess:
    """A value made by ``make`` on first use in each process (the pid is checked): whatever was made before a
    fork is never used after it. Its lock is never taken at import, so never copied held into a worker."""

    def __init__(self, make, lock=None):
        self.make = make
        self.value = None
        self.pid: int | None = None
        self.lock = lock or threading.Lock()  # several may share one, as a module's lazy-init lock guards all it makes

    def get(self):
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    self.value = self.make()
                    self.pid = os.getpid()
        return self.value


class NonceStrategy(IsolationStrategy):
    """Write the token, yield, read it back through one client."""

    def client(self):
        raise NotImplementedError

    def echo(self, token):
        client = self.client()
        nonce = _bytes(token)
        key = nonce_key(nonce)
        client.set(key, nonce)
        self.window()
        return _text(client.get(key))


class ImportRedis(NonceStrategy):
    def bind(self, res) -> None:
        super().bind(res)
        if res.settings.redis_url:
            try:
                res.redis.ping()  # connected at app creation: in the master under --preload
            except Exception as exc:  # a store down at start-up is connected on first use instead
                log.warning("import-redis: no connection at start-up (%s)", exc)

    def client(self):
        return self.res.redis


class ImportPymemcache(NonceStrategy):
    _client = None

    def bind(self, res) -> None:
        super().bind(res)
        if not res.settings.memcached:
            return
        from pymemcache.client.base import Client

        self._client = Client(_memcached_address(res), connect_timeout=2, timeout=MEMCACHED_TIMEOUT_S,
                              default_noreply=False)
        try:
            self._client.version()  # connected at app creation: in the master under --preload
        except Exception as exc:  # a store down at start-up is connected on first use instead
            log.warning("import-pymemcache: no connection at start-up (%s)", exc)

    def client(self):
        return _made(self._client, NO_MEMCACHED)


class ImportPythonMemcached(NonceStrategy):
    """python-memcached's ``memcache.Client`` (cachelib's and old Django's memcached client): a
    ``threading.local``, so each thread opens its own socket - and the thread that made the app keeps one."""

    _client = None

    def bind(self, res) -> None:
        super().bind(res)
        if not res.settings.memcached:
            return
        import memcache

        self._client = memcache.Client([res.settings.memcached], socket_timeout=MEMCACHED_TIMEOUT_S)
        self._client.set("lab:warm", "1")  # a cache warmed at app creation: this thread's socket opens now

    def client(self):
        return _made(self._client, NO_MEMCACHED)


class LazyPymemcache(NonceStrategy):
    """One pool per process, made by the first request of that process: nothing crosses a fork."""

    def bind(self, res) -> None:
        super().bind(res)
        self._pool = PerProcess(self._make_pool)

    def _make_pool(self):
        from pymemcache.client.base import PooledClient

        return PooledClient(_memcached_address(self.res), connect_timeout=2, timeout=MEMCACHED_TIMEOUT_S,
                            max_pool_size=64, default_noreply=False)

    def client(self):
        return self._pool.get()


def _counter_key(key: str) -> str:
    return f"lab:refreshed:{key}"


class Refresher:
    """A thread that copies the counters it watches from redis into ``values`` every REFRESH_PERIOD_S, with the
    client ``connect()`` gives it as it starts.

    No lock is shared with the readers (plain assignments under the GIL): a lock the master's thread held at
    the fork would stay held for ever in a preloaded worker.
    """

    def __init__(self, connect):
        self.connect = connect
        self.values: dict[str, int] = {}
        self.watched: dict[str, None] = {}  # insertion-ordered: the most recent keys
        self.refreshes = 0
        self.thread = threading.Thread(target=self._run, name="lab-refresher", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        redis = self.connect()  # the thread's first step (LazyThread: through the lock its starter holds)
        failing = False
        while True:
            keys = list(self.watched)
            try:
                if keys:
                    fresh = redis.mget([_counter_key(k) for k in keys])
                    self.values = {**self.values, **{k: int(v or 0) for k, v in zip(keys, fresh, strict=True)}}
                self.refreshes += 1
                failing = False
            except Exception as exc:  # redis away: keep the old copy, try again (and say so once)
                if not failing:
                    log.warning("refresher: %s", exc)
                failing = True
            time.sleep(REFRESH_PERIOD_S if keys else IDLE_PERIOD_S)

    def watch(self, key: str) -> None:
        self.watched[key] = None
        while len(self.watched) > WATCHED_MAX:
            self.watched.pop(next(iter(self.watched)), None)

    def fresh(self, key: str) -> int:
        """The copy of ``key`` after two refreshes that began after this call; the stale copy if none come."""
        self.watch(key)
        wanted = self.refreshes + 2
        deadline = time.monotonic() + FRESH_WAIT_S
        while self.refreshes < wanted and time.monotonic() < deadline:
            cooperative_sleep(REFRESH_PERIOD_S / 2)
        return self.values.get(key, 0)


class RefreshedCounter(CounterStrategy):
    """Every request counts with redis INCR (the answer under load); a read serves the refreshed copy."""

    def refresher(self) -> Refresher:
        raise NotImplementedError

    def incr(self, key):
        self.refresher().watch(key)
        return int(self.res.redis.incr(_counter_key(key)))

    def read(self, key):
        return self.refresher().fresh(key)


class ImportThread(RefreshedCounter):
    def bind(self, res) -> None:
        super().bind(res)
        self._refresher = Refresher(lambda: res.redis) if res.settings.redis_url else None

    def refresher(self):
        return _made(self._refresher, NO_REDIS)


class LazyThread(RefreshedCounter):
    """The refresher started on first use in each process, and the redis connection it polls with made on first
    use too, both behind one lock made at import (a module's lazy-init lock).

    ``Thread.start`` returns once the new thread runs, so the first request holds the lock until then; the
    thread's first step is taking its client, through that lock: it waits until the starter is done. Threads,
    and greenlets whose lock gevent patched, wait their turn. Under gevent-preload the lock was made before the
    worker patched: the real one. The thread is a greenlet, the starter's wait a switch to it, and its acquire
    blocks the worker's only thread - the starter never runs again. No load is needed: the first request is
    enough, in every worker gunicorn starts.
    """

    def bind(self, res) -> None:
        super().bind(res)
        first_use = threading.Lock()
        self._client = PerProcess(self._connect, first_use)
        self._refresher = PerProcess(lambda: Refresher(self._client.get), first_use)

    def _connect(self):
        import redis

        return redis.Redis.from_url(_made(self.res.settings.redis_url, NO_REDIS), socket_timeout=5,
                                    socket_connect_timeout=2)  # the thread's own, beside the requests' pool

    def refresher(self):
        _made(self.res.settings.redis_url, NO_REDIS)
        return self._refresher.get()


STRATEGIES = [
    ImportRedis("import-redis", "nonce", "redis-py client used at import: its pool reconnects after a fork",
                ("redis",)),
    ImportPymemcache("import-pymemcache", "nonce", "pymemcache Client connected at import: one socket",
                     ("memcached",)),
    ImportPythonMemcached("import-python-memcached", "nonce", "python-memcached Client warmed at import: the "
                          "importing thread's socket", ("memcached",)),
    LazyPymemcache("lazy-pymemcache", "nonce", "pymemcache PooledClient made on first use in each process",
                   ("memcached",)),
    ImportThread("import-thread", "counter", "a thread started at import refreshes a global copy of a redis counter",
                 ("redis",)),
    LazyThread("lazy-thread", "counter", "the refresher thread started on first use in each process", ("redis",)),
]
