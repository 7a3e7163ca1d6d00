"""The expected verdict of every (strategy x fault) cell, with a one-line reason, like
workerlab/expected.py does for the matrix."""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.verdicts import ANY, ERROR, LEAKS, LOSES_ACKED_WRITES, LOST_UPDATES, OVER_COUNTS, RESETS, SURVIVES
from loadtests.verdicts import format_fault_verdict as fault_label

from ..expected import expect
from ..scenarios import Scenario
from .coverage import NGINX, Route, resent_by
from .table import SCOPES, WHERE, Fault


@dataclass(frozen=True)
class FaultExpectation:
    verdict: frozenset[str] | None  # None: not applicable (the cell is skipped)
    reason: str
    control: bool = False  # the fault hits a store the strategy does not use: a check of the lab, not a finding

    @property
    def label(self) -> str:
        if self.verdict is None:
            return "n/a"
        return fault_label(self.verdict)


def _v(*words: str) -> frozenset[str]:
    return frozenset(words)


PROCESS_RESET = {
    "worker-kill": "the killed worker's globals die with it; the master forks a fresh one that counts from zero",
    "worker-recycle": "max_requests retires workers all run long, each taking its count with it",
    "graceful-reload": "HUP replaces every worker: new processes, fresh module globals",
    "master-restart": "a new master forks new workers: fresh module globals",
}
STASH = {  # gunicorn.dirty.stash: tables in the dirty arbiter's memory
    "process": (SURVIVES, "the stash lives in the dirty arbiter, which outlives the HTTP workers (a HUP reloads "
                          "the dirty workers, not the arbiter)"),
    "master": (RESETS, "the stash lives in the dirty arbiter's memory; a new master forks a new, empty one (its "
                       "source: 'if the arbiter restarts, all data is lost')"),
}


def expect_fault(strategy: str, fault: Fault, scenario: Scenario, route: Route = NGINX) -> FaultExpectation:
    """The expected fault verdict of one (strategy, fault) cell under ``scenario``, the load going by ``route``,
    with its reason. The route changes which requests a restart drops, never what survives it."""
    scope, where = SCOPES[strategy]
    if fault.needs_gunicorn and scenario.server != "gunicorn":
        return FaultExpectation(None, "needs gunicorn workers (this scenario runs the Flask dev server)")
    if fault.only and strategy not in fault.only:
        return FaultExpectation(None, f"applies only to {', '.join(fault.only)}")
    if fault.hits == "nginx" and route.direct:
        return FaultExpectation(None, "the load goes straight to gunicorn, not through nginx")
    if where == "stash" and not scenario.has_stash:
        return FaultExpectation(None, "no dirty arbiter in this scenario, so no stash to keep or lose")
    base = expect(strategy, scenario)
    confound = base.verdict & {LOST_UPDATES, LEAKS, ERROR}
    if confound:
        return FaultExpectation(_v(ANY), f"not judged: the scenario alone already gives {'+'.join(sorted(confound))}"
                                           f" ({base.reason})")
    resender = resent_by(scenario, route) if fault.kills_written_request and scope == "store" else None
    if resender:
        return FaultExpectation(_v(OVER_COUNTS), f"the killed request had already counted; {resender} resends it, "
                                                   "and it counts again: a retried non-idempotent GET")
    if fault.hits in STASH and where == "stash":
        word, why = STASH[fault.hits]
        return FaultExpectation(_v(word), why)
    if fault.hits in ("process", "master"):
        if where == "process":
            return FaultExpectation(_v(RESETS), PROCESS_RESET[fault.name])
        if where == "cookie":
            return FaultExpectation(_v(SURVIVES), "the state travels in the user's cookie, not in the worker")
        outside = "the worker" if fault.hits == "process" else "gunicorn's processes"
        return FaultExpectation(_v(SURVIVES), f"the state lives in {WHERE[where]}, outside {outside}")
    if fault.hits == "sqlite":
        return FaultExpectation(_v(SURVIVES), "the killed transaction never committed and rolls back; "
                                                "every committed increment is in the WAL")
    if fault.hits == "nginx":
        return FaultExpectation(_v(SURVIVES), "nginx holds no state; old nginx workers finish their requests")
    if not fault.used_by(strategy):
        return FaultExpectation(_v(SURVIVES), f"control: the state lives in {WHERE[where]}, not in {fault.hits}",
                                control=True)
    if fault.name == "redis-restart":
        what = ("users start again from 1 (one whose request spans the restart writes the whole session "
                "back)") if scope == "session" else "the counter starts again from 0"
        return FaultExpectation(_v(RESETS), f"no persistence: redis comes back empty; {what}")
    if fault.name == "redis-restart-aof-always":
        return FaultExpectation(_v(SURVIVES), "each write is fsynced to the append-only file before the reply")
    if fault.name == "redis-restart-aof-everysec":
        return FaultExpectation(_v(SURVIVES), "a killed redis loses nothing it wrote: the kernel has it; only a "
                                                "host crash loses the last second not yet fsynced")
    if fault.name == "redis-host-crash-aof-always":
        return FaultExpectation(_v(SURVIVES), "fsync before every reply: what a host crash loses was never "
                                                "acknowledged")
    if fault.name == "redis-host-crash-aof-everysec":
        what = "users step back" if scope == "session" else "the counter steps back"
        return FaultExpectation(_v(LOSES_ACKED_WRITES), f"a host crash loses what redis wrote but had not fsynced: "
                                                          f"up to ~1 s of acknowledged writes; {what}")
    if fault.name == "memcached-restart":
        return FaultExpectation(_v(RESETS), "memcached keeps everything in memory: it comes back empty")
    if fault.name == "memcached-evict":
        return FaultExpectation(_v(RESETS), "filler writes push the counter key out of a 2 MB memcached (LRU); "
                                              "the next incr finds nothing and starts again from 1")
    raise KeyError(f"no expected verdict for ({strategy}, {fault.name})")  # pragma: no cover
