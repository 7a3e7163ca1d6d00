"""What the runner and the driver process say to each other: the plan, its cells and the event lines.

Pure: the standard library only, so the runner (which must not import locust: it monkey-patches the
process with gevent on import) and the driver share one declaration of every key.

The runner writes a `Plan` to plan.json and starts `python -m loadtests.driver plan.json`; the driver
runs the cells one after another and prints one event per line on its stdout:

    cell-wait    {cell}          plan.step: waiting for a line on stdin before the cell (bench)
    cell-start   {cell}
    load-start   {cell, t0}      history times count from t0 (time.monotonic(): one clock for the machine)
    cell-loaded  {cell, t}       the load phase is over (t: seconds since t0); with plan.hold_after_load
                                 the driver waits for a line on stdin before its final reads (faults)
    cell-done    {cell, stats}
    cell-error   {cell, error}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

EVENTS = ("cell-wait", "cell-start", "load-start", "cell-loaded", "cell-done", "cell-error")
GO = "go\n"  # what the runner writes on the driver's stdin to let it go on

# check kind -> the locustfile's user class (the runner names them without importing locust)
USER_CLASS_NAMES = {
    "counter": "CounterUser",
    "same-user": "SameUserUser",
    "session": "SessionUser",
    "isolation": "IsolationUser",
    "nonce": "NonceUser",
    "path": "PathUser",  # bench only: plain GETs, nothing to judge
    "unique": "DeclaredUser",  # a user's declared endpoint only: every answer's value distinct
}
# Checks whose state is read at rest after the load (a counter's final value).
READ_AT_REST = ("counter", "same-user")

DEFAULT_MASTER_BIND = "127.0.0.1:5557"  # where a run's driver listens for its locust workers (locust's own port)

# After a cell that hit its time limit, requests the server accepted may still be running.
DRAIN_AFTER_TIMEOUT_S = 3.0


@dataclass
class CellPlan:
    id: str
    strategy: str
    check: str
    key: str
    requests: int
    time_limit: float
    file: str = ""  # history/<file>.jsonl; default: the strategy
    users: int | None = None  # concurrent users for this cell; None: the plan's
    per_user_rps: float | None = None  # paced users (faults); None: as fast as answers come
    scope: str | None = None  # where the state lives (faults' final-read rule): process | store | session
    record: bool = True  # False: count requests, record nothing (bench: the cost of recording)
    path: str | None = None  # check "path": the URL path to GET
    rate: float | None = None  # fixed-rate load (loadtests/arrivals.py): scheduled starts a second; None: closed
    arrivals: str = "constant"  # with rate: constant or poisson
    # A user's declared endpoint (loadtests/declared.py): the request sent, and a counter's read at rest
    # ({"path", "value"}; None: no read at rest). None: the lab's own /s/<strategy>/ endpoints.
    request: dict | None = None
    read: dict | None = None
    # Faults: a file; while it exists the load goes on past its budget (until the fault has run its course: a
    # killed worker's replacement has served). The fault runner creates it before the plan runs and removes it;
    # the time limit still ends the load. Local users only (not with plan.workers).
    hold_load: str | None = None

    def __post_init__(self):
        if self.check not in USER_CLASS_NAMES:
            raise ValueError(f"cell {self.id}: unknown check {self.check!r}")
        self.file = self.file or self.strategy


@dataclass
class Plan:
    host: str  # where the load goes (nginx, or the first instance with --direct)
    instances: list[str]  # every app instance, for the final reads
    users: int
    out: str  # the folder for history/<file>.jsonl
    cells: list[CellPlan] = field(default_factory=list)
    step: bool = False  # wait for a line on stdin before each cell (bench)
    hold_after_load: bool = False  # wait for a line on stdin between the load and the final reads (faults)
    cpu_affinity: list[int] | None = None  # pin the driver to these CPUs (bench)
    nice: int = 0  # run the driver at this nice value (bench --nice; negative needs root)
    local_pids: bool = True  # the app's pids are this host's (native): an unread process can be seen to have exited
    served_by_header: str | None = None  # a declared app: the answer header that names who served it, if any
    # Load from locust workers (loadtests/distributed.py): 0 - the driver's own users; N - the driver is a locust
    # master at master_bind, waits up to workers_wait_s for N workers and judges their entries as one history.
    workers: int = 0
    master_bind: str = DEFAULT_MASTER_BIND
    local_workers: bool = False  # the runner starts the N workers on this machine (workerlab/driver.py)
    workers_wait_s: float = 60.0
    more_plans: bool = False  # the run has another plan after this one: workers wait for its master

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    def cell(self, cell_id: str) -> CellPlan:
        return next(c for c in self.cells if c.id == cell_id)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        known = {f.name for f in fields(cls)}
        plan = cls(**{k: v for k, v in data.items() if k in known and k != "cells"})
        cell_keys = {f.name for f in fields(CellPlan)}
        plan.cells = [CellPlan(**{k: v for k, v in c.items() if k in cell_keys}) for c in data.get("cells", [])]
        return plan

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls.from_dict(json.loads(Path(path).read_text()))


class BadAddress(ValueError):
    """A HOST:PORT that is not one."""


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets: `[::1]:5557`) as (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadAddress(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:5557)")
    return host, int(port)


def shares(total: int, weights: list[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainders first): a cell's budget over its workers,
    by the users locust gave each. Sums to `total` whenever any weight is above 0."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * len(weights)
    exact = [total * w / whole for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def event_line(event: str, **fields_) -> str:
    if event not in EVENTS:
        raise ValueError(f"unknown driver event {event!r}")
    return json.dumps({"event": event, **fields_})


def parse_event(line: str) -> dict | None:
    """One driver event, or None for a line that is not one (the driver's stray output)."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") not in EVENTS:
        return None
    return event
