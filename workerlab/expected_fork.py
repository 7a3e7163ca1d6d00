"""Expected verdicts of the fork-safety rows (clients and threads made at import, and their fixes) and of
gunicorn's own shared store (``gunicorn-stash``): a topic of its own beside workerlab/expected.py, which
asks here for these strategies."""

from __future__ import annotations

import re
from dataclasses import replace

from loadtests.checkers import NOT_READ_BACK
from loadtests.verdicts import CROSSED, DIVERGES, ERROR, LOST_UPDATES, UNANSWERED

from .expected import CORRECT_VERDICT, Expectation, _v, shared_racy
from .scenarios import Scenario

# The causes an expected error names (the app's JSON "error: message", or the checker's own text).
NO_ARBITER = r"^sidecar-unreachable: gunicorn-stash unreachable: no dirty arbiter"
# python-memcached swallows a reply of the wrong kind (the read answers nothing: not read back); a reply torn
# between two readers leaves a "VALUE ..." line it cannot split (ValueError).
PYTHON_MEMCACHED_SHARED = "^(" + re.escape(NOT_READ_BACK) + "$|internal: ValueError$)"
# What pymemcache raises when one socket serves several readers: a reply of the wrong kind or for another key
# (MemcacheUnknownError, KeyError, ValueError), a reply another reader took (timed out), a socket another
# thread closed (Bad file descriptor, AttributeError on its None), gevent refusing a second reader
# (ConcurrentObjectUseError, an AssertionError, or "closed in another greenlet"); and a get whose first line
# read is the END that closed another's reply, which pymemcache takes for a miss (not read back: no value at
# all, never another's).
PYMEMCACHE_SHARED = ("^(" + re.escape(NOT_READ_BACK) + "$"
                     r"|internal: (MemcacheUnknownError|KeyError|ValueError|AttributeError|AssertionError"
                     r"|ConcurrentObjectUseError)$"
                     r"|sidecar-unreachable: memcached unreachable: .*(timed out|Bad file descriptor"
                     r"|closed in another greenlet|MemcacheUnexpectedCloseError))")


# A PostgreSQL session shared by processes (one socket): a reply read by the wrong reader leaves psycopg with a
# result that is not its command's (SQLAlchemy: a SELECT that "does not return rows"; psycopg: "received 0
# results", "got no result"; libpq: a data row "without prior row description", which another read), or the
# read gets another request's row or none (not read back); two processes each prepare psycopg's first statement
# ("_pg3_0") on the one session (DuplicatePreparedStatement, a ProgrammingError), or one binds its parameters to the
# statement of that name another prepared with a different count (a ProtocolViolation, which psycopg files under
# OperationalError, so the app reports it as the server unreachable); once a worker closed it, the
# others find the session gone; a request whose reply another process read is never answered (the load generator
# gives up after 30 s).
SQLALCHEMY_SHARED = ("^(" + re.escape(NOT_READ_BACK) + "$"
                     "|internal: (ResourceClosedError|InternalError|DatabaseError|ProgrammingError)$"
                     "|sidecar-unreachable: postgres unreachable: (OperationalError: .*server closed the connection"
                     r"|ProtocolViolation: bind message supplies \d+ parameters, but prepared statement)"
                     r"|TimeoutError: no answer within \S+ s$)")  # loadtests/wire.py's network timeout


# The lazy fixes under gevent's --preload: their lock, made at import, is the real one (the reason goes on with
# what the first request does while it holds it).
FIRST_USE_LOCK_TRAP = ("the fix falls into gevent's trap: its first-use lock is a real threading.Lock made at import, "
                       "before the worker patched; the first request holds it while ")


def import_redis(s: Scenario) -> Expectation:
    return Expectation(CORRECT_VERDICT, "redis-py's pool remembers the pid that made its connections and makes new "
                                        "ones in any other process; between threads it hands each its own")


def import_pymemcache(s: Scenario) -> Expectation:
    why = ("pymemcache checks the key of every reply it reads and raises when it is another's: a crossed answer "
           "shows as an error, never as a wrong value")
    if s.imported_before_patch and s.processes == 1:
        return Expectation(CORRECT_VERDICT, "the socket was opened at import, before the worker patched: a blocking "
                                            "socket no greenlet yields on, in one process - one request at a time")
    if s.app_made_before_fork:
        return Expectation(_v(ERROR), f"the socket opened at import is copied into every process, and a reply goes "
                                      f"to whichever reads first; {why}", cause=PYMEMCACHE_SHARED)
    if s.in_process_concurrency == "threads":
        return Expectation(_v(ERROR), f"one socket shared by the threads of a process (a Client is not "
                                      f"thread-safe); {why}", cause=PYMEMCACHE_SHARED)
    if s.in_process_concurrency == "greenlets":
        return Expectation(_v(ERROR), "one patched socket shared by the greenlets of a process: gevent refuses a "
                                      "second reader, and replies go astray", cause=PYMEMCACHE_SHARED)
    return Expectation(CORRECT_VERDICT, "a socket per process, used by one request at a time")


