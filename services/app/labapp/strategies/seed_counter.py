"""The seed's own counter, as written: ``self.param += 1; return self.param``.

The question (QUESTIONS.md 1) is about this code::

    class SomeObj:
        param = 0
        def query(self):
            self.param += 1
            return self.param

``naive-global`` takes it apart (read, window, write back what it read + 1) to show
lost increments. The seed's own story is another one: the increment itself is one
uninterrupted step for CPython's threads (the interpreter switches threads only at
calls and backward jumps, and ``self.param += 1`` holds neither), so no increment is
lost - but anything that gives up the interpreter between the increment and the
``return`` lets another request increment too, and both return the later value: two
clients get the same number and the one in between is handed to nobody
(``duplicates``).

``seed-someobj`` puts the race window there; ``seed-someobj-no-window`` is the code
exactly as users run it, and ignores the window. One ``SomeObj`` per key, so each
measurement starts from zero in every process.
"""

from __future__ import annotations

from .base import CounterStrategy


class SomeObj:
    param = 0

    def query(self):
        self.param += 1
        return self.param


class SomeObjWithWindow(SomeObj):
    def __init__(self, window):
        self.window = window

    def query(self):
        self.param += 1
        self.window()  # anything that gives up the interpreter here: a log line, a query, a template
        return self.param


class SeedCounter(CounterStrategy):
    objects: dict[str, SomeObj] = {}  # one per key and per process; shared by its threads and greenlets

    def make(self) -> SomeObj:
        return SomeObjWithWindow(self.window)

    def obj(self, key: str) -> SomeObj:
        found = self.objects.get(key)
        # setdefault is one step under the GIL: two first requests for a key share one object.
        return found if found is not None else self.objects.setdefault(key, self.make())

    def incr(self, key):
        return self.obj(key).query()

    def read(self, key):
        found = self.objects.get(key)
        return found.param if found is not None else 0


class SeedCounterNoWindow(SeedCounter):
    objects: dict[str, SomeObj] = {}

    def make(self) -> SomeObj:
        return SomeObj()


STRATEGIES = [
    SeedCounter("seed-someobj", "counter", "the seed's self.param += 1; return self.param, a window in between",
                question=1,
        lives="process", updates="racy"),
    SeedCounterNoWindow("seed-someobj-no-window", "counter", "the seed's self.param += 1; return self.param as written",
                        question=1,
        lives="process", updates="atomic"),
]
