"""Mutants: deliberately broken twins of the strategies, so ``workerlab mutants`` can show the checkers say no.

Inert unless ``LAB_MUTANT`` names one (settings.py reads it; only the mutants runner sets it, in the app's
environment before the app starts). Then ``arm`` swaps one method of one strategy - this app's copy of it -
for its broken twin, once, at start-up; nothing a client sends can arm, disarm or pick a mutant, and
without ``LAB_MUTANT`` no strategy is touched at all. Each mutant fires on a count kept by its own app (one
per worker process), so it breaks the same way every run.

A mutation is declared once, here: its name, the strategy and method it replaces, what it breaks, and the
broken method built over the strategy (``make(strategy, original)``). The runner (workerlab/mutants/)
declares the cell each one must flip.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from .errors import SidecarUnreachable
from .race import cooperative_sleep
from .strategies.redis_counter import RedisGetSet

MUTANT_ENV = "LAB_MUTANT"
SKIP_AFTER = 2  # skip-a-number: a process hands out 1, 2, then 4 (3 is counted, never answered)
DUPLICATE_AT = 11  # duplicate-value: the request that gets 11 answers 10 again
NO_VALUE_EVERY = 25  # answer-without-value: the increments that reach 10, 35, 60 ... answer value null
OVER_COUNT_EVERY = 25  # over-count: every 25th increment lands twice (a retried write), answered once
RESET_EVERY = 20  # worker-resets: a process forgets every count after its 20th increment of a key
HANG_AT = 10  # hang-past-limit: the 10th echo of each process ...
HANG_S = 25.0  # ... sleeps past a cell's limit plus the driver's wait for answers in flight (6 s + 10 s)
LEAK_EVERY = 10  # token-of-another-request, session-of-another-user: every 10th answer is another's


@dataclass(frozen=True)
class Mutation:
    name: str
    strategy: str
    method: str  # incr | read | echo
    breaks: str  # one line: what is broken
    make: Callable  # (strategy, original bound method) -> the broken method


def _incr_as_get_set(strategy, original):
    return lambda key: RedisGetSet.incr(strategy, key)


def _skip_a_number(strategy, original):
    def incr(key):
        value = original(key)
        return original(key) if value == SKIP_AFTER + 1 else value

    return incr


def _duplicate_value(strategy, original):
    def incr(key):
        value = original(key)
        return value - 1 if value == DUPLICATE_AT else value

    return incr


def _stale_final_read(strategy, original):
    return lambda key: max(0, original(key) - 1)


def _final_read_fails(strategy, original):
    def read(key):
        raise SidecarUnreachable("redis unreachable: mutant final-read-fails (the replica that serves reads is down)")

    return read


def _hang_past_limit(strategy, original):
    count = itertools.count(1)

    def echo(token):
        if next(count) == HANG_AT:
            cooperative_sleep(HANG_S)
        return original(token)

    return echo


def _answer_without_value(strategy, original):
    def incr(key):
        value = original(key)
        return None if value % NO_VALUE_EVERY == 10 else value

    return incr


def _answers_of_another(belongs_to_another: Callable[[object, str], bool]):
    """Every LEAK_EVERY-th answer of a process (or the next after it) is the answer of the request before it,
    when that one belongs to another request or user."""

    def make(strategy, original):
        state = {"due": 0, "last": None}

        def method(arg):
            answer = original(arg)
            previous, state["last"] = state["last"], answer
            state["due"] += 1
            if state["due"] >= LEAK_EVERY and previous is not None and belongs_to_another(previous, arg):
                state["due"] = 0
                return copy.copy(previous)
            return answer

        return method

    return make


_token_of_another_request = _answers_of_another(lambda previous, token: previous != token)
_session_of_another_user = _answers_of_another(lambda previous, client: previous.get("owner") != client)


def _worker_resets(strategy, original):
    def incr(key):
        value = original(key)
        if value % RESET_EVERY == 0:
            strategy.obj.param.clear()  # the whole process's state, silently
        return value

    return incr


def _over_count(strategy, original):
    def incr(key):
        value = original(key)
        if value % OVER_COUNT_EVERY == 0:
            original(key)  # the retry of a write whose reply was lost: it lands twice
        return value

    return incr


MUTATIONS: dict[str, Mutation] = {m.name: m for m in (
    Mutation("incr-as-get-set", "redis-incr", "incr", "redis INCR done as GET, then SET value+1", _incr_as_get_set),
    Mutation("skip-a-number", "naive-global", "incr",
             f"each process's counter skips a number: it hands out 1..{SKIP_AFTER}, then {SKIP_AFTER + 2} "
             f"({SKIP_AFTER + 1} is counted, never answered)", _skip_a_number),
    Mutation("duplicate-value", "redis-incr", "incr",
             f"hands out {DUPLICATE_AT - 1} twice: the request that got {DUPLICATE_AT} answers "
             f"{DUPLICATE_AT - 1}; every increment is still counted", _duplicate_value),
    Mutation("stale-final-read", "redis-incr", "read",
             "a read answers the value before the last increment (a replica one write behind)", _stale_final_read),
    Mutation("final-read-fails", "redis-incr", "read", "every read fails (503): the value at rest is never known",
             _final_read_fails),
    Mutation("hang-past-limit", "iso-request", "echo",
             f"the {HANG_AT}th request of each process hangs {HANG_S:.0f}s, past the cell's limit", _hang_past_limit),
    Mutation("answer-without-value", "redis-incr", "incr",
             f"the increments that reach 10, {10 + NO_VALUE_EVERY}, ... answer 200 with value null",
             _answer_without_value),
    Mutation("token-of-another-request", "iso-request", "echo",
             f"every {LEAK_EVERY}th answer of a process carries the token of the request before it instead of "
             "its own",
             _token_of_another_request),
    Mutation("session-of-another-user", "server-session-redis", "incr",
             f"every {LEAK_EVERY}th answer of a process (or the next after it) is the previous request's: "
             "another user's value and owner", _session_of_another_user),
    Mutation("worker-resets", "naive-global", "incr",
             f"a process silently forgets its counts after every {RESET_EVERY}th increment of a key", _worker_resets),
    Mutation("over-count", "redis-incr", "incr",
             f"every {OVER_COUNT_EVERY}th increment lands twice (a retried write), answered once", _over_count),
)}


def check_name(name: str | None) -> str | None:
    """``name`` if it is a declared mutant (or empty: None); else a ValueError naming the valid ones."""
    if not name:
        return None
    if name not in MUTATIONS:
        raise ValueError(f"{MUTANT_ENV}={name!r}: expected one of {', '.join(MUTATIONS)}")
    return name


def arm(name: str | None, strategies: dict) -> str | None:
    """Replace the named mutant's method on this app's copy of its strategy; return the name armed, or None."""
    if check_name(name) is None:
        return None
    mutation = MUTATIONS[name]
    strategy = strategies[mutation.strategy]
    original = getattr(strategy, mutation.method)
    setattr(strategy, mutation.method, mutation.make(strategy, original))
    return name
