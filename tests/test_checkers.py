"""Unit tests for the history checkers in loadtests/checkers.py.

Every history here is synthetic, built by the small helpers below. An entry has the
fields the load generator records (see loadtests/history.py). Timings are chosen by
hand so that the real-time relation between requests, and so every count, is known.
"""

from __future__ import annotations

import copy
import random

import pytest

from loadtests.checkers import (
    CHECKERS,
    MAX_EXAMPLES,
    NOT_READ_BACK,
    CheckResult,
    check,
    check_counter,
    check_crossed,
    check_isolation,
    check_sessions,
    check_unique,
    every_process_loaded,
    lost_shown_by_values,
    realtime_violations,
)
from loadtests.history import brief

CORRECT = frozenset({"correct"})

# Two server processes of one instance, and one process of another instance.
P1 = {"pid": 101, "instance": "i0"}
P2 = {"pid": 202, "instance": "i0"}
P3 = {"pid": 101, "instance": "i1"}  # same pid as P1, other instance: a different process
NAME = {101: "i0/101", 202: "i0/202"}


# --------------------------------------------------------------------------- helpers


def entry(
    *,
    client: str = "u0",
    req: int = 0,
    op: str = "incr",
    phase: str = "load",
    invoke: float = 0.0,
    complete: float | None = None,
    status: int = 200,
    value=None,
    sent=None,
    owner=None,
    pid: int = 101,
    tid: int = 1,
    instance: str = "i0",
    error: str | None = None,
) -> dict:
    """One history entry with every recorded field."""
    return {
        "client": client,
        "req": req,
        "op": op,
        "phase": phase,
        "invoke": float(invoke),
        "complete": float(invoke + 0.5 if complete is None else complete),
        "status": status,
        "value": value,
        "sent": sent,
        "owner": owner,
        "pid": pid,
        "tid": tid,
        "instance": instance,
        "error": error,
    }


def sequential(values, procs=None, *, start: int = 0, client: str = "u0") -> list[dict]:
    """Increments one after another: request k runs in [k, k + 0.5], none overlap.

    ``procs`` gives the serving process of each request (a P1/P2/P3 dict); default P1.
    """
    procs = procs or [P1] * len(values)
    assert len(procs) == len(values)
    return [
        entry(client=client, req=start + k, invoke=start + k, complete=start + k + 0.5, value=v, **p)
        for k, (v, p) in enumerate(zip(values, procs, strict=True))
    ]


def final(value, proc=P1, *, at: float = 1000.0, req: int = 10_000, status: int = 200, error=None) -> dict:
    """A quiescent read after the load."""
    return entry(
        client="final",
        req=req,
        op="read",
        phase="final",
        invoke=at,
        complete=at + 0.1,
        value=value,
        status=status,
        error=error,
        **proc,
    )


def failed(*, req: int, invoke: float, status: int = 500, error: str | None = "HTTP 500", proc=P1, **kw) -> dict:
    """A load request that got no good answer (status 500, or 0 for a dropped connection)."""
    return entry(req=req, invoke=invoke, complete=invoke + 0.5, status=status, error=error, **proc, **kw)


def session_user(client: str, values, procs=None, *, reqs=None, owner: str | None = None) -> list[dict]:
    """One session user's requests; ``owner`` defaults to the user itself."""
    procs = procs or [P1] * len(values)
    reqs = reqs or list(range(len(values)))
    return [
        entry(client=client, req=r, invoke=r, complete=r + 0.5, value=v, owner=owner or client, **p)
        for v, p, r in zip(values, procs, reqs, strict=True)
    ]


def interleave(*users: list[dict]) -> list[dict]:
    """Round-robin the users' requests and renumber req/invoke/complete globally."""
    out: list[dict] = []
    queues = [list(u) for u in users]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    for k, e in enumerate(out):
        e["req"], e["invoke"], e["complete"] = k, float(k), k + 0.5
    return out


def echo(token: str, *, req: int = 0, value=None, proc=P1, **kw) -> dict:
    """An isolation request that sent ``token`` and got ``value`` back (default: the token)."""
    return entry(
        op="echo",
        req=req,
        invoke=req,
        complete=req + 0.5,
        sent=token,
        value=token if value is None else value,
        **proc,
        **kw,
    )


def brute_force_realtime(acks: list[dict]) -> int:
    """Reference: B is a violation if some A completed strictly before B began and value(A) >= value(B)."""
    return sum(1 for b in acks if any(a["complete"] < b["invoke"] and a["value"] >= b["value"] for a in acks))


# --------------------------------------------------------------------------- check_counter: correct


def test_counter_single_process_correct():
    history = sequential([1, 2, 3, 4, 5]) + [final(5)]
    result = check_counter(history)
    assert result.verdict == CORRECT
    assert result.counts == {
        "attempted": 5,
        "acknowledged": 5,
        "errors": 0,
        "final": 5,
        "lost": 0,
        "duplicates": 0,
        "duplicates_within_process": 0,
        "lost_shown_by_values": 0,
        "realtime_violations": 0,
        "processes_under_load": 1,
        "processes_read_at_end": 1,
        "distinct_final_values": 1,
        "malformed": 0,
        "final_reads_failed": 0,
        "processes_exited": 0,
        "unanswered": 0,
        "error_kinds": {},
    }
    assert result.examples == []
    assert result.notes == []


def test_counter_shared_store_across_processes_and_instances_correct():
    procs = [P1, P2, P3] * 3
    history = sequential(list(range(1, 10)), procs) + [final(9, P1), final(9, P2, req=10_001), final(9, P3, req=10_002)]
    result = check_counter(history)
    assert result.verdict == CORRECT
    assert result.counts["processes_under_load"] == 3  # P1 and P3 share a pid but not an instance
    assert result.counts["processes_read_at_end"] == 3
    assert result.counts["distinct_final_values"] == 1
    assert result.counts["lost"] == 0
    assert result.counts["final"] == 9
    assert result.notes == []
    assert result.examples == []


def test_counter_concurrent_linearizable_history_is_correct():
    """Overlapping requests whose values follow some linearization: no anomaly at all."""
    rng = random.Random(1234)
    spans = []
    for _ in range(200):
        invoke = rng.uniform(0, 100)
        complete = invoke + rng.uniform(0.01, 5)
        spans.append((invoke, complete, rng.uniform(invoke, complete)))  # the linearization point
    order = sorted(range(len(spans)), key=lambda i: spans[i][2])
    history = []
    for value, i in enumerate(order, start=1):
        invoke, complete, _ = spans[i]
        history.append(entry(req=i, invoke=invoke, complete=complete, value=value, **rng.choice([P1, P2, P3])))
    history += [final(200, P1), final(200, P2, req=10_001), final(200, P3, req=10_002)]
    result = check_counter(history)
    assert result.verdict == CORRECT
    assert result.counts["realtime_violations"] == 0
    assert result.counts["duplicates"] == 0
    assert result.counts["lost"] == 0


