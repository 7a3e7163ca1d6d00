"""The stop rules of the reads at rest (loadtests/final_reads.py): when may the final reads stop?"""

from loadtests.final_reads import EveryProcessSeen, Reads, Settled


def _reads(answered: set[str], ok: int | None = None, fruitless: int = 0) -> Reads:
    return Reads(sent=ok or len(answered), ok=len(answered) if ok is None else ok, answered=set(answered),
                 fruitless=fruitless)


def test_every_process_seen_waits_for_each_process_that_served_load():
    rule = EveryProcessSeen({"i1/10", "i1/11"})
    assert not rule.done(_reads({"i1/10"}))
    assert rule.done(_reads({"i1/10", "i1/11"}))
    assert rule.done(_reads({"i1/10"}, fruitless=3))  # the other one is gone (a recycled worker)


def test_settled_shared_store_needs_every_instance_that_served_load():
    rule = Settled({"i1/10", "i2/20", "i3/30"}, alive=lambda p: True, shared=True)
    assert not rule.done(_reads({"i1/10", "i1/11"}, ok=6))  # one instance answered six times: two unread
    assert not rule.done(_reads({"i1/10", "i2/21", "i3/30"}, ok=3))  # each once: too few to disagree
    assert rule.done(_reads({"i1/11", "i2/21", "i3/30"}, ok=6))  # any worker of each instance will do


def test_settled_per_process_state_waits_for_the_live_processes_only():
    live = {"i1/10"}
    rule = Settled({"i1/10", "i1/11"}, alive=lambda p: p in live, shared=False)
    assert rule.done(_reads({"i1/10"}))  # 11 died in the fault: it never answers
    live.add("i1/11")
    rule = Settled({"i1/10", "i1/11"}, alive=lambda p: p in live, shared=False)
    assert not rule.done(_reads({"i1/10"}))


def test_settled_stops_at_its_deadline_whatever_answered():
    rule = Settled({"i1/10"}, alive=lambda p: True, shared=True, seconds=0.0)
    assert rule.done(_reads(set(), ok=0))