def import_python_memcached(s: Scenario) -> Expectation:
    if s.app_made_before_fork and s.in_process_concurrency == "none":
        return Expectation(_v(CROSSED, ERROR), "the importing thread's socket is copied into every process, which "
                                               "serves on that same thread; python-memcached does not check the key "
                                               "of a reply, so a request gets another's value (or none, or a "
                                               "torn line)",
                           cause=PYTHON_MEMCACHED_SHARED)
    if s.app_made_before_fork:
        return Expectation(CORRECT_VERDICT, "the Client is a threading.local: the worker threads that serve each "
                                            "open a socket of their own; only the importing thread had one")
    return Expectation(CORRECT_VERDICT, "a socket per thread (per greenlet when patched), opened in the process "
                                        "that serves")


def lazy_pymemcache(s: Scenario) -> Expectation:
    return Expectation(CORRECT_VERDICT, "each process makes its own pool on first use, after any fork; the pool "
                                        "lends each thread or greenlet a connection of its own")


def import_thread(s: Scenario) -> Expectation:
    if s.app_made_before_fork:
        return Expectation(_v(LOST_UPDATES), "the refresher thread runs in the process that made the app only: "
                                             "fork copies the calling thread alone, so the serving processes' copy "
                                             "never changes (gunicorn #2779, #1666)")
    return Expectation(CORRECT_VERDICT, "each process made the app, so each runs its own refresher")


def lazy_thread(s: Scenario) -> Expectation:
    if s.imported_before_patch:
        return Expectation(_v(UNANSWERED), f"{FIRST_USE_LOCK_TRAP}it starts the refresher (Thread.start waits: a "
                                           "switch to the refresher's greenlet), whose first step, taking its "
                                           "redis client, needs the same lock and blocks the worker's only thread "
                                           "on it, and no request is answered")
    return Expectation(CORRECT_VERDICT, "each process starts its own refresher on first use, after any fork")


def import_sqlalchemy(s: Scenario) -> Expectation:
    shared = ("the connection the engine opened at import stays in its pool and is copied into every process: "
              "SQLAlchemy's pool never looks at the pid, so the processes talk over one PostgreSQL session and each "
              "reads whichever reply comes - another request's row (crossed), another command's result (an error), "
              "or none; a process whose reply another read waits for it, psycopg has no read timeout (no answer)")
    if s.forks_per_request:
        return Expectation(_v(CROSSED, ERROR), f"{shared}. Every fork gets a fresh copy of the parent's connection, "
                                               f"which the parent never uses", cause=SQLALCHEMY_SHARED,
                           maybe=_v(UNANSWERED))
    if s.app_made_before_fork and s.processes > 1:
        return Expectation(_v(ERROR), f"{shared}. Until one worker's pool finds the connection broken (its ROLLBACK, "
                                      f"as a request hands it back, read another's reply) and closes it: that ends "
                                      f"the session for every worker, and each opens its own - so a cell crosses "
                                      f"0 to 53 answers (10 cells measured, one with none)", cause=SQLALCHEMY_SHARED,
                           maybe=_v(CROSSED, UNANSWERED))
    if s.app_made_before_fork:
        return Expectation(CORRECT_VERDICT, "one worker uses the connection the master opened at import, and the "
                                            "master never does; the pool lends it to one request at a time")
    return Expectation(CORRECT_VERDICT, "each process made its own engine; its pool lends a connection to one "
                                        "request at a time")


def lazy_sqlalchemy(s: Scenario) -> Expectation:
    if s.imported_before_patch:
        return Expectation(_v(UNANSWERED), f"{FIRST_USE_LOCK_TRAP}it sets the engine up: psycopg looks the "
                                           "database's host name up (socket.getaddrinfo, patched by then: a switch "
                                           "to the hub), and the set-up lasts the race window's first use, as a "
                                           "network's lookup and handshake do; the next request blocks the "
                                           "worker's only thread on the lock, and no request is answered. Without "
                                           "the window only a request that comes during the lookup does, and a "
                                           "database named by its address is not looked up",
                           rests_on_window=True)
    return sqlalchemy_fixed(s)


def sqlalchemy_fixed(s: Scenario) -> Expectation:
    return Expectation(CORRECT_VERDICT, "each process opens its own connections after any fork (the engine made "
                                        "on first use, or the inherited pool dropped with dispose(close=False)); "
                                        "the pool lends each to one request at a time")


def gunicorn_stash(s: Scenario) -> Expectation:
    if not s.has_stash:
        return Expectation(_v(ERROR), "no dirty arbiter in this server, so no stash (it needs gunicorn with "
                                      "dirty_workers and dirty_apps)", cause=NO_ARBITER)
    one_master = shared_racy(replace(s, instances=1), "stash")  # the processes of one master share one
    if s.instances > 1:
        return Expectation(one_master.verdict | {DIVERGES}, f"each instance's master holds a stash of its own; "
                                                            f"within one, {one_master.reason}",
                           one_master.rests_on_window)
    return one_master


RULES = {
    "import-redis": import_redis,
    "import-pymemcache": import_pymemcache,
    "import-python-memcached": import_python_memcached,
    "lazy-pymemcache": lazy_pymemcache,
    "import-thread": import_thread,
    "lazy-thread": lazy_thread,
    "import-sqlalchemy": import_sqlalchemy,
    "lazy-sqlalchemy": lazy_sqlalchemy,
    "dispose-sqlalchemy": sqlalchemy_fixed,
    "gunicorn-stash": gunicorn_stash,
}
