"""Counters through Flask-Caching, four backends, two ways each.

``get-set`` reads, yields, writes back value+1. ``inc`` calls ``cache.inc``:
atomic where the backend has an atomic increment (redis INCRBY, memcached incr),
but a plain get-then-set in cachelib's SimpleCache and FileSystemCache.
SimpleCache lives in one process; FileSystemCache in one host's folder.
"""

from __future__ import annotations

import os

from ..errors import BackendError
from .base import CounterStrategy

BACKENDS = {
    # name: (Flask-Caching CACHE_TYPE, sidecar it needs)
    "simple": ("SimpleCache", None),
    "filesystem": ("FileSystemCache", None),
    "redis": ("RedisCache", "redis"),
    "memcached": ("MemcachedCache", "memcached"),
}


def cache_config(backend: str, settings) -> dict:
    cache_type, _ = BACKENDS[backend]
    config = {"CACHE_TYPE": cache_type, "CACHE_DEFAULT_TIMEOUT": 3600, "CACHE_KEY_PREFIX": "lab:cache:"}
    if backend == "filesystem":
        config["CACHE_DIR"] = os.path.join(settings.data_dir, "flask-caching")
        config["CACHE_THRESHOLD"] = 100_000
    elif backend == "redis":
        config["CACHE_REDIS_URL"] = settings.redis_url or "redis://127.0.0.1:1/0"
    elif backend == "memcached":
        config["CACHE_MEMCACHED_SERVERS"] = [settings.memcached or "127.0.0.1:1"]
    elif backend == "simple":
        config["CACHE_THRESHOLD"] = 100_000
    return config


class CacheCounter(CounterStrategy):
    backend: str = "simple"
    cache = None  # a flask_caching.Cache, set by the factory

    def read(self, key):
        return int(self.cache.get(key) or 0)


class CacheGetSet(CacheCounter):
    def incr(self, key):
        value = int(self.cache.get(key) or 0)
        self.window()
        self.cache.set(key, value + 1)
        return value + 1


class CacheInc(CacheCounter):
    def incr(self, key):
        # Flask-Caching's Cache has no inc(); its backend (a cachelib cache) does.
        value = self.cache.cache.inc(key, 1)
        if value is None:  # python-memcached swallows socket errors: it marks the server dead and answers None
            raise BackendError(f"{self.backend} cache.inc returned None")
        return int(value)


# Where each backend keeps the counter and how its get+set or inc updates it (base.py's traits): SimpleCache is
# the process's own dict (its inc under a lock); redis' inc is INCR; cachelib's memcached and filesystem inc are
# a get and a set, interleaving only where a socket or a file read yields.
CACHE_TRAITS = {
    ("simple", "get-set"): dict(lives="process", updates="racy"),
    ("simple", "inc"): dict(lives="process", updates="atomic"),
    ("redis", "get-set"): dict(lives="store", updates="racy", store="redis"),
    ("redis", "inc"): dict(lives="store", updates="atomic", store="redis"),
    ("memcached", "get-set"): dict(lives="store", updates="racy", store="memcached"),
    ("memcached", "inc"): dict(lives="store", updates="racy-socket", store="memcached (cachelib inc is get+set)"),
    ("filesystem", "get-set"): dict(lives="store", updates="racy", store="cache file", host_files="cache folder"),
    ("filesystem", "inc"): dict(lives="store", updates="racy-file", store="cache file (cachelib inc is get+set)",
                                host_files="cache folder"),
}


def _make(cls, backend: str, how: str):
    sidecar = BACKENDS[backend][1]
    strategy = cls(
        f"cache-{backend}-{how}",
        "counter",
        f"Flask-Caching {BACKENDS[backend][0]}, counter by {'cache.inc' if how == 'inc' else 'get then set'}",
        (sidecar,) if sidecar else (),
        question=9,
        **CACHE_TRAITS[backend, how],
    )
    strategy.backend = backend
    return strategy


STRATEGIES = [
    _make(cls, backend, how) for backend in BACKENDS for cls, how in ((CacheGetSet, "get-set"), (CacheInc, "inc"))
]
