"""The expected verdict of every (strategy, scenario) cell, with a one-line reason.

Declared as one rule per strategy over the scenario's traits (see
scenarios.Scenario), so the 300-odd cells of the table cannot drift apart; `python -m
workerlab expected` prints the table in full. The rules hold for the default race
window (``yield``). With ``none`` or ``io``, the words that rest on that window may or
may not show (``maybe``); a cell left with nothing else to judge is "not judged"
(``any``, never counted as matched) rather than guessed. ``diverges`` never rests on the
window (it comes from processes), so a cell that expects it stays judged.

Verdicts are sets of: lost-updates, duplicates, diverges, leaks, error - or {correct}. An expected
``error`` names its cause: a pattern every failed request's error text must match (the
app's JSON ``error: message``, as the driver records it), so a different failure - a
crashed stack, a 502 - is a mismatch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from loadtests.verdicts import (
    ANY,
    CORRECT,
    DIVERGES,
    DUPLICATES,
    ERROR,
    LEAKS,
    LOST_UPDATES,
    MATRIX_WORDS,
    format_verdict,
)

from .scenarios import Scenario
from .strategies import STRATEGIES

CORRECT_VERDICT = frozenset({CORRECT})
# The causes an expected error names: a pattern over the failed requests' error texts.
EAGAIN = r"^sidecar-unreachable: manager unreachable: .*(\[Errno 11\]|EAGAIN|Resource temporarily unavailable)"
LOCK_TIMEOUT = r"^lock-timeout: "
# One python-memcached socket for every greenlet: a second waiter fails, and a swallowed error answers None.
SHARED_SOCKET = r"^(internal: ConcurrentObjectUseError$|backend-error: memcached cache\.inc returned None)"
RETRIES_EXHAUSTED = r"^retries-exhausted: "
POSTGRES = "PostgreSQL (one server for every process and instance)"


@dataclass(frozen=True)
class Expectation:
    verdict: frozenset[str]
    reason: str
    rests_on_window: bool = False  # only holds with the explicit 'yield' race window
    cause: str | None = None  # an expected error: the pattern every failed request's error text matches
    # Words that may show or not: they rest on a race window not pinned, or on a race the reason names.
    maybe: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        return format_verdict(self.verdict) + "".join(f"+{w}?" for w in MATRIX_WORDS if w in self.maybe)

    @property
    def judged(self) -> bool:
        return ANY not in self.verdict

    def judge(self, observed: frozenset[str], error_texts: Mapping[str, int]) -> bool | None:
        """Does the observed verdict match? None: not judged. Every expected word must show, nothing but
        those and the ``maybe`` words may, and an error expected (or that may show) must be the named one,
        every time."""
        if not self.judged:
            return None
        # an expected "all well" with maybe words: nothing went wrong, or only what the maybe words name
        required = self.verdict - CORRECT_VERDICT if self.maybe else self.verdict
        if not required <= observed <= self.verdict | self.maybe:
            return False
        if ERROR in observed and self.cause:
            return bool(error_texts) and not self.not_the_cause(observed, error_texts)
        return True

    def not_the_cause(self, observed: frozenset[str], error_texts: Mapping[str, int]) -> dict[str, int]:
        """The failures (text: count) that are not the named cause - what turns an expected error into a
        mismatch; the checker's counts keep only the most common kinds, which may not include these."""
        if ERROR not in observed or not self.cause:
            return {}
        return {text: n for text, n in error_texts.items() if not re.search(self.cause, text)}


def _v(*words: str) -> frozenset[str]:
    return frozenset(words) if words else CORRECT_VERDICT


# What makes an in-process counter safe when requests interleave in one process.
SERIALIZED = "the lock (or cache lock) serializes the update"
# CPython switches threads only at calls and backward jumps; greenlets only where gevent is called.
NO_SWITCH = "nothing in `self.param += 1; return self.param` gives up the interpreter: no increment is lost " \
            "and each request reads its own"


def _real_lock(s: Scenario) -> str | None:
    """Why a module-level threading.Lock is the interpreter's own under greenlets, or None."""
    if s.in_process_concurrency == "greenlets-unpatched":
        return "gevent did not patch threading"
    if s.imported_before_patch:
        return "the lock was made at import, before the worker patched threading"
    return None


