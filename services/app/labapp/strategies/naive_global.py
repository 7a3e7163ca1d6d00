"""The module-level object from every "is my global thread-safe?" question.

    class SomeObj:
        param = 0
        def query(self):
            self.param += 1
            return self.param

Correct under one single-threaded worker; loses updates when threads or
greenlets interleave between the read and the write; counts on its own in every
process. Keyed so that each measurement starts from zero in every process.
"""

from __future__ import annotations

from .base import CounterStrategy


class SomeObj:
    def __init__(self):
        self.param: dict[str, int] = {}

    def query(self, key: str, window) -> int:
        value = self.param.get(key, 0)  # read ...
        window()  # ... anything that gives up the interpreter here ...
        self.param[key] = value + 1  # ... then write back what we read + 1
        return value + 1


class NaiveGlobal(CounterStrategy):
    obj = SomeObj()

    def incr(self, key):
        return self.obj.query(key, self.window)

    def read(self, key):
        return self.obj.param.get(key, 0)


STRATEGIES = [
    NaiveGlobal(
        "naive-global",
        "counter",
        "module-level object doing param += 1",
        question=1,
        lives="process", updates="racy")
]