def test_counter_empty_history():
    result = check_counter([])
    assert result.verdict == CORRECT
    assert result.counts["attempted"] == 0
    assert result.counts["final"] is None  # nothing acknowledged: nothing a final read must show
    assert result.notes == []


def test_counter_entries_without_phase_count_as_load():
    history = sequential([1, 2, 3])
    for e in history:
        del e["phase"]
    history.append(final(3))
    result = check_counter(history)
    assert result.verdict == CORRECT
    assert result.counts["attempted"] == 3
    assert result.counts["acknowledged"] == 3


def test_counter_does_not_mutate_history():
    history = sequential([1, 2, 2, 4], [P1, P2, P1, P2]) + [failed(req=9, invoke=9)] + [final(3), final(4, P2, req=1)]
    before = copy.deepcopy(history)
    check_counter(history)
    assert history == before


# --------------------------------------------------------------------------- check_counter: lost updates


def test_counter_duplicate_within_process_is_lost_update():
    # 1, then two overlapping increments that both answer 2, then 3; the store ends at 3.
    history = [
        entry(req=0, invoke=0, complete=1, value=1),
        entry(req=1, invoke=2, complete=3.5, value=2),
        entry(req=2, invoke=2.5, complete=4, value=2),
        entry(req=3, invoke=5, complete=6, value=3),
        final(3),
    ]
    result = check_counter(history)
    assert result.verdict == frozenset({"lost-updates"})
    assert result.counts["acknowledged"] == 4
    assert result.counts["final"] == 3
    assert result.counts["lost"] == 1
    assert result.counts["duplicates"] == 1
    assert result.counts["duplicates_within_process"] == 1
    assert result.counts["realtime_violations"] == 0  # the two 2s overlap
    assert result.examples, "a duplicate must be shown"
    duplicates_shown = [ex for ex in result.examples if "req" in ex]
    assert [ex["req"] for ex in duplicates_shown] == [1, 2]
    assert all(ex["value"] == 2 for ex in duplicates_shown)


def test_counter_duplicate_within_process_flags_lost_update_even_when_final_covers_acks():
    # A timed-out increment (status 0) was applied after all: the final read equals the acks, so only the
    # answers show the lost update - three at or below 2, which a counter that keeps every increment cannot
    # give (the last of the three read after all three had incremented: 3 or more).
    history = [
        entry(req=0, invoke=0, complete=1, value=1),
        entry(req=1, invoke=2, complete=3, value=2),
        entry(req=2, invoke=2, complete=3, value=2),
        failed(req=3, invoke=4, status=0, error="ConnectionError: timed out"),
        final(3),
    ]
    result = check_counter(history)
    assert result.verdict == frozenset({"lost-updates", "error"})
    assert result.counts["lost"] == 0
    assert result.counts["lost_shown_by_values"] == 1
    assert result.counts["duplicates_within_process"] == 1
    assert result.counts["errors"] == 1


def test_counter_final_lower_than_acknowledged_is_lost_update():
    history = sequential([1, 2, 3, 4, 5]) + [final(3)]
    result = check_counter(history)
    assert result.verdict == frozenset({"lost-updates"})
    assert result.counts["acknowledged"] == 5
    assert result.counts["final"] == 3
    assert result.counts["lost"] == 2
    assert result.counts["duplicates"] == 0
    assert result.counts["duplicates_within_process"] == 0
    assert result.counts["realtime_violations"] == 0


def test_counter_lost_update_by_final_read_has_examples():
    history = sequential([1, 2, 3, 4, 5]) + [final(3)]
    result = check_counter(history)
    assert result.verdict == frozenset({"lost-updates"})
    assert result.examples


def test_counter_shared_racy_store_across_processes():
    # Two processes read the same value and both write +1: duplicates across processes and a final short by one.
    history = [
        entry(req=0, invoke=0, complete=1, value=1, **P1),
        entry(req=1, invoke=2, complete=3, value=2, **P1),
        entry(req=2, invoke=2, complete=3, value=2, **P2),
        entry(req=3, invoke=4, complete=5, value=3, **P2),
        final(3, P1),
        final(3, P2, req=10_001),
    ]
    result = check_counter(history)
    assert result.verdict == frozenset({"lost-updates"})
    assert result.counts["lost"] == 1
    assert result.counts["duplicates"] == 1
    assert result.counts["duplicates_within_process"] == 0
    assert result.examples


def test_counter_cross_process_duplicate_in_shared_store_is_lost_update():
    history = [
        entry(req=0, invoke=0, complete=1, value=1, **P1),
        entry(req=1, invoke=2, complete=3, value=2, **P1),  # both read 1 and wrote 2 ...
        entry(req=2, invoke=2, complete=3, value=2, **P2),  # ... so one of these increments is lost
        failed(req=3, invoke=4, status=0, error="ConnectionError: timed out", proc=P2),  # applied: store at 3
        final(3, P1),
        final(3, P2, req=10_001),
    ]
    result = check_counter(history)
    assert result.counts["duplicates"] == 1
    assert result.counts["lost"] == 0  # the lower/upper bounds (3 acked, 4 attempted) cannot see it
    assert result.verdict == frozenset({"lost-updates", "error"})


# --------------------------------------------------------------------------- check_counter: duplicates


def seed_race(proc=P1, *, start: int = 0) -> list[dict]:
    """The seed's ``self.param += 1; return self.param`` with a switch in between: 1, then two overlapping
    requests both increment (to 2, then 3) and both read 3 - value 2 is skipped, nothing is lost - then 4."""
    return [
        entry(req=start, invoke=0, complete=1, value=1, **proc),
        entry(req=start + 1, invoke=2, complete=3.5, value=3, **proc),
        entry(req=start + 2, invoke=2.5, complete=4, value=3, **proc),
        entry(req=start + 3, invoke=5, complete=6, value=4, **proc),
    ]


def test_counter_value_handed_out_twice_with_nothing_lost_is_duplicates():
    result = check_counter(seed_race() + [final(4)])
    assert result.verdict == frozenset({"duplicates"})
    assert result.counts["duplicates"] == result.counts["duplicates_within_process"] == 1
    assert result.counts["lost"] == 0 and result.counts["lost_shown_by_values"] == 0
    assert result.counts["realtime_violations"] == 0
    assert [ex["value"] for ex in result.examples if "req" in ex] == [3, 3]