def in_process(s: Scenario, *, lock: bool = False, atomic_in_process: bool = False, race: str = LOST_UPDATES,
               race_reason: str = "interleave between read and write", safe_reason: str = SERIALIZED) -> Expectation:
    """State in a module global of each process (naive global, locked global, SimpleCache, the seed's SomeObj)."""
    if s.forks_per_request:
        return Expectation(_v(LOST_UPDATES), "each request runs in a fresh fork whose increment dies with it")
    words = []
    reasons = []
    c = s.in_process_concurrency
    if lock and _real_lock(s):
        words.append(ERROR)
        reasons.append(f"{_real_lock(s)}: a real Lock held by a yielding greenlet blocks the whole thread, "
                       "acquire times out")
    elif c != "none" and not lock and not atomic_in_process:
        words.append(race)
        reasons.append(f"{c} {race_reason}")
    if s.processes > 1:
        words.append(DIVERGES)
        reasons.append(f"each of {s.processes} processes counts on its own")
    if not words:
        if c == "none":
            return Expectation(CORRECT_VERDICT, "one request at a time in one process")
        return Expectation(CORRECT_VERDICT, f"one process, and {safe_reason}")
    return Expectation(_v(*words), "; ".join(reasons), rests_on_window=bool({race, ERROR} & set(words)),
                       cause=LOCK_TIMEOUT if ERROR in words else None)


def shared_atomic(s: Scenario, store: str) -> Expectation:
    return Expectation(CORRECT_VERDICT, f"{store} does the increment atomically in one place")


def shared_racy(s: Scenario, store: str, *, yields_in_process: bool = True) -> Expectation:
    """Read, window, write against a store every process shares."""
    c = s.in_process_concurrency
    multi = s.processes > 1 or s.forks_per_request
    in_proc = c != "none" and yields_in_process
    if multi or in_proc:
        who = "processes" if multi else c
        reason = f"{who} read the same {store} value and both write +1"
        return Expectation(_v(LOST_UPDATES), reason, in_proc and not multi)
    if c != "none" and not yields_in_process:
        return Expectation(CORRECT_VERDICT, f"nothing in the {store} round trip yields in this worker, and one process")
    return Expectation(CORRECT_VERDICT, "one request at a time, so read-then-write never interleaves")


def _io_yields(s: Scenario, kind: str) -> bool:
    """Does a library-internal read-then-write (no explicit window) interleave inside one process?"""
    c = s.in_process_concurrency
    if c == "threads":
        return True  # socket and file I/O release the GIL
    if c == "greenlets":
        return kind == "socket"  # patched sockets yield; file I/O does not
    return False  # unpatched greenlets only switch at explicit gevent calls


def _session_in_process(s: Scenario) -> Expectation:
    if s.forks_per_request:
        return Expectation(_v(DIVERGES), "every request runs in a fresh fork with the parent's empty dict")
    if s.processes > 1:
        return Expectation(_v(DIVERGES), f"each of {s.processes} processes keeps its own dict")
    return Expectation(CORRECT_VERDICT, "one dict, and one user's requests come one at a time")


# Strategies whose state is a file of the host the app runs on (LAB_DATA_DIR, one per instance): from their traits.
HOST_FILES = {name: st.host_files for name, st in STRATEGIES.items() if st.host_files}


def _across_hosts(st, s: Scenario) -> Expectation:
    """A store that is a file of the host under several instances: each instance is a host with its own files."""
    hosts = f"each instance is its own host: its own {st.host_files}"
    if st.name == "server-session-fs":
        # Not per-instance sequences (as session-dict's): the id itself does not survive the hop.
        return Expectation(_v(LOST_UPDATES), f"{hosts}; an instance that does not hold the user's session id "
                                             "starts a new session (a new id, a new cookie) at 1, so the "
                                             "user's count starts again at every hop to another instance")
    if st.name == "server-session-fs-same-user":
        return Expectation(_v(LOST_UPDATES, DIVERGES), f"{hosts}; the shared session lives on one instance, "
                                                       "the others answer every request from a new session "
                                                       "(value 1) and read 0 at rest")
    one_host = expect(st.name, replace(s, instances=1))
    if one_host.verdict == CORRECT_VERDICT:
        return Expectation(_v(DIVERGES), f"{hosts}, where it counts right on its own")
    return Expectation(one_host.verdict | {DIVERGES}, f"{hosts}, where {one_host.reason}",
                       one_host.rests_on_window)


