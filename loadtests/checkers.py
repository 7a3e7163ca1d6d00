"""Checkers over recorded histories, in the spirit of Jepsen's unique-ids and counter checks.

Each takes a cell's history (see history.py) and returns a CheckResult: a verdict
(a set of words: correct | lost-updates | diverges | over-counts | leaks | crossed |
error | no-answer | inconclusive), the evidence counts, and a few concrete entries that show
the anomaly. Every rule below is a verdict word, never only a note:

- every request: a failed one (or a 200 without its value: malformed) is ``error``, its
  text counted (``error_texts``: an expected error names its cause); one still in
  flight when the cell ended is ``no-answer`` (counted as ``unanswered``).
- check_counter: lost updates (acknowledged increments vs the value the quiescent
  final reads see: lower bound = acknowledged, upper bound = attempted, above it
  ``over-counts``; or more answers at or below some value v than v, which no counter
  that keeps every increment can give); real-time order (if A completed before B
  began, value(A) < value(B), else ``lost-updates``); ``duplicates``: a value handed
  out twice while none of that proves an increment lost (the seed's
  ``self.param += 1; return self.param`` with a switch between the two: both read
  the later value, the earlier one is skipped) - with lost updates, a repeated value
  is the lost update's doing and the cell says ``lost-updates`` alone; ``diverges``
  only where each process's own acknowledged values run 1..n, gaps only where values
  repeat (a counter per process; real time, duplicates and losses are then judged per
  process) - unless every process reads one value at rest that is below some process's
  own count: that is one shared counter that lost increments, read alike by all.
  ``inconclusive`` when acknowledged increments exist but no final read answered, some
  failed, or they reached fewer processes than served load.
  Where no answer names who served it (a user's app: no pid, no instance), reads at rest that disagree
  are ``diverges`` (more than one copy of the counter answers), and the per-process rules are not judged
  (the notes say so).
- check_sessions: each user must see 1, 2, 3 ... and only its own session (an answer that names no
  owner - a user's app that declares none - is not judged for leaks).
- check_isolation: the token read back must be the token sent.
- check_unique: every answer's value distinct (a user's ids, tokens); a value handed out twice is
  ``lost-updates``.
- check_crossed: each request writes its own nonce to a store under a key of its own and reads it back
  through the same client; a read that returns *another request's* nonce is ``crossed`` (one connection
  shared by several processes or threads handed the answer to the wrong caller), a read that returns
  neither is an ``error`` (``not read back``).
- every_process_loaded (over any checker's result, given the runtime model's long-lived processes): a clean
  history whose load reached fewer of them is ``inconclusive`` - a dict per worker it missed cannot show.
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from .counter_rules import (
    lost_shown_by_values,
    one_counter_read_alike,
    per_process_counters,
    realtime_per_process,
    realtime_violations,
)
from .history import MAX_EXAMPLES, brief, ok, process_of
from .verdicts import (
    CORRECT,
    CROSSED,
    DIVERGES,
    DUPLICATES,
    ERROR,
    INCONCLUSIVE,
    LEAKS,
    LOST_UPDATES,
    OVER_COUNTS,
    UNANSWERED,
)

MALFORMED = "malformed: a 200 answer without an integer value"
NOT_READ_BACK = "not read back: a 200 answer whose value is neither the nonce sent nor another request's"
SERVED_BY_UNKNOWN = ("no answer names who served it: the per-process rules (a counter per process, real-time "
                     "order per process) are not judged")


@dataclass
class CheckResult:
    verdict: frozenset[str]
    counts: dict = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Every failed request's error text (the app's "code: message", "HTTP 502", an exception), counted:
    # an expected error names its cause, and workerlab/expected.py matches it against these.
    error_texts: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "verdict": sorted(self.verdict),
            "counts": self.counts,
            "examples": self.examples,
            "notes": self.notes,
        }


def _verdict(words: set[str]) -> frozenset[str]:
    return frozenset(words) if words else frozenset({CORRECT})


def _named(entry: dict) -> bool:
    """Does the entry name the server process that answered it (a user's app may not)?"""
    return entry.get("pid") is not None or entry.get("instance") is not None


def _processes(entries) -> int:  # the server processes the entries name; 0 when none does (a user's app)
    return len({process_of(e) for e in entries if _named(e)})


def _load_of(history: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """A cell's load requests, those of them still in flight when it ended, and the answered rest."""
    load = [e for e in history if e.get("phase", "load") == "load"]
    return (load, *_unanswered_and_rest(load))


def _unanswered_and_rest(load: list[dict]) -> tuple[list[dict], list[dict]]:
    """The requests still in flight when the cell ended (sent, never answered), and the answered rest."""
    unanswered = [e for e in load if e.get("unanswered")]
    return unanswered, [e for e in load if not e.get("unanswered")] if unanswered else load


def _error_texts(errors: list[dict]) -> Counter:
    return Counter(str(e.get("error") or f"HTTP {e.get('status')}") for e in errors)


def _failed(words: set[str], examples: list[dict], errors: list[dict], wrong: list[dict], wrong_text: str) -> Counter:
    """Failed requests, and 200 answers without what they must carry (``wrong``, counted as ``wrong_text``), are
    an ``error``; returns every failure's text, counted."""
    texts = _error_texts(errors)
    if wrong:
        texts[wrong_text] += len(wrong)
    if errors or wrong:
        words.add(ERROR)
        examples.extend(brief(e) for e in (errors + wrong)[:MAX_EXAMPLES])
    return texts


def _account(words: set[str], counts: dict, examples: list[dict], texts: Counter, unanswered: list[dict]) -> None:
    """Every request accounted for: failed ones are an error (their kinds counted), unanswered ones say so."""
    counts["error_kinds"] = {t[:120]: n for t, n in texts.most_common(MAX_EXAMPLES)}
    counts["unanswered"] = len(unanswered)
    if unanswered:
        words.add(UNANSWERED)
        examples.append(brief(unanswered[0]))


def check_counter(history: list[dict]) -> CheckResult:
    """Every documented rule is a verdict word; what the history cannot decide is ``inconclusive``, with the
    reason in the notes. See the module docstring and README "How a cell is judged"."""
    load, unanswered, answered = _load_of(history)
    acks: list[dict] = []
    malformed: list[dict] = []
    errors: list[dict] = []
    for e in answered:  # one pass: a million entries are judged within the bench's target
        if not ok(e):
            errors.append(e)
        elif isinstance(e.get("value"), int):
            acks.append(e)
        else:
            malformed.append(e)
    final_phase = [e for e in history if e.get("phase") == "final"]
    finals = [e for e in final_phase if ok(e) and isinstance(e.get("value"), int)]
    finals_failed = [e for e in final_phase if not (ok(e) and isinstance(e.get("value"), int))]
    words: set[str] = set()
    notes: list[str] = []
    examples: list[dict] = []
    undecided: list[str] = []  # why the history cannot decide

    value_counts = Counter(e["value"] for e in acks)
    duplicates = sum(c - 1 for c in value_counts.values() if c > 1)
    ack_processes = [process_of(e) for e in acks]  # named once: the rules below group by it
    per_process_value = Counter(zip(ack_processes, (e["value"] for e in acks), strict=True))
    duplicates_in_process = sum(c - 1 for c in per_process_value.values() if c > 1)
    acks_by_process = Counter(ack_processes)
    # _processes(acks), from the names above: the processes the acks name (none when no entry says)
    processes_under_load = len({p for p, e in zip(ack_processes, acks, strict=True) if _named(e)})
    values_by_process: dict[str, list[int]] = defaultdict(list)
    for process, e in zip(ack_processes, acks, strict=True):
        values_by_process[process].append(e["value"])

    final_by_process: dict[str, int] = {}
    for e in sorted(finals, key=lambda e: e["complete"]):
        final_by_process[process_of(e)] = e["value"]
    final_values = set(final_by_process.values())
    # Processes that served load and no longer exist (the driver saw them gone: a fork per request).
    exited = {process_of(e) for e in history if e.get("phase") == "exited"} - final_by_process.keys()
    unread = [p for p in acks_by_process if p not in final_by_process and p not in exited]
    per_process = per_process_counters(values_by_process, len(errors) + len(malformed) + len(unanswered))
    if per_process and not exited and one_counter_read_alike(acks_by_process, final_by_process):
        per_process = False
    served_by_known = processes_under_load > 0 or _processes(finals) > 0
    if acks and not served_by_known:
        notes.append(SERVED_BY_UNKNOWN)
    if not served_by_known:
        final_values = {e["value"] for e in finals}  # every read at rest, not one per (unknown) process
    if per_process:
        shown_lost = sum(lost_shown_by_values(v) for v in values_by_process.values())
    else:
        shown_lost = lost_shown_by_values([e["value"] for e in acks])

    if acks and not finals:
        undecided.append(f"no final read answered ({len(finals_failed)} sent, all failed)" if finals_failed
                         else "no final read was made")
    elif acks and finals_failed:
        # The reads at rest go out many at once: a strategy unsafe under concurrency can fail one of them. A
        # failed read answered by a process that another read at rest reached hides nothing; one that no
        # process answered (status 0), or whose process was never read, leaves the value at rest unknown.
        hiding = [e for e in finals_failed if not (e.get("status") and _named(e) and process_of(e) in final_by_process)]
        failed = (f"{len(finals_failed)} of {len(final_phase)} final reads failed "
                  f"(e.g. {finals_failed[0].get('error') or 'no integer value'})")
        if hiding:
            undecided.append(failed)
        else:
            notes.append(f"{failed}; each answered by a process another read at rest reached")
    if unread and finals:
        undecided.append(f"final reads reached {len(acks_by_process) - len(unread)} of the "
                         f"{len(acks_by_process)} processes that served load")

    final: int | None = None
    lost: int | None = None
    over = False
    if per_process:
        # A counter per process: one that exited took its count with it; two or more read at rest disagree.
        died = sum(acks_by_process[p] for p in exited if p in acks_by_process)
        lost = died + sum(max(0, acks_by_process[p] - v) for p, v in final_by_process.items() if p in acks_by_process)
        if died:
            notes.append(f"{died} acknowledged increments died with {len(exited & acks_by_process.keys())} "
                         "exited processes")
        if len(acks_by_process.keys() & final_by_process.keys()) > 1:
            words.add(DIVERGES)
        over = sum(final_by_process.values()) > len(load)
        examples.append({"final_reads": dict(sorted(final_by_process.items())[:8])})
    elif len(final_values) > 1 and not served_by_known:
        words.add(DIVERGES)
        notes.append(f"reads at rest disagree ({sorted(final_values)[:6]}): more than one copy of the counter")
        examples.append({"final_values": sorted(final_values)[:8]})
    elif len(final_values) > 1:
        undecided.append(f"final reads disagree ({sorted(final_values)[:6]}) but the processes' acknowledged "
                         "values do not each run 1..n: neither one counter nor one per process")
        examples.append({"final_reads": dict(sorted(final_by_process.items())[:8])})
    elif final_values:
        final = next(iter(final_values))
        lost = max(0, len(acks) - final)
        over = final > len(load)
        if lost:
            examples.append({"final_read": brief(finals[-1]), "acknowledged": len(acks)})
    if over:
        words.add(OVER_COUNTS)
        notes.append(f"final value(s) {sorted(final_values)[:6]} exceed the {len(load)} attempted increments")
    violations, rt_examples = realtime_per_process(acks, ack_processes) if per_process else realtime_violations(acks)
    # One shared counter never hands out a value that is not above an increment completed before it began,
    # nor v or less to more than v requests; per-process counters may, across processes.
    if lost or shown_lost or violations:
        words.add(LOST_UPDATES)
    # A value handed out twice (within one process, for counters per process) with no increment lost.
    elif duplicates_in_process or (duplicates and not per_process):
        words.add(DUPLICATES)
    texts = _failed(words, examples, errors, malformed, MALFORMED)
    if duplicates:
        dup_values = [v for v, c in value_counts.items() if c > 1][:MAX_EXAMPLES]
        examples.extend(brief(e) for e in acks if e["value"] in dup_values[:1])
    examples.extend(rt_examples[:1])
    if undecided:
        words.add(INCONCLUSIVE)
        notes.extend(undecided)

    counts = {
        "attempted": len(load),
        "acknowledged": len(acks),
        "errors": len(errors),
        "malformed": len(malformed),
        "final": final,
        "lost": lost,
        "duplicates": duplicates,
        "duplicates_within_process": duplicates_in_process,
        "lost_shown_by_values": shown_lost,
        "realtime_violations": violations,
        "processes_under_load": processes_under_load,
        "processes_read_at_end": len(final_by_process),
        "distinct_final_values": len(final_values),
        "final_reads_failed": len(finals_failed),
        "processes_exited": len(exited & acks_by_process.keys()),
    }
    _account(words, counts, examples, texts, unanswered)
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES], notes, texts)