def test_counter_duplicates_with_increments_lost_is_lost_updates_alone():
    # The same answers, but the counter at rest is short of the acknowledged increments: lost-updates wins,
    # a repeated value is then the lost update's doing, and duplicates is not said.
    result = check_counter(seed_race() + [final(3)])
    assert result.verdict == frozenset({"lost-updates"})
    assert result.counts["lost"] == 1 and result.counts["duplicates"] == 1


@pytest.mark.parametrize(("values", "shown"), [
    ([], 0), ([1, 2, 3], 0), ([3, 3, 1], 0), ([2, 2], 0), ([1, 1], 1), ([1, 2, 2, 3], 1), ([5, 1, 1, 1], 2),
])
def test_lost_shown_by_values(values, shown):
    assert lost_shown_by_values(values) == shown


def test_counter_per_process_counters_with_duplicates_diverge_and_say_duplicates():
    # Each process runs the seed's counter on its own: A skips 2 (two read 3), B skips 1 (its first two
    # requests read after both incremented); each reads at rest what it acknowledged.
    b = [entry(req=10, invoke=0, complete=1.5, value=2, **P2), entry(req=11, invoke=0.5, complete=2, value=2, **P2),
         entry(req=12, invoke=3, complete=3.5, value=3, **P2)]
    result = check_counter(seed_race(P1) + b + [final(4, P1), final(3, P2, req=10_001)])
    assert result.verdict == frozenset({"duplicates", "diverges"})
    assert result.counts["duplicates_within_process"] == 2
    assert result.counts["lost"] == 0 and result.counts["lost_shown_by_values"] == 0


def test_counter_shared_store_losing_updates_is_not_counters_per_process():
    # A racy GET/SET on redis seen by two processes: both repeat values, but those repeats prove increments
    # lost (three answers at or below 2 ...), so they excuse no gap: one shared counter, not one each.
    history = [entry(req=k, invoke=k, complete=k + 1.5, value=v, **p) for k, (v, p) in enumerate(
        [(1, P1), (1, P1), (1, P2), (3, P1), (3, P1), (3, P2), (2, P2), (3, P1)])]
    result = check_counter(history + [final(3, P1), final(3, P2, req=10_001)])
    assert "diverges" not in result.verdict
    assert result.verdict == frozenset({"lost-updates"}) and result.counts["final"] == 3


def test_counter_per_process_gaps_beyond_the_repeats_are_not_counters_per_process():
    # A shared counter seen by two processes: each misses values no repeat explains - not one counter each.
    history = sequential([1, 2, 3, 4], [P1, P2, P1, P2]) + [final(4, P1), final(4, P2, req=10_001)]
    result = check_counter(history)
    assert result.verdict == CORRECT
    # A repeat in one process pays for one gap, not for the other process's: 2, 2, 4 and 1, 5 miss 1 + 3 values.
    history = sequential([2, 2, 1, 4, 5], [P1, P1, P2, P1, P2]) + [final(5, P1), final(5, P2, req=10_001)]
    result = check_counter(history)
    assert "diverges" not in result.verdict and result.counts["final"] == 5


def test_counter_without_final_read_is_inconclusive():
    history = sequential([1, 2, 3])
    result = check_counter(history)
    assert result.counts["final"] is None and result.counts["lost"] is None
    assert result.counts["processes_read_at_end"] == 0
    assert result.verdict == frozenset({"inconclusive"})  # no stand-in for the value at rest
    assert result.notes == ["no final read was made"]


def test_counter_without_final_read_still_shows_what_the_load_proves():
    history = sequential([1, 2, 2, 3], [P1, P2, P1, P2])
    result = check_counter(history)
    assert result.verdict == frozenset({"lost-updates", "inconclusive"})  # a value handed out twice


def test_counter_final_reads_all_failing_is_inconclusive_not_correct():
    history = sequential([1, 2, 3]) + [final(None, status=500, error="internal: boom", req=10_000 + k)
                                       for k in range(5)]
    result = check_counter(history)
    assert result.verdict == frozenset({"inconclusive"})
    assert result.counts["final_reads_failed"] == 5
    assert result.notes == ["no final read answered (5 sent, all failed)"]


def test_counter_last_final_read_of_a_process_wins():
    # Listed out of order: the read that completed last (value 5) is the one that counts.
    history = sequential([1, 2, 3, 4, 5]) + [final(5, at=2000.0, req=10_001), final(3, at=1000.0)]
    result = check_counter(history)
    assert result.verdict == CORRECT
    assert result.counts["final"] == 5
    assert result.counts["lost"] == 0


def test_counter_a_failed_final_read_makes_the_cell_inconclusive():
    history = sequential([1, 2, 3]) + [final(None, status=0, error="ConnectionError"), final(3, req=10_001)]
    result = check_counter(history)
    assert result.verdict == frozenset({"inconclusive"})  # an error in the final phase is not a load error
    assert result.counts["errors"] == 0
    assert result.counts["final"] == 3
    assert result.notes == ["1 of 2 final reads failed (e.g. ConnectionError)"]


def test_counter_a_failed_final_read_of_a_process_another_read_reached_hides_nothing():
    # The reads at rest go out 16 at once: a client shared by greenlets fails one (seen under gevent-preload).
    history = sequential([1, 2, 3]) + [final(None, status=500, error="internal: ConcurrentObjectUseError"),
                                       final(3, req=10_001)]
    result = check_counter(history)
    assert result.verdict == CORRECT and result.counts["final_reads_failed"] == 1
    assert result.notes == ["1 of 2 final reads failed (e.g. internal: ConcurrentObjectUseError); each answered by "
                            "a process another read at rest reached"]
    # The failed read's process was never read at rest: what it holds at rest is unknown.
    history = sequential([1, 2, 3]) + [final(None, P2, status=500, error="internal: boom"), final(3, req=10_001)]
    assert check_counter(history).verdict == frozenset({"inconclusive"})
    # Answered, but by no named process (a user's app): unknown which it was.
    unnamed = {**final(None, status=500, error="internal: boom"), "pid": None, "instance": None}
    assert check_counter(sequential([1, 2, 3]) + [unnamed, final(3, req=10_001)]).verdict == frozenset({"inconclusive"})


def test_counter_failed_final_reads_without_acknowledged_increments_decide_nothing():
    # Every increment failed (the strategy errors): there is nothing a final read must reflect.
    history = [failed(req=k, invoke=k) for k in range(3)] + [final(None, status=500, error="HTTP 500")]
    assert check_counter(history).verdict == frozenset({"error"})


# --------------------------------------------------------------------------- check_counter: divergence