def _memcached_client_shared(st, s: Scenario) -> Expectation | None:
    """cachelib's memcached backend when the app was imported before gevent patched (gunicorn --preload)."""
    if not s.imported_before_patch:
        return None
    shared = ("cachelib uses python-memcached, whose Client is a threading.local defined at import, before the "
              "worker patched threading: one client - one socket - for every greenlet. Two greenlets waiting on it: "
              "the second fails (ConcurrentObjectUseError) and leaves its answer in the socket for the next request, "
              "or python-memcached swallows the socket error, marks the server dead for 30 s and answers nothing")
    if st.name == "cache-memcached-inc":
        # Whether a loss shows is a race the lab cannot widen (inside cachelib's inc): the first collision can mark
        # the server dead for 30 s before two acknowledged incs overlapped - every later inc an error (CI, 300 req.)
        return Expectation(_v(ERROR), f"{shared} - which inc turns into an error; lost updates show when two incs "
                           "overlapped before the first collision", cause=SHARED_SOCKET,
                           maybe=frozenset({LOST_UPDATES}))
    return Expectation(_v(LOST_UPDATES), f"{shared} - which get takes for a missing key (0), so an error shows "
                       "only when the collision is gevent's", cause=SHARED_SOCKET, maybe=frozenset({ERROR}))


def _thread_local(st, s: Scenario) -> Expectation:
    if s.in_process_concurrency == "greenlets-unpatched":
        return Expectation(_v(LEAKS), "unpatched threading.local is shared by all greenlets of the thread", True)
    if s.imported_before_patch:
        return Expectation(_v(LEAKS), "the threading.local was made at import, before the worker patched "
                                      "threading: the real one, shared by all greenlets of the thread", True)
    return Expectation(CORRECT_VERDICT, "one value per thread (per greenlet when gevent patched threading)")


def _one_per_process(st, s: Scenario) -> Expectation:
    if s.in_process_concurrency != "none":
        return Expectation(_v(LEAKS), f"concurrent requests ({s.in_process_concurrency}) overwrite one {st.store}",
                           True)
    return Expectation(CORRECT_VERDICT, "only one request per process at a time")


# The rules: where the state lives x how a request updates it (the strategy's traits, labapp/strategies/base.py),
# each a function of the strategy and the scenario's traits.
TRAIT_RULES = {
    ("process", "racy"): lambda st, s: in_process(s),
    ("process", "locked"): lambda st, s: in_process(s, lock=True),
    ("process", "atomic"): lambda st, s: in_process(s, atomic_in_process=True),
    ("process", "per-user"): lambda st, s: _session_in_process(s),
    ("store", "atomic"): lambda st, s: shared_atomic(s, st.store),
    ("store", "racy"): lambda st, s: shared_racy(s, st.store),
    ("store", "racy-socket"): lambda st, s: shared_racy(s, st.store, yields_in_process=_io_yields(s, "socket")),
    ("store", "racy-file"): lambda st, s: shared_racy(s, st.store, yields_in_process=_io_yields(s, "file")),
    ("session", "per-user"): lambda st, s: Expectation(CORRECT_VERDICT, "the session belongs to one user, whose "
                                                                         "requests come one at a time"),
    ("session", "shared"): lambda st, s: shared_racy(s, "session"),
    ("request", "context"): lambda st, s: Expectation(CORRECT_VERDICT, "kept per request in a context variable, "
                                                                        "per thread and per greenlet"),
    ("request", "thread"): _thread_local,
    ("request", "process"): _one_per_process,
}


def _seed(st, s: Scenario) -> Expectation:
    return in_process(s, race=DUPLICATES, race_reason="switch between the increment and the return: two requests "
                      "read the later value, the one between is skipped, none is lost")


