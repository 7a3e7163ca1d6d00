"""Quiescent final reads: read a counter at rest, straight from every app instance, until a stop rule
says enough. One loop for the matrix driver, the fault driver and the web UI's Verdict tab; what
differs between them is the stop rule, passed in.

Reads bypass nginx (whose kept-alive upstream connections would reach the same worker every time) and
open a fresh connection each, many at once, so every idle worker of every instance races to accept some.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gevent import sleep
from gevent.pool import Pool

from .history import ok, process_of

CONCURRENCY = 16  # reads per instance per round
MAX_READS = 480
# After a fault: how long the reads at rest may take to reach every live process. They stop as soon as all have
# answered; on a loaded machine a starved worker can take many rounds to win an accept (seen: 10 s was too short
# at a load average of 17, and the cell came out inconclusive).
SETTLE_S = 30.0


@dataclass
class Reads:
    """What the rounds so far brought: every answer's process, and how many reads were sent and answered."""

    sent: int = 0
    ok: int = 0
    answered: set[str] = field(default_factory=set)
    rounds: int = 0
    fruitless: int = 0  # rounds in a row that reached no process still wanted
    values: set = field(default_factory=set)  # every value read at rest
    new_values: int = 0  # how many values the last round read that no round before it had


class EveryProcessSeen:
    """Until every process that answered under load has answered at rest; processes that are gone (a fork
    per request, a recycled worker) never answer, so stop after `fruitless` rounds that reach none."""

    per_instance = CONCURRENCY
    read_first = False  # nothing seen under load: nothing to wait for, no read
    max_reads = MAX_READS

    def __init__(self, wanted: set[str], fruitless: int = 3):
        self.wanted = set(wanted)
        self.fruitless = fruitless

    def done(self, reads: Reads) -> bool:
        return self.wanted <= reads.answered or reads.fruitless >= self.fruitless

    def pause(self, reads: Reads) -> float:
        return 0.0


class ValuesSettled:
    """A declared app (which process answered is not known) or a deployment the lab did not start: read
    rounds through its URLs until `quiet` rounds in a row bring no value that no round before them read -
    a counter at rest reads the same, and where copies differ every copy reachable has had its chance.
    The reads are capped like every final read (MAX_READS)."""

    read_first = True
    per_instance = CONCURRENCY
    wanted: set[str] = set()
    max_reads = MAX_READS

    def __init__(self, quiet: int = 2):
        self.quiet = quiet
        self.quiet_rounds = 0

    def done(self, reads: Reads) -> bool:
        self.quiet_rounds = 0 if reads.new_values else self.quiet_rounds + 1
        return reads.rounds > self.quiet and self.quiet_rounds >= self.quiet

    def pause(self, reads: Reads) -> float:
        return 0.0


def instance_of(process: str) -> str:
    return process.rsplit("/", 1)[0]


class Settled:
    """After a fault: every wanted process that is still alive has answered (a killed or recycled worker
    never will), within `seconds`; while nothing answers at all (a restarting store) wait between rounds.
    With `shared` (one store holds the state) any process of an instance may answer for it, but every
    instance that served load must answer - twice, so that two reads at rest can disagree."""

    read_first = True  # always at least one round: the state after the fault is the point
    SHARED_READS_PER_INSTANCE = 2
    max_reads = 4 * MAX_READS  # bounded by SETTLE_S first, on any machine that answers at all

    def __init__(self, wanted: set[str], alive: Callable[[str], bool], shared: bool, seconds: float = SETTLE_S):
        self.wanted = set(wanted)
        self.alive = alive
        self.shared = shared
        self.deadline = time.monotonic() + seconds
        self.per_instance = self.SHARED_READS_PER_INSTANCE if shared else CONCURRENCY

    def done(self, reads: Reads) -> bool:
        if time.monotonic() >= self.deadline:
            return True
        if self.shared:
            instances = {instance_of(p) for p in self.wanted}
            return (instances <= {instance_of(p) for p in reads.answered}
                    and reads.ok >= self.SHARED_READS_PER_INSTANCE * max(1, len(instances)))
        self.wanted = {p for p in self.wanted if p in reads.answered or self.alive(p)}
        return self.wanted <= reads.answered

    def pause(self, reads: Reads) -> float:
        if not reads.ok and reads.rounds >= 3:
            return 0.2  # nothing answers: a store or a worker is still coming back
        return 0.1 if reads.fruitless else 0.0  # a live worker not reached yet: give it the CPU to accept


def final_reads(read: Callable[[str, str, dict, str], None], entries: list[dict], instances: list[str], path: str,
                headers: dict, rule) -> Reads:
    """Send rounds of `read(url, path, headers, client)` (which appends an entry to `entries`) until
    `rule.done(reads)` or `rule.max_reads`; return what the rounds brought."""
    reads = Reads()
    if not rule.read_first and rule.done(reads):
        return reads
    pool = Pool(rule.per_instance * len(instances))
    while reads.sent < rule.max_reads:
        before = len(entries)
        reached_before = len(reads.answered & rule.wanted)
        for i in range(rule.per_instance):
            for url in instances:
                pool.spawn(read, url, path, headers, f"final{i}")
        pool.join()
        reads.rounds += 1
        reads.sent += rule.per_instance * len(instances)
        new = [e for e in entries[before:] if ok(e)]
        reads.ok += len(new)
        reads.answered |= {process_of(e) for e in new}
        round_values = {e.get("value") for e in new}
        reads.new_values = len(round_values - reads.values)
        reads.values |= round_values
        reads.fruitless = reads.fruitless + 1 if len(reads.answered & rule.wanted) == reached_before else 0
        if rule.done(reads):
            break
        wait = rule.pause(reads)
        if wait:
            sleep(wait)
    return reads