def test_counter_per_process_counters_diverge_without_loss():
    # Each process counts on its own, correctly: A answers 1, 2, 3 and B answers 1, 2.
    history = sequential([1, 1, 2, 2, 3], [P1, P2, P1, P2, P1]) + [final(3, P1), final(2, P2, req=10_001)]
    result = check_counter(history)
    assert result.verdict == frozenset({"diverges"})
    assert result.counts["lost"] == 0
    assert result.counts["final"] is None
    assert result.counts["distinct_final_values"] == 2
    assert result.counts["processes_read_at_end"] == 2
    assert result.counts["processes_under_load"] == 2
    assert result.counts["duplicates"] == 2  # 1 and 2 were each answered twice, by different processes
    assert result.counts["duplicates_within_process"] == 0
    # B's 1 began after A's 1 completed - across processes, which per-process counters allow: real time is
    # judged within each process.
    assert result.counts["realtime_violations"] == 0
    assert result.examples[0] == {"final_reads": {"i0/101": 3, "i0/202": 2}}
    assert result.notes == []


def test_counter_per_process_counters_with_race_inside_a_process():
    # Process A answers 1, 2, 2, 3 (two overlapping increments both wrote 2), B answers 1, 2.
    history = [
        entry(req=0, invoke=0, complete=0.5, value=1, **P1),
        entry(req=1, invoke=1, complete=1.5, value=1, **P2),
        entry(req=2, invoke=2, complete=3, value=2, **P1),
        entry(req=3, invoke=2.2, complete=3, value=2, **P1),
        entry(req=4, invoke=4, complete=4.5, value=2, **P2),
        entry(req=5, invoke=5, complete=5.5, value=3, **P1),
        final(3, P1),
        final(2, P2, req=10_001),
    ]
    result = check_counter(history)
    assert result.verdict == frozenset({"lost-updates", "diverges"})
    assert result.counts["lost"] == 1  # A: 4 acknowledged, reads 3; B: 2 acknowledged, reads 2
    assert result.counts["duplicates_within_process"] == 1
    assert result.counts["duplicates"] == 3  # value 1 twice (+1), value 2 three times (+2)
    assert result.counts["realtime_violations"] == 0  # within each process, values never went back
    assert brute_force_realtime(history[:6]) == 2  # across processes they do
    assert result.examples[0] == {"final_reads": {"i0/101": 3, "i0/202": 2}}


def test_counter_per_process_counters_with_equal_share_diverge():
    # Round-robin over two processes, each counting 1, 2 on its own; both final reads answer 2.
    history = sequential([1, 1, 2, 2], [P1, P2, P1, P2]) + [final(2, P1), final(2, P2, req=10_001)]
    result = check_counter(history)
    assert result.counts["duplicates_within_process"] == 0
    assert result.verdict == frozenset({"diverges"})


def test_counter_final_reads_reached_fewer_processes_than_load_is_inconclusive():
    history = sequential([1, 2, 3, 4], [P1, P2, P1, P2]) + [final(4, P1)]
    result = check_counter(history)
    assert result.verdict == frozenset({"inconclusive"})
    assert result.notes == ["final reads reached 1 of the 2 processes that served load"]


def test_counter_one_worker_of_four_read_is_not_a_lost_count():
    # Four per-process counters (sync-x4), only the first read at rest: not "lost" from that one alone.
    procs = [P1, P2, P3, {"pid": 303, "instance": "i0"}] * 3
    history = sequential([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], procs) + [final(3, P1)]
    result = check_counter(history)
    assert result.verdict == frozenset({"inconclusive"})  # one copy read: nothing yet disagrees, nothing lost
    assert result.counts["lost"] == 0
    assert result.notes == ["final reads reached 1 of the 4 processes that served load"]


def test_counter_every_worker_read_is_judged():
    procs = [P1, P2, P3, {"pid": 303, "instance": "i0"}] * 3
    history = sequential([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], procs) + [
        final(3, p, req=10_000 + k) for k, p in enumerate(procs[:4])]
    assert check_counter(history).verdict == frozenset({"diverges"})


def test_counter_diverges_only_when_each_process_counts_from_one():
    # A shared store that lost updates (P2 never saw 1): disagreeing reads are not a counter per process.
    history = sequential([1, 2, 3, 4], [P1, P2, P1, P2]) + [final(4, P1), final(3, P2, req=10_001)]
    result = check_counter(history)
    assert "diverges" not in result.verdict
    assert result.verdict == frozenset({"inconclusive"})
    assert "neither one counter nor one per process" in result.notes[0]


def exited(proc) -> dict:
    """The driver saw this process gone after the final reads."""
    return {"client": "driver", "req": 20_000 + proc["pid"], "op": "exited", "phase": "exited", "invoke": 999.0,
            "complete": 999.0, "status": 0, **proc}


FORKS = [{"pid": 500 + k, "instance": "i0"} for k in range(4)]
FRESH_FORK = {"pid": 600, "instance": "i0"}


def test_counter_a_process_per_request_loses_every_increment():
    # dev-processes: each request a fresh fork (value 1), the reads at rest answered by other fresh forks.
    history = sequential([1, 1, 1, 1], FORKS) + [final(0, FRESH_FORK)] + [exited(p) for p in FORKS]
    result = check_counter(history)
    assert result.verdict == frozenset({"lost-updates"})
    assert result.counts["lost"] == 4 and result.counts["processes_exited"] == 4


def test_counter_a_shared_store_behind_exited_forks_is_correct():
    history = sequential([1, 2, 3, 4], FORKS) + [final(4, FRESH_FORK)] + [exited(p) for p in FORKS]
    assert check_counter(history).verdict == CORRECT


def test_counter_forks_not_seen_exited_are_unread_not_lost():
    history = sequential([1, 2, 3, 4], FORKS) + [final(4, FRESH_FORK)]
    result = check_counter(history)
    assert result.verdict == frozenset({"inconclusive"})
    assert result.notes == ["final reads reached 0 of the 4 processes that served load"]


# --------------------------------------------------------------------------- check_counter: real time


def test_counter_realtime_violation_is_counted():
    # A answered 2 and completed before B began; B answered 1.
    a = entry(req=0, invoke=0, complete=1, value=2)
    b = entry(req=1, invoke=2, complete=3, value=1)
    result = check_counter([a, b, final(2)])
    assert result.counts["realtime_violations"] == 1
    assert result.counts["duplicates"] == 0
    assert result.counts["lost"] == 0
    assert {"earlier": brief(a), "later": brief(b)} in result.examples
    # A shared counter that went back: a lost update, even though no value repeats and none is missing.
    assert result.verdict == frozenset({"lost-updates"})


def test_counter_realtime_order_kept_is_correct():
    a = entry(req=0, invoke=0, complete=1, value=1)
    b = entry(req=1, invoke=2, complete=3, value=2)
    result = check_counter([a, b, final(2)])
    assert result.counts["realtime_violations"] == 0
    assert result.verdict == CORRECT


