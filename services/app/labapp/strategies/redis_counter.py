"""Counters in redis: atomic INCR, and the racy GET-then-SET people write first."""

from __future__ import annotations

from .base import CounterStrategy


def _key(key: str) -> str:
    return f"lab:counter:{key}"


class RedisIncr(CounterStrategy):
    def incr(self, key):
        return int(self.res.redis.incr(_key(key)))

    def read(self, key):
        return int(self.res.redis.get(_key(key)) or 0)


class RedisGetSet(RedisIncr):
    def incr(self, key):
        value = int(self.res.redis.get(_key(key)) or 0)
        self.window()
        self.res.redis.set(_key(key), value + 1)
        return value + 1


STRATEGIES = [
    RedisIncr("redis-incr", "counter", "redis INCR (atomic on the server)", ("redis",), question=6,
        lives="store", updates="atomic", store="redis"),
    RedisGetSet("redis-get-set", "counter", "redis GET, then SET value+1", ("redis",), question=6,
        lives="store", updates="racy", store="redis"),
]
