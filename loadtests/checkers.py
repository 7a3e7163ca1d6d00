"""Checkers over recorded histories, in the spirit of Jepsen's unique-ids and counter checks.

Each takes a cell's history (see history.py) and returns a CheckResult: a verdict
(a set of words: correct | lost-updates | diverges | leaks | error), the evidence
counts, and a few concrete entries that show the anomaly.

- check_counter: duplicates; lost updates (acknowledged increments vs the value
  the quiescent final reads see: lower bound = acknowledged, upper bound =
  attempted); real-time order (if A completed before B began, value(A) < value(B));
  divergence (final reads served by different processes disagree).
- check_sessions: each user must see 1, 2, 3 ... and only its own session.
- check_isolation: the token read back must be the token sent.
"""

from __future__ import annotations

import bisect
import gc
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .history import ok, process_of
from .verdicts import CORRECT, DIVERGES, ERROR, LEAKS, LOST_UPDATES

MAX_EXAMPLES = 3


@dataclass
class CheckResult:
    verdict: frozenset[str]
    counts: dict = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "verdict": sorted(self.verdict),
            "counts": self.counts,
            "examples": self.examples,
            "notes": self.notes,
        }


def _verdict(words: set[str]) -> frozenset[str]:
    return frozenset(words) if words else frozenset({CORRECT})


def _brief(entry: dict) -> dict:
    keys = ("client", "req", "op", "invoke", "complete", "status", "value", "sent", "owner", "pid", "instance", "error")
    return {k: entry.get(k) for k in keys if entry.get(k) is not None}


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
                examples.append({"earlier": _brief(earlier), "later": _brief(b)})
    return violations, examples


def check_counter(history: list[dict]) -> CheckResult:
    load = [e for e in history if e.get("phase", "load") == "load"]
    acks = [e for e in load if ok(e) and isinstance(e.get("value"), int)]
    finals = [e for e in history if e.get("phase") == "final" and ok(e) and isinstance(e.get("value"), int)]
    errors = [e for e in load if not ok(e)]
    words: set[str] = set()
    notes: list[str] = []
    examples: list[dict] = []

    value_counts = Counter(e["value"] for e in acks)
    duplicates = sum(c - 1 for c in value_counts.values() if c > 1)
    per_process_value = Counter((process_of(e), e["value"]) for e in acks)
    duplicates_in_process = sum(c - 1 for c in per_process_value.values() if c > 1)
    acks_by_process = Counter(process_of(e) for e in acks)

    final_by_process: dict[str, int] = {}
    for e in sorted(finals, key=lambda e: e["complete"]):
        final_by_process[process_of(e)] = e["value"]
    final_values = set(final_by_process.values())
    # Processes disagree at rest - or agree only because each holds exactly its own
    # acknowledged count (per-process counters that happened to finish level).
    level_but_separate = (
        len(final_by_process) > 1
        and len(final_values) == 1
        and next(iter(final_values)) < len(acks)
        and all(v == acks_by_process.get(p, 0) > 0 for p, v in final_by_process.items())
    )
    diverges = len(final_values) > 1 or level_but_separate

    if diverges:
        words.add(DIVERGES)
        lost = sum(max(0, acks_by_process.get(p, 0) - v) for p, v in final_by_process.items())
        final = None
        examples.append({"final_reads": dict(sorted(final_by_process.items())[:8])})
    else:
        final = next(iter(final_values)) if final_values else max(value_counts, default=0)
        if not final_values:
            notes.append("no final read answered; the largest acknowledged value stands in for it")
        lost = max(0, len(acks) - final)
        if final > len(load):
            notes.append(f"final value {final} exceeds the {len(load)} attempted increments")
        if lost and finals:
            examples.append({"final_read": _brief(finals[-1]), "acknowledged": len(acks)})
    # One shared counter never hands out a value twice; per-process counters may, across processes.
    if lost or duplicates_in_process or (duplicates and not diverges):
        words.add(LOST_UPDATES)
    if errors:
        words.add(ERROR)
        examples.extend(_brief(e) for e in errors[:MAX_EXAMPLES])
    if duplicates:
        dup_values = [v for v, c in value_counts.items() if c > 1][:MAX_EXAMPLES]
        examples.extend(_brief(e) for e in acks if e["value"] in dup_values[:1])
    violations, rt_examples = realtime_violations(acks)
    examples.extend(rt_examples[:1])

    processes_load = len(acks_by_process)
    if processes_load > 1 and len(final_by_process) < 2 and not diverges:
        notes.append(
            f"final reads reached {len(final_by_process)} of the {processes_load} processes seen under load"
        )
    counts = {
        "attempted": len(load),
        "acknowledged": len(acks),
        "errors": len(errors),
        "final": final,
        "lost": lost,
        "duplicates": duplicates,
        "duplicates_within_process": duplicates_in_process,
        "realtime_violations": violations,
        "processes_under_load": processes_load,
        "processes_read_at_end": len(final_by_process),
        "distinct_final_values": len(final_values),
    }
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES], notes)