def _postgres_for_update(st, s: Scenario) -> Expectation:
    if s.in_process_concurrency == "greenlets-unpatched" or s.imported_before_patch:
        how = ("psycopg does not yield unpatched" if s.in_process_concurrency == "greenlets-unpatched" else
               "the app imported psycopg in the master, before the worker patched select, and psycopg picks how "
               "it waits at import")
        return Expectation(
            _v(ERROR), "a greenlet holding the row lock yields; the next one's SELECT ... FOR UPDATE blocks the "
            f"whole thread ({how}), so the holder never commits: lock_timeout", True,
            cause=LOCK_TIMEOUT,
        )
    return Expectation(CORRECT_VERDICT, f"{POSTGRES}: SELECT ... FOR UPDATE holds the row lock from the read "
                                        "to the commit; the next reader waits")


def _postgres_serializable(st, s: Scenario) -> Expectation:
    if s.in_process_concurrency == "greenlets-unpatched":
        # Whether a request runs out of tries is chance, not a window the lab can widen: full-jitter backoff spreads
        # the contenders, and in one of three full runs every request of 2,000 got through (max 13 s, 20 s allowed).
        return Expectation(
            CORRECT_VERDICT, "every greenlet of the thread reads in the window before any commits, so each round "
            "commits one and refuses the rest (the worker's pool is unbounded: a bounded one deadlocks it); no "
            "increment is lost, but with ~50 contending a request may run out of tries (retries-exhausted)",
            cause=RETRIES_EXHAUSTED, maybe=frozenset({ERROR}),
        )
    return Expectation(CORRECT_VERDICT, f"{POSTGRES}: SERIALIZABLE refuses to commit the second of two that "
                                        "read the same value (40001); that request retries, and a small pool per "
                                        "process keeps the contenders few")


def _manager(st, s: Scenario) -> Expectation | None:
    if s.in_process_concurrency == "greenlets":
        return Expectation(
            _v(ERROR), "multiprocessing's Connection reads a socket gevent made non-blocking: EAGAIN", cause=EAGAIN
        )
    return None


def _big_cookie(st, s: Scenario) -> Expectation:
    return Expectation(
        _v(LOST_UPDATES),
        "past 4096 bytes (name + value) the browser ignores the new cookie and the state stops advancing; "
        "the load generator applies the browser's rule (checked against Chromium in tests/browser)",
    )


# The named exceptions: what a library or a protocol does beyond its traits. None: the traits' rule applies.
EXCEPTIONS = {
    "seed-someobj": _seed,
    "seed-someobj-no-window": lambda st, s: in_process(s, atomic_in_process=True, safe_reason=NO_SWITCH),
    "postgres-for-update": _postgres_for_update,
    "postgres-serializable": _postgres_serializable,
    "mp-manager": _manager,
    "cookie-session-big": _big_cookie,
    "cache-memcached-get-set": _memcached_client_shared,
    "cache-memcached-inc": _memcached_client_shared,
}


def expect(strategy: str, s: Scenario) -> Expectation:
    """The expected verdict for one cell: the fork-safety rows' own rules, else a named exception, else the rule
    of the strategy's traits - a store that is a file of the host counting per instance under several."""
    from .expected_fork import RULES as FORK_RULES  # fork safety and gunicorn's stash: a module of their own

    if strategy in FORK_RULES:
        return FORK_RULES[strategy](s)
    st = STRATEGIES[strategy] if strategy in STRATEGIES else None
    if st is None or (st.lives, st.updates) not in TRAIT_RULES and strategy not in EXCEPTIONS:
        raise KeyError(f"no expected verdict declared for strategy {strategy!r}")
    if st.host_files and s.instances > 1:
        return _across_hosts(st, s)
    exception = EXCEPTIONS.get(strategy)
    found = exception(st, s) if exception else None
    return found if found is not None else TRAIT_RULES[st.lives, st.updates](st, s)


def expectation_for(strategy: str, s: Scenario, race_window: str) -> Expectation:
    """The expectation of one cell as run: not judged where it rests on a race window not pinned."""
    e = expect(strategy, s)
    if race_window != "yield" and e.rests_on_window:
        kept = e.verdict & {DIVERGES}  # each process counting on its own does not rest on any window
        if not kept:
            return Expectation(frozenset({ANY}), f"not judged: rests on the 'yield' race window ({e.reason})")
        return Expectation(kept, f"{e.reason}; only the divergence is judged: the rest rests on the 'yield' race "
                           "window", maybe=e.verdict - kept)
    return e
