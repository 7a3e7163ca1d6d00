"""Checkers for cells run under a fault (``workerlab faults``), over the same histories as checkers.py.

The counter rule is Jepsen's: every acknowledged increment must be reflected in a later
read - the quiescent final read after the fault has run its course. Lower bound =
acknowledged increments, upper bound = attempted ones (a request that failed may still
have counted). What sits between the bounds is fine; what falls below is lost.

Where the state lives decides who must remember it (``scope``):

- ``store``: one shared counter (redis, memcached, SQLite, the manager server);
- ``process``: one counter per server process (module globals, SimpleCache) - a process
  that dies takes its count with it, and its replacement starts from zero;
- sessions: one counter per user, who must see 1, 2, 3 ... with no step back.

Verdict words (fault verdicts, not the matrix's):

- ``survives``: no acknowledged increment lost;
- ``resets``: state went back to empty - a process died holding its count, a user's
  session started again from 1, or a shared counter kept nothing acknowledged before
  the fault;
- ``loses-acked-writes``: some acknowledged increments are gone, but not all of them;
- ``over-counts``: the final value exceeds the attempted increments (upper bound broken);
- ``diverges``: the reads at rest of one shared counter disagree (the instances see different
  stores, or a replica is behind);
- ``leaks``: a user saw another user's session;
- ``unavailable``: the final reads found nothing to read: the service never recovered;
- ``inconclusive``: the reads at rest missed a live process, or an instance that served load: what it
  holds is unknown (the notes name them).

Going back is a verdict too: an acknowledged increment whose value is not above one that completed
before it began (in one store; for ``process``, in one process) lost an acknowledged write, whatever
the final read says (``loses-acked-writes``, unless the state reset).

Besides the verdict: requests failed during the fault - split into *dropped* (no HTTP answer: the
connection was refused, reset or closed under the request, or it was still in flight when the cell ended)
and *errored* (an HTTP error answer: nginx's 502, the app's 503) - and the time to recover (from the
fault until the first success after the last failure).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from .checkers import CheckResult
from .counter_rules import realtime_per_process, realtime_violations
from .history import MAX_EXAMPLES, brief, ok, process_of
from .verdicts import (
    DIVERGES,
    INCONCLUSIVE,
    LEAKS,
    LOSES_ACKED_WRITES,
    OVER_COUNTS,
    RESETS,
    SURVIVES,
    UNAVAILABLE,
)


def _verdict(words: set[str]) -> frozenset[str]:
    return frozenset(words) if words else frozenset({SURVIVES})


def outage(history: list[dict], fault_at: float) -> dict:
    """Requests failed before and during (= from) the fault - dropped without an answer or answered with an
    HTTP error - and how long until it was over."""
    load = [e for e in history if e.get("phase", "load") == "load"]
    failed = [e for e in load if not ok(e)]
    during = [e for e in failed if e["complete"] >= fault_at]
    recover_s = 0.0
    recovered = True
    if during:
        last_failure = max(e["complete"] for e in during)
        after = [e["complete"] for e in load if ok(e) and e["complete"] > last_failure]
        recovered = bool(after)
        recover_s = round((min(after) if after else last_failure) - fault_at, 3)
    dropped = sum(1 for e in during if not e.get("status"))  # no HTTP answer at all (status 0)
    return {
        "failed_before_fault": len(failed) - len(during),
        "failed_during_fault": len(during),
        "dropped_during_fault": dropped,
        "errored_during_fault": len(during) - dropped,
        "recover_s": recover_s,
        "recovered": recovered,
        "failure_kinds": dict(Counter(f"HTTP {e['status']}" if e.get("status") else (e.get("error") or "?")[:60]
                                      for e in during).most_common(4)),
    }


def check_counter_fault(history: list[dict], *, scope: str, fault_at: float, moment: bool = True,
                        dead: frozenset[str] | set[str] = frozenset()) -> CheckResult:
    """``fault_at``: seconds since the cell's t0; ``moment``: False for a fault that lasts the whole
    run (worker recycling); ``dead``: processes (instance/pid) known to have exited by the end."""
    load = [e for e in history if e.get("phase", "load") == "load"]
    acks = [e for e in load if ok(e) and isinstance(e.get("value"), int)]
    finals = sorted((e for e in history if e.get("phase") == "final" and ok(e) and isinstance(e.get("value"), int)),
                    key=lambda e: e["complete"])
    words: set[str] = set()
    notes: list[str] = []
    examples: list[dict] = []
    acked_before = sum(1 for e in acks if e["complete"] < fault_at)
    after = sorted((e for e in acks if e["invoke"] >= fault_at), key=lambda e: e["invoke"])
    counts: dict = {
        "attempted": len(load),
        "acknowledged": len(acks),
        "acknowledged_before_fault": acked_before,
        "first_value_after_fault": after[0]["value"] if after else None,
    }
    if not finals:
        words.add(UNAVAILABLE)
        notes.append("no final read answered after the fault")
        lost = None
    elif scope == "store":
        final = finals[-1]["value"]
        if len({e["value"] for e in finals}) > 1:
            words.add(DIVERGES)
            notes.append(f"final reads disagree: {sorted({e['value'] for e in finals})[:6]}")
        unread = sorted({e.get("instance") for e in acks} - {e.get("instance") for e in finals}, key=str)
        counts["instances_unread"] = len(unread)
        if unread:
            words.add(INCONCLUSIVE)
            notes.append(f"instance(s) {unread[:4]} served load but answered no read at rest")
        lost = max(0, len(acks) - final)
        counts["final"] = final
        counts["over_counted"] = max(0, final - len(load))  # increments beyond every request sent: counted twice
        if final > len(load):
            words.add(OVER_COUNTS)
            notes.append(f"final value {final} exceeds the {len(load)} attempted increments")
        if lost:
            resets = moment and acked_before > 0 and lost >= acked_before
            words.add(RESETS if resets else LOSES_ACKED_WRITES)
            examples.append({"final_read": brief(finals[-1]), "acknowledged": len(acks)})
    elif scope == "process":
        acks_by_process = Counter(process_of(e) for e in acks)
        final_by_process = {process_of(e): e["value"] for e in finals}
        lost = 0
        died: dict[str, int] = {}
        unknown: list[str] = []
        for proc, acked in acks_by_process.items():
            if proc in final_by_process:
                lost += max(0, acked - final_by_process[proc])
            elif proc in dead:
                died[proc] = acked
                lost += acked
            else:
                unknown.append(proc)
        first_by_process: dict[str, dict] = {}
        for e in sorted(acks, key=lambda e: e["invoke"]):
            first_by_process.setdefault(process_of(e), e)
        fresh = [p for p, e in first_by_process.items() if e["invoke"] >= fault_at and e["value"] == 1]
        counts.update({
            "processes_under_load": len(acks_by_process),
            "processes_died": len(died),
            "acknowledged_in_dead_processes": sum(died.values()),
            "fresh_processes_from_zero": len(fresh),
            "processes_unread": len(unknown),
        })
        if unknown:
            words.add(INCONCLUSIVE)
            notes.append(f"{len(unknown)} live process(es) did not answer the final reads: what they hold is unknown")
        if died:
            words.add(RESETS)
            examples.append({"died_holding": dict(sorted(died.items())[:4])})
        if lost - sum(died.values()) > 0:
            words.add(LOSES_ACKED_WRITES)
    else:
        raise ValueError(f"scope {scope!r}: store or process")
    counts["lost"] = lost
    # An ack whose value is not above one that completed before it began (in the store; in its process).
    violations, rt_examples = realtime_violations(acks) if scope == "store" else realtime_per_process(acks)
    counts["went_back"] = violations
    examples.extend(rt_examples[:1])
    if violations and not words & {RESETS, LOSES_ACKED_WRITES}:
        words.add(LOSES_ACKED_WRITES)
        notes.append(f"{violations} acknowledged increment(s) went back below one acknowledged before them")
    counts.update(outage(history, fault_at))
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES], notes)


def check_sessions_fault(history: list[dict], *, fault_at: float) -> CheckResult:
    """Each user must see 1, 2, 3 ...; a gap after a failed request is allowed (it may have counted)."""
    load = [e for e in history if e.get("phase", "load") == "load"]
    by_client: dict[str, list[dict]] = defaultdict(list)
    for e in load:
        by_client[e["client"]].append(e)
    words: set[str] = set()
    examples: list[dict] = []
    reset_users: list[str] = []
    stepped_back: list[str] = []
    lost = 0
    leaks = [e for e in load if ok(e) and e.get("owner") not in (None, e["client"])]
    for client, entries in sorted(by_client.items()):
        entries.sort(key=lambda e: e["req"])
        last = 0
        for e in entries:
            if not ok(e) or not isinstance(e.get("value"), int):
                continue
            v = e["value"]
            if v <= last:  # the increments last-v+1 .. last, each acknowledged, are gone
                lost += last - v + 1
                if v == 1:
                    reset_users.append(client)
                else:
                    stepped_back.append(client)
                if len(examples) < MAX_EXAMPLES:
                    examples.append({"client": client, "after": last, "then": brief(e)})
            last = v
    reset_users = sorted(set(reset_users))
    stepped_back = sorted(set(stepped_back) - set(reset_users))
    if reset_users:
        words.add(RESETS)
    if stepped_back:
        words.add(LOSES_ACKED_WRITES)
    if leaks:
        words.add(LEAKS)
        examples.extend(brief(e) for e in leaks[:MAX_EXAMPLES])
    acks = [e for e in load if ok(e)]
    if load and not any(e["complete"] >= fault_at for e in acks):
        words.add(UNAVAILABLE)
    counts = {
        "attempted": len(load),
        "acknowledged": len(acks),
        "users": len(by_client),
        "users_lost_session": len(reset_users),
        "users_stepped_back": len(stepped_back),
        "lost": lost,
        "leaked_responses": len(leaks),
        "users_lost": (reset_users + stepped_back)[:50],
    }
    counts.update(outage(history, fault_at))
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES])