def test_counter_realtime_equal_values_count_as_violation():
    a = entry(req=0, invoke=0, complete=1, value=1)
    b = entry(req=1, invoke=2, complete=3, value=1)
    result = check_counter([a, b, final(1)])
    assert result.counts["realtime_violations"] == 1
    assert result.counts["duplicates_within_process"] == 1
    assert result.verdict == frozenset({"lost-updates"})


def test_realtime_overlapping_or_touching_requests_are_not_ordered():
    a = entry(req=0, invoke=0, complete=2, value=5)
    overlapping = entry(req=1, invoke=1, complete=3, value=1)
    touching = entry(req=2, invoke=2, complete=4, value=1)  # began exactly when a completed: not "before"
    assert realtime_violations([a, overlapping, touching]) == (0, [])


def test_realtime_one_violation_per_later_request():
    # Two earlier requests both exceed the later one: it is counted once, against the larger.
    a1 = entry(req=0, invoke=0, complete=1, value=3)
    a2 = entry(req=1, invoke=0, complete=1.5, value=4)
    b = entry(req=2, invoke=2, complete=3, value=2)
    count, examples = realtime_violations([a1, a2, b])
    assert count == 1
    assert examples == [{"earlier": brief(a2), "later": brief(b)}]


def test_realtime_examples_are_capped():
    top = entry(req=0, invoke=0, complete=1, value=100)
    later = [entry(req=k, invoke=10 + k, complete=10.5 + k, value=k) for k in range(1, 11)]
    count, examples = realtime_violations([top, *later])
    assert count == 10
    assert len(examples) == MAX_EXAMPLES


def test_realtime_matches_brute_force_on_random_histories():
    rng = random.Random(42)
    for _ in range(50):
        acks = []
        for k in range(rng.randint(0, 40)):
            invoke = rng.uniform(0, 20)
            acks.append(entry(req=k, invoke=invoke, complete=invoke + rng.uniform(0, 3), value=rng.randint(1, 15)))
        count, examples = realtime_violations(acks)
        assert count == brute_force_realtime(acks)
        assert len(examples) == min(count, MAX_EXAMPLES)
        for ex in examples:
            assert ex["earlier"]["complete"] < ex["later"]["invoke"]
            assert ex["earlier"]["value"] >= ex["later"]["value"]


# --------------------------------------------------------------------------- check_counter: errors and notes


def test_counter_error_responses_are_flagged():
    history = sequential([1, 2, 3]) + [
        failed(req=3, invoke=3, status=500, error="HTTP 500"),
        failed(req=4, invoke=4, status=0, error="ConnectionResetError: reset by peer"),
        final(3),
    ]
    result = check_counter(history)
    assert result.verdict == frozenset({"error"})
    assert result.counts["attempted"] == 5
    assert result.counts["acknowledged"] == 3
    assert result.counts["errors"] == 2
    assert result.counts["lost"] == 0
    assert [ex["req"] for ex in result.examples] == [3, 4]
    assert result.examples[0]["status"] == 500
    assert result.examples[1]["status"] == 0
    assert result.examples[1]["error"] == "ConnectionResetError: reset by peer"


def test_counter_status_200_with_error_body_is_an_error():
    history = sequential([1]) + [entry(req=1, invoke=1, status=200, error="LockTimeout: acquire timed out")]
    result = check_counter(history + [final(1)])
    assert "error" in result.verdict
    assert result.counts["errors"] == 1
    assert result.counts["acknowledged"] == 1


def test_counter_answer_without_integer_value_is_malformed():
    history = sequential([1, 2]) + [entry(req=2, invoke=2, value="not a number"), entry(req=3, invoke=3, value=None)]
    result = check_counter(history + [final(2)])
    assert result.verdict == frozenset({"error"})
    assert result.counts["attempted"] == 4
    assert result.counts["acknowledged"] == 2
    assert result.counts["errors"] == 0
    assert result.counts["malformed"] == 2
    assert result.error_texts == {"malformed: a 200 answer without an integer value": 2}


def test_counter_answer_with_integer_value_is_not_malformed():
    result = check_counter(sequential([1, 2]) + [final(2)])
    assert result.counts["malformed"] == 0
    assert result.verdict == CORRECT


def test_counter_error_examples_are_capped():
    history = sequential([1]) + [failed(req=k, invoke=k) for k in range(1, 11)] + [final(1)]
    result = check_counter(history)
    assert result.counts["errors"] == 10
    assert len(result.examples) == MAX_EXAMPLES


def test_counter_all_examples_are_capped():
    # Divergence, errors, duplicates and a real-time violation all at once.
    history = (
        sequential([1, 1, 1, 1, 1, 1], [P1, P2, P1, P2, P1, P2])
        + [failed(req=k, invoke=k) for k in range(6, 12)]
        + [final(3, P1), final(3, P2, req=10_001), final(9, P3, req=10_002)]
    )
    result = check_counter(history)
    assert result.verdict == frozenset({"diverges", "lost-updates", "error", "over-counts"})  # 3 + 3 + 9 > 12
    assert result.counts["realtime_violations"] == 4  # within each process: 1 after 1
    assert len(result.examples) == 2 * MAX_EXAMPLES


def test_counter_final_above_attempted_over_counts():
    history = sequential([1, 2, 3]) + [final(10)]
    result = check_counter(history)
    assert result.verdict == frozenset({"over-counts"})
    assert result.counts["final"] == 10
    assert result.counts["lost"] == 0
    assert result.notes == ["final value(s) [10] exceed the 3 attempted increments"]


def test_counter_final_equal_to_attempted_has_no_note():
    history = sequential([1, 2]) + [failed(req=2, invoke=2), final(3)]
    result = check_counter(history)
    assert result.verdict == frozenset({"error"})  # the failed increment was applied: allowed
    assert result.notes == []


# --------------------------------------------------------------------------- every request accounted for


def unanswered(*, req: int, invoke: float, **kw) -> dict:
    """A request still in flight when its cell ended, as the driver records it."""
    e = entry(req=req, invoke=invoke, complete=invoke + 0.5, status=0,
              error="Unanswered: in flight when the cell ended", **kw)
    e["unanswered"] = True
    return e


@pytest.mark.parametrize("kind", ["counter", "session", "isolation", "nonce"])
def test_unanswered_requests_are_never_plain_correct(kind):
    base = {"counter": sequential([1, 2]) + [final(2)],
            "session": session_user("u0", [1, 2]),
            "isolation": [echo("t0", req=0), echo("t1", req=1)],
            "nonce": [echo("t0", req=0), echo("t1", req=1)]}[kind]
    history = base + [unanswered(req=7, invoke=7, client="u0")]
    result = check(kind, history)
    assert result.verdict == frozenset({"no-answer"})
    assert result.counts["unanswered"] == 1
    assert result.counts["errors"] == 0  # counted apart from the answered failures
    assert result.counts["attempted"] == 3


