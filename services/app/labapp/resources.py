"""Connections to the sidecars, made lazily so the app starts when a sidecar is down.

A request that needs a sidecar that is down gets a 503 naming it; every other
endpoint keeps working.
"""

from __future__ import annotations

import functools
import os
import socket
import threading

from .errors import SidecarUnreachable
from .postgres import Postgres
from .race import RaceWindow


class Resources:
    def __init__(self, settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._redis = None
        self._memcached = None
        self.postgres = Postgres(settings.postgres_url)  # connects on a request's first use, per process
        self.window = RaceWindow(settings.race_window, self._redis_or_none())
        os.makedirs(settings.data_dir, exist_ok=True)

    def _redis_or_none(self):
        return self.redis if self.settings.redis_url else None

    @functools.cached_property
    def redis(self):
        import redis

        if not self.settings.redis_url:
            raise SidecarUnreachable("redis unreachable: LAB_REDIS_URL is not set")
        # redis-py connects on first command; a pool is safe across threads and
        # greenlets (patched sockets) alike.
        return redis.Redis.from_url(self.settings.redis_url, socket_timeout=5, socket_connect_timeout=2)

    @functools.cached_property
    def memcached(self):
        from pymemcache.client.base import PooledClient

        if not self.settings.memcached:
            raise SidecarUnreachable("memcached unreachable: LAB_MEMCACHED is not set")
        host, _, port = self.settings.memcached.rpartition(":")
        return PooledClient(
            (host, int(port)), connect_timeout=2, timeout=5, max_pool_size=64, default_noreply=False
        )

    @property
    def sqlite_path(self) -> str:
        return os.path.join(self.settings.data_dir, "counters.sqlite3")


# Exceptions that mean "the sidecar is not there", per client library.
def unreachable_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, socket.timeout, OSError, EOFError]
    try:
        import redis

        errors += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - redis is a pinned dependency
        pass
    try:
        from pymemcache.exceptions import MemcacheUnexpectedCloseError

        errors.append(MemcacheUnexpectedCloseError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)
