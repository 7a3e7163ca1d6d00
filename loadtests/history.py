"""One history entry per request, as the load generator recorded it.

Fields (JSON lines, one object per request, in ``history/<cell>.jsonl``):

- ``client``: the locust user that sent it (``u0``, ``u1`` ...)
- ``req``: request number, unique within the cell
- ``op``: ``incr`` | ``read`` | ``echo``; ``phase``: ``load`` or ``final`` (quiescent reads after the load);
  ``op``/``phase`` ``exited``: not a request - a process that served load, answered no read at rest and no
  longer exists on the driver's host (``pid``, ``instance``; native runs only)
- ``invoke`` / ``complete``: seconds since the cell started (monotonic clock)
- ``status``: HTTP status, 0 when the request failed without one
- ``value``: what came back (counter value or echoed token); ``sent``: the token sent (isolation)
- ``owner``: the session's owner as the server saw it (session checks)
- ``pid``, ``tid``, ``greenlet``, ``instance``, ``worker_class``: who served it (``tid``: the OS thread's
  native id - under patched gevent, threading.get_ident() would name the greenlet)
- ``error``: the error text for a failed request
- ``unanswered``: true for a request still in flight when its cell ended (sent, never answered; status 0)
- ``worker``: the locust worker that sent it, when the load came from workers (loadtests/distributed.py);
  ``clock_error``: a worker on another machine: how far its clock may be off the master's - ``invoke`` and
  ``complete`` are widened by it
"""

from __future__ import annotations

import json
from pathlib import Path

FIELDS = (
    "client", "req", "op", "phase", "invoke", "complete", "status", "value", "sent", "owner",
    "pid", "tid", "greenlet", "instance", "worker_class", "error", "unanswered", "worker", "clock_error",
)


def ok(entry: dict) -> bool:
    """Answered with success (2xx: a user's app may answer 201) and no error."""
    status = entry.get("status")
    return isinstance(status, int) and 200 <= status < 300 and entry.get("error") is None


# Examples a result keeps of each kind (a history can hold a million entries).
MAX_EXAMPLES = 3


def brief(entry: dict) -> dict:
    """The fields of an entry an example shows."""
    keys = ("client", "req", "op", "invoke", "complete", "status", "value", "sent", "owner", "pid", "instance", "error")
    return {k: entry.get(k) for k in keys if entry.get(k) is not None}


def process_of(entry: dict) -> str:
    """A server process, named so that pids from different instances never collide."""
    return f"{entry.get('instance')}/{entry.get('pid')}"


def write_history(path: Path, entries: list[dict]) -> None:
    with open(path, "w") as f:
        for entry in entries:
            f.write(json.dumps(entry, separators=(",", ":")))
            f.write("\n")


def read_history(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def exited_entries(entries: list[dict], alive, now: float, req_ids) -> list[dict]:
    """One ``exited`` entry per process that served load, answered no read at rest and is not ``alive``
    (a fork per request, a recycled worker): the checkers need not wait for it, and its own state is gone.
    ``alive(process)`` answers for a process as ``process_of`` names it; ``req_ids`` gives the entries' ids."""
    read = {process_of(e) for e in entries if e.get("phase") == "final" and e.get("status") == 200}
    served = {process_of(e): e for e in entries if e.get("phase") == "load" and isinstance(e.get("pid"), int)}
    gone = [e for process, e in served.items() if process not in read and not alive(process)]
    return [{"client": "driver", "req": next(req_ids), "op": "exited", "phase": "exited", "invoke": now,
             "complete": now, "status": 0, "pid": e["pid"], "instance": e.get("instance")} for e in gone]