def _counts_from_one(values: list[int]) -> bool:
    return values == list(range(1, len(values) + 1))


def check_sessions(history: list[dict]) -> CheckResult:
    load = [e for e in history if e.get("phase", "load") == "load"]
    by_client: dict[str, list[dict]] = defaultdict(list)
    errors = [e for e in load if not ok(e)]
    for e in load:
        if ok(e):
            by_client[e["client"]].append(e)
    leaks = [e for entries in by_client.values() for e in entries if e.get("owner") != e["client"]]
    wrong_users: list[str] = []
    diverged_users: list[str] = []
    for client, entries in by_client.items():
        entries.sort(key=lambda e: e["req"])
        values = [e["value"] for e in entries]
        if _counts_from_one(values):
            continue
        per_process: dict[str, list[int]] = defaultdict(list)
        for e in entries:
            per_process[process_of(e)].append(e["value"])
        if len(per_process) > 1 and all(_counts_from_one(v) for v in per_process.values()):
            diverged_users.append(client)
        else:
            wrong_users.append(client)
    words: set[str] = set()
    examples: list[dict] = []
    if leaks:
        words.add(LEAKS)
        examples.extend(_brief(e) for e in leaks[:MAX_EXAMPLES])
    if diverged_users:
        words.add(DIVERGES)
        c = diverged_users[0]
        examples.append({"client": c, "values": [(e["value"], process_of(e)) for e in by_client[c]][:12]})
    if wrong_users:
        words.add(LOST_UPDATES)
        c = wrong_users[0]
        examples.append({"client": c, "values": [e["value"] for e in by_client[c]][:20]})
    if errors:
        words.add(ERROR)
        examples.extend(_brief(e) for e in errors[:MAX_EXAMPLES])
    counts = {
        "attempted": len(load),
        "acknowledged": sum(len(v) for v in by_client.values()),
        "errors": len(errors),
        "users": len(by_client),
        "users_wrong_sequence": len(wrong_users),
        "users_diverged": len(diverged_users),
        "leaked_responses": len(leaks),
        "processes_under_load": len({process_of(e) for v in by_client.values() for e in v}),
    }
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES])


def check_isolation(history: list[dict]) -> CheckResult:
    load = [e for e in history if e.get("phase", "load") == "load"]
    acks = [e for e in load if ok(e)]
    errors = [e for e in load if not ok(e)]
    leaks = [e for e in acks if e.get("value") != e.get("sent")]
    words: set[str] = set()
    examples: list[dict] = []
    if leaks:
        words.add(LEAKS)
        examples.extend(_brief(e) for e in leaks[:MAX_EXAMPLES])
    if errors:
        words.add(ERROR)
        examples.extend(_brief(e) for e in errors[:MAX_EXAMPLES])
    counts = {
        "attempted": len(load),
        "acknowledged": len(acks),
        "errors": len(errors),
        "leaked_responses": len(leaks),
        "processes_under_load": len({process_of(e) for e in acks}),
    }
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES])


CHECKERS = {
    "counter": check_counter,
    "same-user": check_counter,
    "session": check_sessions,
    "isolation": check_isolation,
}


def check(kind: str, history: list[dict]) -> CheckResult:
    # The checks allocate millions of small objects while a large history is alive; the cyclic
    # collector would rescan that history again and again (half the time on 1M entries).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return CHECKERS[kind](history)
    finally:
        if enabled:
            gc.enable()