@pytest.mark.parametrize("kind", ["counter", "session", "isolation", "nonce"])
def test_every_request_answered_is_correct(kind):
    history = {"counter": sequential([1, 2]) + [final(2)],
               "session": session_user("u0", [1, 2]),
               "isolation": [echo("t0", req=0), echo("t1", req=1)],
               "nonce": [echo("t0", req=0), echo("t1", req=1)]}[kind]
    result = check(kind, history)
    assert result.verdict == CORRECT
    assert result.counts["unanswered"] == 0


def test_error_texts_are_counted_for_the_expected_cause():
    history = sequential([1]) + [failed(req=1, invoke=1, error="lock-timeout: lock not acquired in 2s"),
                                 failed(req=2, invoke=2, status=502, error="HTTP 502"), final(1)]
    result = check_counter(history)
    assert result.error_texts == {"lock-timeout: lock not acquired in 2s": 1, "HTTP 502": 1}
    assert result.counts["error_kinds"] == {"lock-timeout: lock not acquired in 2s": 1, "HTTP 502": 1}


# --------------------------------------------------------------------------- check_sessions


def test_sessions_each_user_counts_from_one():
    users = [session_user(f"u{i}", [1, 2, 3, 4], [P1, P2, P3, P1]) for i in range(3)]
    history = interleave(*users)
    result = check_sessions(history)
    assert result.verdict == CORRECT
    assert result.counts == {
        "attempted": 12,
        "acknowledged": 12,
        "errors": 0,
        "users": 3,
        "users_wrong_sequence": 0,
        "users_diverged": 0,
        "leaked_responses": 0,
        "processes_under_load": 3,
        "unanswered": 0,
        "error_kinds": {},
    }
    assert result.examples == []


def test_sessions_sequence_is_read_in_request_order():
    history = interleave(session_user("u0", [1, 2, 3]), session_user("u1", [1, 2]))
    history.reverse()  # the list order does not matter, only req
    assert check_sessions(history).verdict == CORRECT


def test_sessions_leak_of_another_users_session():
    u0 = session_user("u0", [1, 2, 3])
    u1 = session_user("u1", [1, 2, 3])
    history = interleave(u0, u1)
    leaked = history[3]  # u1's second request, answered from u0's session
    assert leaked["client"] == "u1"
    leaked["owner"] = "u0"
    result = check_sessions(history)
    assert result.verdict == frozenset({"leaks"})
    assert result.counts["leaked_responses"] == 1
    assert result.counts["users_wrong_sequence"] == 0
    assert result.examples == [brief(leaked)]
    assert result.examples[0]["client"] == "u1"
    assert result.examples[0]["owner"] == "u0"


def test_sessions_leak_that_also_breaks_the_sequence():
    # u1 lands in u0's session and sees u0's next number: a leak and a broken count for u1.
    history = interleave(session_user("u0", [1, 2]), session_user("u1", [1, 2]))
    history[3]["owner"], history[3]["value"] = "u0", 3
    result = check_sessions(history)
    assert result.verdict == frozenset({"leaks", "lost-updates"})
    assert result.counts["leaked_responses"] == 1
    assert result.counts["users_wrong_sequence"] == 1
    assert {"client": "u1", "values": [1, 3]} in result.examples


def test_sessions_missing_owner_is_a_leak():
    history = session_user("u0", [1, 2])
    history[1]["owner"] = None
    result = check_sessions(history)
    assert result.verdict == frozenset({"leaks"})
    assert result.counts["leaked_responses"] == 1


def test_sessions_sequence_that_stops_advancing_is_lost_update():
    history = interleave(session_user("u0", [1, 2, 3, 3, 3]), session_user("u1", [1, 2, 3, 4, 5]))
    result = check_sessions(history)
    assert result.verdict == frozenset({"lost-updates"})
    assert result.counts["users_wrong_sequence"] == 1
    assert result.counts["users_diverged"] == 0
    assert result.counts["leaked_responses"] == 0
    assert result.examples == [{"client": "u0", "values": [1, 2, 3, 3, 3]}]


def test_sessions_restart_within_one_process_is_lost_update_not_divergence():
    history = session_user("u0", [1, 2, 1, 2])  # one process: not explained by per-process state
    result = check_sessions(history)
    assert result.verdict == frozenset({"lost-updates"})
    assert result.counts["users_diverged"] == 0


def test_sessions_shared_store_with_gap_across_processes_is_lost_update():
    history = session_user("u0", [1, 2, 2], [P1, P2, P1])  # P2 does not start at 1: not per-process
    result = check_sessions(history)
    assert result.verdict == frozenset({"lost-updates"})
    assert result.counts["users_wrong_sequence"] == 1
    assert result.counts["users_diverged"] == 0


def test_sessions_counts_restarting_per_process_diverge():
    # u0 alternates between processes A and B, each keeping its own count: 1, 1, 2, 2.
    u0 = session_user("u0", [1, 1, 2, 2], [P1, P2, P1, P2])
    u1 = session_user("u1", [1, 2, 3], [P1, P1, P1])  # stuck to one process: fine
    history = interleave(u0, u1)
    result = check_sessions(history)
    assert result.verdict == frozenset({"diverges"})
    assert result.counts["users_diverged"] == 1
    assert result.counts["users_wrong_sequence"] == 0
    assert result.counts["users"] == 2
    assert result.counts["processes_under_load"] == 2
    assert result.examples == [{"client": "u0", "values": [(1, "i0/101"), (1, "i0/202"), (2, "i0/101"), (2, "i0/202")]}]


def test_sessions_errors_are_flagged_and_left_out_of_the_sequence():
    u0 = session_user("u0", [1, 2, 3])
    history = interleave(u0, session_user("u1", [1, 2]))
    history.append(failed(req=99, invoke=99, status=0, error="ConnectionError", client="u0", value=None))
    history.append(failed(req=100, invoke=100, status=500, client="u1", value=None))
    result = check_sessions(history)
    assert result.verdict == frozenset({"error"})
    assert result.counts["errors"] == 2
    assert result.counts["attempted"] == 7
    assert result.counts["acknowledged"] == 5
    assert [ex["req"] for ex in result.examples] == [99, 100]


def test_sessions_final_phase_is_ignored():
    history = session_user("u0", [1, 2]) + [
        entry(client="u0", req=50, op="read", phase="final", value=7, owner="someone-else"),
    ]
    result = check_sessions(history)
    assert result.verdict == CORRECT
    assert result.counts["attempted"] == 2


