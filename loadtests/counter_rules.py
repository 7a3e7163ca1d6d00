"""The counter's rules over acknowledged values, for the matrix's checker and the faults' (loadtests/checkers.py,
loadtests/fault_checkers.py): real-time order, the losses the values alone prove, and whether each process
keeps a counter of its own."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, defaultdict

from .history import MAX_EXAMPLES, brief, process_of


def realtime_violations(acks: list[dict]) -> tuple[int, list[dict]]:
    """Count B such that some A completed before B was invoked and value(A) >= value(B)."""
    by_complete = sorted(acks, key=lambda e: e["complete"])
    completes = [e["complete"] for e in by_complete]
    prefix_max = list(itertools.accumulate((e["value"] for e in by_complete), max))
    violations = 0
    examples: list[dict] = []
    for b in acks:
        i = bisect.bisect_left(completes, b["invoke"])  # entries completed strictly before b began
        if i and prefix_max[i - 1] >= b["value"]:
            violations += 1
            if len(examples) < MAX_EXAMPLES:
                # The earliest-completing entry that holds that maximum is the example "A".
                earlier = next(e for e in by_complete[:i] if e["value"] == prefix_max[i - 1])
                examples.append({"earlier": brief(earlier), "later": brief(b)})
    return violations, examples


def per_process_counters(values_by_process: dict[str, list[int]], slack: int) -> bool:
    """Each process's own acknowledged values run 1..n: a counter of its own. Duplicates inside a process
    are allowed; gaps only as many as requests that failed or went unanswered (they may have counted), plus
    one per value repeated in a process whose answers prove no increment lost (a counter read again after
    another increment skips a value - 1 too, when its first two requests both read after incrementing). A
    shared counter that loses updates repeats values in every process, and those repeats excuse nothing."""
    if len(values_by_process) < 2:
        return False
    gaps = excused = 0
    for values in values_by_process.values():
        distinct = set(values)
        repeats = len(values) - len(distinct) if not lost_shown_by_values(values) else 0
        if 1 not in distinct and not repeats:
            return False
        gaps += max(distinct) - len(distinct)
        excused += repeats
    return gaps <= slack + excused


def one_counter_read_alike(acks_by_process: Counter, final_by_process: dict[str, int]) -> bool:
    """Every loaded process reads one value at rest, below some process's own acknowledged count: one shared
    counter that lost most increments (each process saw every value 1..n), not counters per process that all
    lost some and ended on one number by chance. An even share with nothing lost stays one per process."""
    read = acks_by_process.keys() & final_by_process.keys()
    values = {final_by_process[p] for p in read}
    return len(read) > 1 and len(values) == 1 and any(acks_by_process[p] > final_by_process[p] for p in read)


def lost_shown_by_values(values: list[int]) -> int:
    """Increments the answers alone prove lost: the most, over v, by which the answers at or below v
    outnumber v. A counter that keeps every increment cannot answer v or less to more than v requests: the
    last of them to read did so after all of them had incremented (a failed request that counted only adds)."""
    shown = 0
    for rank, value in enumerate(sorted(values), 1):
        shown = max(shown, rank - value)
    return shown


def realtime_per_process(acks: list[dict], processes: list[str] | None = None) -> tuple[int, list[dict]]:
    """Real-time order within each process; ``processes`` names each ack's process when the caller has."""
    by_process: dict[str, list[dict]] = defaultdict(list)
    for process, e in zip(processes or [process_of(e) for e in acks], acks, strict=True):
        by_process[process].append(e)
    total, examples = 0, []
    for entries in by_process.values():
        n, ex = realtime_violations(entries)
        total += n
        examples.extend(ex)
    return total, examples[:MAX_EXAMPLES]