def _counts_from_one(values: list[int]) -> bool:
    return values == list(range(1, len(values) + 1))


def check_sessions(history: list[dict]) -> CheckResult:
    load, unanswered, answered = _load_of(history)
    by_client: dict[str, list[dict]] = defaultdict(list)
    errors = [e for e in answered if not ok(e)]
    for e in answered:
        if ok(e):
            by_client[e["client"]].append(e)
    # A user's app that declares no owner names none in any answer: leaks are not judged there. Where any
    # answer names its owner (the lab's own app), every answer must name the right one.
    owners_named = any("owner" in e for entries in by_client.values() for e in entries)
    leaks = [e for entries in by_client.values() for e in entries if owners_named and e.get("owner") != e["client"]]
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
        examples.extend(brief(e) for e in leaks[:MAX_EXAMPLES])
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
        examples.extend(brief(e) for e in errors[:MAX_EXAMPLES])
    counts = {
        "attempted": len(load),
        "acknowledged": sum(len(v) for v in by_client.values()),
        "errors": len(errors),
        "users": len(by_client),
        "users_wrong_sequence": len(wrong_users),
        "users_diverged": len(diverged_users),
        "leaked_responses": len(leaks),
        "processes_under_load": _processes(e for v in by_client.values() for e in v),
    }
    texts = _error_texts(errors)
    _account(words, counts, examples, texts, unanswered)
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES], error_texts=texts)