def test_sessions_all_anomalies_together():
    leaky = session_user("u0", [1, 2])
    leaky[1]["owner"] = "u9"
    history = interleave(
        leaky,
        session_user("u1", [1, 1, 2, 2], [P1, P2, P1, P2]),
        session_user("u2", [1, 1]),
    )
    history.append(failed(req=99, invoke=99, client="u3"))
    result = check_sessions(history)
    assert result.verdict == frozenset({"leaks", "diverges", "lost-updates", "error"})
    assert result.counts["leaked_responses"] == 1
    assert result.counts["users_diverged"] == 1
    assert result.counts["users_wrong_sequence"] == 1
    assert result.counts["errors"] == 1
    assert len(result.examples) == 4
    assert result.examples[1]["client"] == "u1"
    assert result.examples[2] == {"client": "u2", "values": [1, 1]}


def test_sessions_examples_are_capped():
    history = []
    for i in range(10):
        history += session_user(f"u{i}", [1], reqs=[i], owner="intruder")
    history += [failed(req=100 + k, invoke=100 + k) for k in range(10)]
    result = check_sessions(history)
    assert result.counts["leaked_responses"] == 10
    assert result.counts["errors"] == 10
    assert len(result.examples) == 2 * MAX_EXAMPLES


# --------------------------------------------------------------------------- check_isolation


def test_isolation_every_token_comes_back():
    history = [echo(f"u{k % 3}-{k:04x}", req=k, proc=[P1, P2, P3][k % 3]) for k in range(9)]
    result = check_isolation(history)
    assert result.verdict == CORRECT
    assert result.counts == {
        "attempted": 9,
        "acknowledged": 9,
        "errors": 0,
        "leaked_responses": 0,
        "processes_under_load": 3,
        "unanswered": 0,
        "error_kinds": {},
    }
    assert result.examples == []


def test_isolation_one_foreign_token_is_a_leak():
    history = [echo(f"u0-{k:04x}", req=k) for k in range(5)]
    history[2]["value"] = "u1-beef"  # another request's token
    result = check_isolation(history)
    assert result.verdict == frozenset({"leaks"})
    assert result.counts["leaked_responses"] == 1
    assert result.counts["acknowledged"] == 5
    assert result.examples == [brief(history[2])]
    assert result.examples[0]["sent"] == "u0-0002"
    assert result.examples[0]["value"] == "u1-beef"


def test_isolation_missing_token_is_a_leak():
    history = [echo("u0-aa", req=0), echo("u0-bb", req=1)]
    history[1]["value"] = None
    result = check_isolation(history)
    assert result.verdict == frozenset({"leaks"})
    assert result.counts["leaked_responses"] == 1


def test_isolation_errors_are_flagged_not_leaks():
    history = [
        echo("u0-aa", req=0),
        echo("u0-bb", req=1, status=500, error="HTTP 500", value="garbage"),
        echo("u0-cc", req=2, status=0, error="ConnectionError"),
    ]
    result = check_isolation(history)
    assert result.verdict == frozenset({"error"})
    assert result.counts["errors"] == 2
    assert result.counts["acknowledged"] == 1
    assert result.counts["leaked_responses"] == 0  # a failed request's body is not evidence of a leak
    assert [ex["req"] for ex in result.examples] == [1, 2]


def test_isolation_leaks_and_errors_together_capped():
    history = [echo(f"t{k}", req=k, value=f"x{k}") for k in range(5)]
    history += [echo(f"e{k}", req=10 + k, status=500, error="HTTP 500") for k in range(5)]
    result = check_isolation(history)
    assert result.verdict == frozenset({"leaks", "error"})
    assert result.counts["leaked_responses"] == 5
    assert result.counts["errors"] == 5
    assert len(result.examples) == 2 * MAX_EXAMPLES
    assert [ex["req"] for ex in result.examples] == [0, 1, 2, 10, 11, 12]


def test_isolation_final_phase_is_ignored():
    history = [echo("u0-aa", req=0), echo("u0-bb", req=1, phase="final", value="other")]
    result = check_isolation(history)
    assert result.verdict == CORRECT
    assert result.counts["attempted"] == 1


# --------------------------------------------------------------------------- check_crossed


def test_crossed_every_nonce_read_back_is_correct():
    history = [echo(f"u{k}-n{k}", req=k, proc=[P1, P2][k % 2], client=f"u{k}") for k in range(6)]
    result = check_crossed(history)
    assert result.verdict == CORRECT
    assert (result.counts["crossed_responses"], result.counts["not_read_back"]) == (0, 0)
    assert result.counts["acknowledged"] == 6 and result.counts["processes_under_load"] == 2


def test_crossed_a_read_that_returns_another_requests_nonce_is_flagged():
    # Two processes share one socket: u1 reads the answer meant for u0, u0 gets u1's.
    history = [echo("u0-aa", req=0, value="u1-bb", proc=P1, client="u0"),
               echo("u1-bb", req=1, value="u0-aa", proc=P2, client="u1"),
               echo("u2-cc", req=2, proc=P1, client="u2")]
    result = check_crossed(history)
    assert result.verdict == frozenset({"crossed"})
    assert result.counts["crossed_responses"] == 2 and result.counts["not_read_back"] == 0
    assert result.examples[0]["got"]["req"] == 0 and result.examples[0]["whose"]["req"] == 1


def test_crossed_a_read_that_returns_no_nonce_at_all_is_an_error_named_not_read_back():
    history = [echo("u0-aa", req=0), echo("u1-bb", req=1, value="STORED"), echo("u2-cc", req=2)]
    history[0]["value"] = None  # the read found nothing: the write's answer, or the read's, went elsewhere
    result = check_crossed(history)
    assert result.verdict == frozenset({"error"})
    assert result.counts["not_read_back"] == 2 and result.counts["crossed_responses"] == 0
    assert list(result.error_texts) == [NOT_READ_BACK] and result.error_texts[NOT_READ_BACK] == 2


def test_crossed_failed_requests_are_errors_and_their_bodies_no_evidence():
    history = [echo("u0-aa", req=0), echo("u1-bb", req=1, status=500, error="internal: KeyError", value="u0-aa")]
    result = check_crossed(history)
    assert result.verdict == frozenset({"error"})
    assert result.counts["crossed_responses"] == 0 and result.error_texts == {"internal: KeyError": 1}


# --------------------------------------------------------------------------- plumbing


def test_check_dispatches_by_kind():
    assert CHECKERS == {
        "counter": check_counter,
        "same-user": check_counter,
        "session": check_sessions,
        "isolation": check_isolation,
        "unique": check_unique,
        "nonce": check_crossed,
    }
    counter_history = sequential([1, 2, 2]) + [final(2)]
    assert check("counter", counter_history) == check_counter(counter_history)
    assert check("same-user", counter_history).verdict == frozenset({"lost-updates"})
    assert check("session", session_user("u0", [1, 1])).verdict == frozenset({"lost-updates"})
    assert check("isolation", [echo("a", value="b")]).verdict == frozenset({"leaks"})
    with pytest.raises(KeyError):
        check("no-such-check", [])


