"""A counter in gunicorn's own shared store: ``gunicorn.dirty.stash`` (gunicorn >= 25).

The stash is a set of key-value tables held in the memory of gunicorn's *dirty arbiter*, a process the
master forks when ``dirty_workers`` and ``dirty_apps`` are set (gunicorn.conf.py does, from the scenario's
DIRTY_WORKERS). Every HTTP worker of that master reaches it over a Unix socket with ``get``/``put``: one
store for the processes of one master. What its source promises (gunicorn/dirty/stash.py): the tables
are ephemeral - "if the arbiter restarts, all data is lost" - and there is no atomic read-modify-write,
so a count is a get, a window, then a put. Other masters (other instances) have stashes of their own.
(Its docstring also shows a ``stashes = [...]`` attribute on a dirty app whose tables are "auto-created on
arbiter start"; gunicorn 27.0.1's arbiter never reads it. Nothing is lost here: ``put`` makes a table.)
"""

from __future__ import annotations

from contextlib import contextmanager

from ..errors import SidecarUnreachable
from .base import CounterStrategy

TABLE = "lab-counters"  # made by the first put; a get before it answers the default
NO_ARBITER = ("gunicorn-stash unreachable: no dirty arbiter in this server (it needs gunicorn with dirty_workers "
              "and dirty_apps set)")


@contextmanager
def _stash():
    from gunicorn.dirty import stash

    try:
        stash.get_stash_socket_path()
    except stash.StashError:
        raise SidecarUnreachable(NO_ARBITER) from None
    try:
        yield stash
    except stash.StashError as exc:  # the arbiter is gone (a restart) or did not answer
        raise SidecarUnreachable(f"gunicorn-stash unreachable: {exc}") from exc


def _get(stash, key: str) -> int:
    """``stash.get(table, key, default)`` promises the default for a missing key. In gunicorn 27.0.1 the
    arbiter's "key not found" loses its type on the way (DirtyError.to_dict sends the class name, not the
    error_type the arbiter set), so the client raises a plain StashError("Key not found: ...") instead."""
    try:
        return int(stash.get(TABLE, key, 0) or 0)
    except stash.StashError as exc:
        if str(exc).startswith("Key not found"):
            return 0
        raise


class StashGetPut(CounterStrategy):
    def incr(self, key):
        with _stash() as stash:
            value = _get(stash, key)
            self.window()
            stash.put(TABLE, key, value + 1)
        return value + 1

    def read(self, key):
        with _stash() as stash:
            return _get(stash, key)


STRATEGIES = [
    StashGetPut("gunicorn-stash", "counter", "gunicorn.dirty.stash get, then put value+1 (held by the dirty arbiter)",
                ("gunicorn-stash",),
        lives="store", updates="racy", store="stash"),
]
