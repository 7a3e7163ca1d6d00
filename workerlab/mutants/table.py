"""The mutants, each declared once: the app's broken twin it arms (labapp/mutants.py says what it breaks),
the cell whose verdict it must flip, and the rule of the judge that must say no there."""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.verdicts import ERROR, INCONCLUSIVE, LEAKS, LOST_UPDATES, OVER_COUNTS, UNANSWERED

from ..matrix import RunSettings
from ..strategies import MUTATIONS

# Every cell of a mutants run, mutated or clean: small, so the whole run takes a few minutes.
SETTINGS = RunSettings(requests=300, users=20, quick=True)  # --quick's budget and its 6 s cell limit


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