def test_result_to_dict_sorts_verdict():
    result = CheckResult(frozenset({"lost-updates", "diverges", "error"}), {"lost": 1}, [{"req": 1}], ["n"])
    assert result.to_dict() == {
        "verdict": ["diverges", "error", "lost-updates"],
        "counts": {"lost": 1},
        "examples": [{"req": 1}],
        "notes": ["n"],
    }


def test_brief_keeps_known_fields_that_are_set():
    e = entry(req=7, value=0, status=0, error="boom", owner=None, sent=None)
    b = brief(e)
    assert b["value"] == 0  # falsy but set: kept
    assert b["status"] == 0
    assert "owner" not in b and "sent" not in b  # None: dropped
    assert "tid" not in b and "phase" not in b  # not among the brief's fields
    assert set(b) <= {
        "client",
        "req",
        "op",
        "invoke",
        "complete",
        "status",
        "value",
        "sent",
        "owner",
        "pid",
        "instance",
        "error",
    }


def test_exited_entries_name_the_processes_that_served_load_and_are_gone():
    import itertools

    from loadtests.history import exited_entries

    history = [
        {"client": "u0", "req": 0, "op": "incr", "phase": "load", "invoke": 0.0, "complete": 0.1, "status": 200,
         "value": 1, "pid": 10, "instance": "c1"},
        {"client": "u1", "req": 1, "op": "incr", "phase": "load", "invoke": 0.0, "complete": 0.1, "status": 200,
         "value": 1, "pid": 11, "instance": "c1"},
        {"client": "u2", "req": 2, "op": "incr", "phase": "load", "invoke": 0.0, "complete": 0.1, "status": 200,
         "value": 1, "pid": 12, "instance": "c1"},
        {"client": "final0", "req": 3, "op": "read", "phase": "final", "invoke": 1.0, "complete": 1.1, "status": 200,
         "value": 1, "pid": 12, "instance": "c1"},
    ]
    live = {"c1/11", "c1/12"}
    exited = exited_entries(history, live.__contains__, 2.0, itertools.count(4))
    # 10 is gone; 11 is alive but unread (the checker must call that inconclusive); 12 was read.
    assert [(e["pid"], e["phase"], e["req"]) for e in exited] == [(10, "exited", 4)]
    assert exited_entries(history, lambda p: True, 2.0, itertools.count(4)) == []


def test_an_answer_without_its_owner_is_a_leak_where_other_answers_name_theirs():
    from loadtests.checkers import check_sessions

    def e(req, client, value, **extra):
        return {"client": client, "req": req, "op": "incr", "phase": "load", "invoke": req * 0.01,
                "complete": req * 0.01 + 0.001, "status": 200, "value": value, "pid": 1, "instance": "i1", **extra}

    named = [e(0, "u0", 1, owner="u0"), e(1, "u0", 2, owner="u0"), e(2, "u1", 1, owner="u1")]
    assert check_sessions(named).verdict == {"correct"}
    assert "leaks" in check_sessions(named + [e(3, "u1", 2)]).verdict  # the lab's app names every owner
    assert check_sessions([e(0, "u0", 1), e(1, "u0", 2)]).verdict == {"correct"}  # a user's app names none


# --------------------------------------------------------------------------- every process loaded


def test_a_clean_history_that_reached_every_process_keeps_its_verdict():
    history = sequential([1, 2, 3, 4], [P1, P2, P1, P2]) + [final(4, P1), final(4, P2, req=10_001)]
    result = every_process_loaded(check_counter(history), processes=2)
    assert result.verdict == CORRECT
    assert result.notes == []


def test_a_clean_history_that_reached_one_of_two_processes_is_inconclusive():
    """gthread-2x8-preload, seen: nginx's kept-alive connections all on one worker for 14 cells - a dict per
    worker then reads as one correct counter."""
    history = sequential([1, 2, 3, 4]) + [final(4, P1)]
    result = every_process_loaded(check_counter(history), processes=2)
    assert result.verdict == frozenset({"inconclusive"})
    assert "reached 1 of the 2 processes" in result.notes[-1]
    # with an anomaly beside it, the anomaly stays and the missing process is said too
    lossy = sequential([1, 1, 2]) + [final(2, P1)]
    result = every_process_loaded(check_counter(lossy), processes=4)
    assert "lost-updates" in result.verdict and "inconclusive" in result.verdict


def test_a_history_with_failures_or_one_process_is_not_held_to_the_rule():
    history = [*sequential([1, 2]), failed(req=50, invoke=3.0), final(2, P1)]
    assert every_process_loaded(check_counter(history), processes=2).verdict == frozenset({"error"})
    one = sequential([1, 2]) + [final(2, P1)]
    assert every_process_loaded(check_counter(one), processes=1).verdict == CORRECT


def test_a_history_that_names_no_server_process_is_not_held_to_the_rule():
    """A user's app names no pid: its answers cannot say how many processes served them (seen: the redis shop's
    correct endpoints all inconclusive under sync-x4), while the lab's own app under the same load is held to it."""
    anonymous = {"pid": None, "instance": None}
    history = sequential([1, 2, 3, 4], [anonymous] * 4) + [final(4, anonymous)]
    result = every_process_loaded(check_counter(history), processes=4)
    assert result.counts["processes_under_load"] == 0
    assert result.verdict == CORRECT
    named = sequential([1, 2, 3, 4]) + [final(4, P1)]
    assert every_process_loaded(check_counter(named), processes=4).verdict == frozenset({"inconclusive"})


def test_counter_one_shared_counter_that_lost_most_increments_is_not_one_per_process():
    # gunicorn's stash under gevent-x4: greenlets of every worker read the same value and write +1, so every
    # process sees every value 1..3 many times - the shape of a counter per process - yet all read 3 at rest,
    # below each one's own 4 acknowledged increments: one counter, read alike, that lost updates.
    values = [1, 1, 2, 2, 3, 3, 3, 3]
    history = sequential(values, [P1, P2] * 4) + [final(3, P1), final(3, P2, req=10_001)]
    result = check_counter(history)
    assert result.verdict == frozenset({"lost-updates"})
    assert result.counts["final"] == 3 and result.counts["lost"] == 5


def test_counter_per_process_counters_that_lost_increments_and_disagree_still_diverge():
    # The same shape with reads at rest that disagree: a counter per process, each losing increments.
    values = [1, 1, 2, 2, 3, 3, 3, 3]
    history = sequential(values, [P1, P2] * 4) + [final(3, P1), final(4, P2, req=10_001)]
    result = check_counter(history)
    assert result.verdict == frozenset({"diverges", "lost-updates"})
