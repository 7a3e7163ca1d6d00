"""The mutants, each declared once: the app's broken twin it arms (labapp/mutants.py says what it breaks),
the cell whose verdict it must flip, and the rule of the judge that must say no there - or, for a fault
cell, the injector that replaces the fault's (a fault that is not injected)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from loadtests.verdicts import ERROR, INCONCLUSIVE, LEAKS, LOST_UPDATES, OVER_COUNTS, UNANSWERED

from ..faults import FAULTS, QUICK, Fault, Injection
from ..faults.injectors import server_id
from ..matrix import QUICK_REQUESTS, QUICK_USERS, RunSettings
from ..strategies import MUTATIONS

# Every cell of a mutants run, mutated or clean: small, so the whole run takes a few minutes.
SETTINGS = RunSettings(requests=QUICK_REQUESTS, users=QUICK_USERS, quick=True)  # --quick's, and its cell limit
FAULT_SHAPE = QUICK  # a fault cell's paced load (workerlab faults --quick)


@dataclass(frozen=True)
class Mutant:
    name: str
    scenario: str  # the runtime model of its cell (compose/scenarios/<name>.env)
    word: str  # the verdict word that must show where the cell's expected verdict does not
    count: str | None = None  # and the checker's count that must be above 0: which rule said no

    @property
    def strategy(self) -> str:
        return MUTATIONS[self.name].strategy

    @property
    def breaks(self) -> str:
        return MUTATIONS[self.name].breaks

    @property
    def cell(self) -> str:
        return f"{self.scenario}/{self.strategy}"

    @property
    def rule(self) -> str:
        return self.word + (f" ({self.count} > 0)" if self.count else "")


MUTANTS: dict[str, Mutant] = {m.name: m for m in (
    # gthread-2x8: threads interleave in the race window ('yield'), so a non-atomic increment shows.
    Mutant("incr-as-get-set", "gthread-2x8", LOST_UPDATES, "lost"),
    Mutant("hang-past-limit", "gthread-2x8", UNANSWERED, "unanswered"),
    # sync-x4: four processes - per-process counters (naive-global: diverges, judged per process), and the
    # shared ones read at rest from every process.
    Mutant("skip-a-number", "sync-x4", INCONCLUSIVE),  # not 1..n per process: not a counter per process
    Mutant("worker-resets", "sync-x4", LOST_UPDATES, "duplicates_within_process"),
    Mutant("stale-final-read", "sync-x4", LOST_UPDATES, "lost"),
    Mutant("token-of-another-request", "sync-x4", LEAKS, "leaked_responses"),
    Mutant("session-of-another-user", "sync-x4", LEAKS, "leaked_responses"),
    # sync-x1: one process serving one request at a time - whatever goes wrong is the mutant's.
    Mutant("duplicate-value", "sync-x1", LOST_UPDATES, "duplicates"),
    Mutant("final-read-fails", "sync-x1", INCONCLUSIVE, "final_reads_failed"),
    Mutant("answer-without-value", "sync-x1", ERROR, "malformed"),
    Mutant("over-count", "sync-x1", OVER_COUNTS),
)}


def inject_nothing_but_observe_redis(inj: Injection) -> None:
    """Marks the moment and reads redis's run id before and after, as the real restart does - and kills nothing."""
    inj.mark(pid=inj.stack.child("redis").proc.pid, signal="none", server_id_before=server_id(inj.stack, "redis"))
    inj.info["server_id_after"] = server_id(inj.stack, "redis")


@dataclass(frozen=True)
class FaultMutant:
    """A fault cell whose fault is replaced by an injector that does not inject it: the cell must be an error
    (the fault's evidence, workerlab/faults/evidence.py, is missing), never the verdict the history alone gives."""

    name: str
    scenario: str
    fault: str  # the fault whose injector is replaced (workerlab/faults/table.py)
    strategy: str  # a judged cell whose history looks the same with or without the fault
    inject: Callable[[Injection], None]
    breaks: str
    word: str = ERROR
    rule = "error (the fault's evidence is missing)"

    @property
    def cell(self) -> str:
        return f"{self.scenario}/{self.fault}/{self.strategy}"

    def mutated(self) -> Fault:
        return replace(FAULTS[self.fault], inject=self.inject)


FAULT_MUTANTS: dict[str, FaultMutant] = {m.name: m for m in (
    # An append-only redis that fsyncs every write survives a restart: the history is the same whether redis
    # was restarted or not, so only the evidence (another redis run id after the fault) can tell.
    FaultMutant("fault-not-injected", "sync-x4", "redis-restart-aof-always", "redis-incr",
                inject_nothing_but_observe_redis,
                "the redis restart is not injected: its injector marks the moment and reads redis's run id "
                "before and after, and kills nothing"),
)}
ALL: dict[str, Mutant | FaultMutant] = {**MUTANTS, **FAULT_MUTANTS}