def check_isolation(history: list[dict]) -> CheckResult:
    load, unanswered, answered = _load_of(history)
    acks = [e for e in answered if ok(e)]
    errors = [e for e in answered if not ok(e)]
    leaks = [e for e in acks if e.get("value") != e.get("sent")]
    words: set[str] = set()
    examples: list[dict] = []
    if leaks:
        words.add(LEAKS)
        examples.extend(brief(e) for e in leaks[:MAX_EXAMPLES])
    if errors:
        words.add(ERROR)
        examples.extend(brief(e) for e in errors[:MAX_EXAMPLES])
    counts = {
        "attempted": len(load),
        "acknowledged": len(acks),
        "errors": len(errors),
        "leaked_responses": len(leaks),
        "processes_under_load": _processes(acks),
    }
    texts = _error_texts(errors)
    _account(words, counts, examples, texts, unanswered)
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES], error_texts=texts)


def check_unique(history: list[dict]) -> CheckResult:
    load, unanswered, answered = _load_of(history)
    acks = [e for e in answered if ok(e) and e.get("value") is not None]
    errors = [e for e in answered if not ok(e)]
    value_counts = Counter(str(e["value"]) for e in acks)
    duplicated = {v for v, c in value_counts.items() if c > 1}
    words: set[str] = set()
    examples: list[dict] = []
    if duplicated:
        words.add(LOST_UPDATES)
        first = next(iter(sorted(duplicated)))
        examples.extend(brief(e) for e in acks if str(e["value"]) == first)
    texts = _failed(words, examples, errors, [], "")
    counts = {
        "attempted": len(load),
        "acknowledged": len(acks),
        "errors": len(errors),
        "distinct": len(value_counts),
        "duplicates": sum(c - 1 for c in value_counts.values() if c > 1),
    }
    _account(words, counts, examples, texts, unanswered)
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES], error_texts=texts)


