"""What a state strategy is.

Each module in this package declares one way of holding state, in the spirit of
gunicorn's one file per worker class. A strategy has a *check*, which says how
the load generator exercises it and which checker judges it:

- ``counter``: every request increments a counter named by ``?key=`` and gets
  the new value back (Jepsen's unique-ids/counter); ``read`` returns it.
- ``session``: every user increments its own counter in its session and must see
  1, 2, 3 ... and nothing of anyone else's.
- ``same-user``: many concurrent requests carry one user's session; judged as a
  counter (does the session keep every increment?).
- ``isolation``: a request stores a token, yields, reads it back.
- ``nonce``: a request writes its token (a nonce) to a store under a key of its own, yields, reads it
  back through the same client; judged for answers that belong to another request (``crossed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHECKS = ("counter", "session", "same-user", "isolation", "nonce")


@dataclass
class Strategy:
    name: str
    check: str
    summary: str
    needs: tuple[str, ...] = ()  # sidecars: redis, memcached, manager, postgres
    question: int | None = None  # the QUESTIONS.md row it answers
    # What it is, for the runner's expected verdicts (rules over these traits x the scenario's: workerlab/expected.py):
    # where the state lives (process | store | session | request), how a request updates it (process/store:
    # atomic | locked | racy, with an explicit window | racy-socket, racy-file: a library's get+set, interleaving
    # only where that I/O yields; session: per-user | shared; request: context | thread | process), what holds it
    # in words, and - for a store that is a file of the host (SQLite, a cache or session folder) - which files.
    lives: str = ""
    updates: str = ""
    store: str = ""
    host_files: str = ""
    # Filled in by the app factory.
    res: object = field(default=None, repr=False)

    def bind(self, res) -> None:
        self.res = res

    @property
    def window(self):
        return self.res.window


class CounterStrategy(Strategy):
    def incr(self, key: str) -> int:
        raise NotImplementedError

    def read(self, key: str) -> int:
        raise NotImplementedError


class SessionStrategy(Strategy):
    """Per-user counters kept in (or keyed by) the user's session."""

    def incr(self, client: str) -> dict:
        raise NotImplementedError

    def read(self) -> dict:
        raise NotImplementedError


class IsolationStrategy(Strategy):
    def echo(self, token: str) -> str:
        raise NotImplementedError
