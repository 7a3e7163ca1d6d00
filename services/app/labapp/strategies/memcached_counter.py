"""Counters in memcached: atomic incr, racy get/set, and a gets/cas retry loop."""

from __future__ import annotations

import random

from ..race import cooperative_sleep
from .base import CounterStrategy

CAS_ATTEMPTS = 1000
CAS_BACKOFF_S = 0.0005  # doubled per failed attempt up to 64x, randomized: losers spread out


def _key(key: str) -> str:
    return f"lab:counter:{key}"


class MemcachedIncr(CounterStrategy):
    def incr(self, key):
        client = self.res.memcached
        value = client.incr(_key(key), 1)
        if value is None:  # not there yet: create it once, whoever wins
            client.add(_key(key), b"0", noreply=False)
            value = client.incr(_key(key), 1)
        return int(value)

    def read(self, key):
        return int(self.res.memcached.get(_key(key)) or 0)


class MemcachedGetSet(MemcachedIncr):
    def incr(self, key):
        client = self.res.memcached
        value = int(client.get(_key(key)) or 0)
        self.window()
        client.set(_key(key), str(value + 1).encode(), noreply=False)
        return value + 1


class MemcachedCas(MemcachedIncr):
    def incr(self, key):
        client = self.res.memcached
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                cooperative_sleep(random.uniform(0, CAS_BACKOFF_S * 2 ** min(attempt, 6)))
            raw, token = client.gets(_key(key))
            if raw is None:
                if client.add(_key(key), b"1", noreply=False):
                    return 1
                continue
            value = int(raw) + 1
            self.window()
            if client.cas(_key(key), str(value).encode(), token, noreply=False):
                return value
        raise RuntimeError(f"cas did not succeed in {CAS_ATTEMPTS} attempts")


STRATEGIES = [
    MemcachedIncr("memcached-incr", "counter", "memcached incr (after add)", ("memcached",), question=6,
        lives="store", updates="atomic", store="memcached"),
    MemcachedGetSet("memcached-get-set", "counter", "memcached get, then set value+1", ("memcached",), question=6,
        lives="store", updates="racy", store="memcached"),
    MemcachedCas("memcached-cas", "counter", "memcached gets/cas retry loop", ("memcached",), question=6,
        lives="store", updates="atomic", store="memcached"),
]