def check_crossed(history: list[dict]) -> CheckResult:
    """A nonce written and read back under a request's own key: another request's nonce is ``crossed``."""
    load, unanswered, answered = _load_of(history)
    acks = [e for e in answered if ok(e)]
    errors = [e for e in answered if not ok(e)]
    by_nonce = {e["sent"]: e for e in load if e.get("sent") is not None}
    wrong = [e for e in acks if e.get("value") != e.get("sent")]
    crossed = [e for e in wrong if isinstance(e.get("value"), str) and e["value"] in by_nonce]
    not_read_back = [e for e in wrong if not (isinstance(e.get("value"), str) and e["value"] in by_nonce)]
    words: set[str] = set()
    examples: list[dict] = []
    if crossed:
        words.add(CROSSED)
        examples.extend({"got": brief(e), "whose": brief(by_nonce[e["value"]])} for e in crossed[:MAX_EXAMPLES])
    texts = _failed(words, examples, errors, not_read_back, NOT_READ_BACK)
    counts = {
        "attempted": len(load),
        "acknowledged": len(acks),
        "errors": len(errors),
        "crossed_responses": len(crossed),
        "not_read_back": len(not_read_back),
        "processes_under_load": _processes(acks),
    }
    _account(words, counts, examples, texts, unanswered)
    return CheckResult(_verdict(words), counts, examples[: 2 * MAX_EXAMPLES], error_texts=texts)


CHECKERS = {
    "counter": check_counter,
    "same-user": check_counter,
    "session": check_sessions,
    "isolation": check_isolation,
    "unique": check_unique,
    "nonce": check_crossed,
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


def every_process_loaded(result: CheckResult, processes: int) -> CheckResult:
    """Rule: the load must reach every long-lived process the runtime model serves with (``processes``) before a
    clean history speaks for it; one that reached fewer is ``inconclusive`` with the reason. Histories with
    failures keep their verdict (an error is a finding whoever served it), as do those where no answer names
    who served it (processes_under_load 0)."""
    reached = result.counts.get("processes_under_load") or 0
    failed = result.counts.get("errors") or result.counts.get("unanswered")
    if processes <= 1 or not reached or reached >= processes or failed:
        return result
    return replace(result, verdict=(result.verdict - {CORRECT}) | {INCONCLUSIVE},
                   notes=[*result.notes, f"the load reached {reached} of the {processes} processes that serve: "
                                          "what the others would have done is not in the history"])
