"""Fixed-rate load (--rate): the schedule, late and dropped starts, latency from the scheduled start, and the
stall it exists to show."""

from __future__ import annotations

import pytest

from loadtests.arrivals import Schedule
from workerlab.latency import latency


def test_constant_arrivals_are_evenly_spaced_and_end_with_the_budget():
    s = Schedule(rate=100.0, total=5, start=1.0)
    slots = [s.take() for _ in range(6)]
    assert slots[:5] == pytest.approx([1.0, 1.01, 1.02, 1.03, 1.04]) and slots[5] is None


def test_poisson_arrivals_keep_the_rate_on_average_and_repeat_with_the_seed():
    a = Schedule(rate=200.0, total=4000, start=0.0, arrivals="poisson", seed=7)
    slots = [a.take() for _ in range(4000)]
    assert 19.0 < slots[-1] < 21.0  # 4,000 arrivals at 200/s: about 20 s
    assert len(set(round(b - a, 6) for a, b in zip(slots, slots[1:], strict=False))) > 100  # not evenly spaced
    b = Schedule(rate=200.0, total=4000, start=0.0, arrivals="poisson", seed=7)
    assert [b.take() for _ in range(4000)] == slots


def test_a_start_after_its_slot_is_late_and_slots_nobody_took_are_dropped():
    s = Schedule(rate=10.0, total=100, start=0.0)
    s.started(s.take(), 0.001)  # on time
    s.started(s.take(), 0.5)  # 0.4 s late
    assert s.late == 1
    assert s.dropped(now=0.15) == 0  # the next slot (0.2 s) is not due yet
    assert s.dropped(now=1.0) == 9  # 0.2, 0.3 ... 1.0 were due and never started


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError):
        Schedule(rate=0.0, total=1, start=0.0)
    with pytest.raises(ValueError):
        Schedule(rate=1.0, total=1, start=0.0, arrivals="bursty")


def test_corrected_latency_counts_from_the_scheduled_start():
    # Ten requests scheduled 0.1 s apart; the fifth waited 1 s for a free user, then answered in 10 ms.
    load = [{"status": 200, "scheduled": i / 10, "invoke": i / 10, "complete": i / 10 + 0.01} for i in range(10)]
    load[4].update(invoke=1.4, complete=1.41)
    figures = latency(load)
    assert figures["uncorrected"]["max_ms"] == pytest.approx(10.0, rel=0.01)
    assert figures["corrected"]["max_ms"] == pytest.approx(1010.0, rel=0.01)
    assert latency([{k: v for k, v in e.items() if k != "scheduled"} for e in load])["corrected"] is None


@pytest.mark.stack
def test_a_stalled_worker_shows_in_the_corrected_p99_and_hides_from_the_closed_loop(tmp_path):
    from workerlab.bench.stall import measure_stall

    pause_s = 2.0
    r = measure_stall(tmp_path, pause_s)
    assert r["error"] is None, r
    closed, fixed = r["cells"]["closed-loop"], r["cells"]["fixed-rate"]
    assert "error" not in closed and "error" not in fixed, r
    # Every request scheduled during the stall waited for it: the corrected p99 is about the pause.
    assert fixed["latency"]["corrected"]["p99_ms"] >= 0.8 * 1000 * pause_s, fixed
    # The closed loop's few blocked users are under 1 % of its requests: its p99 does not see the stall.
    assert closed["latency"]["uncorrected"]["p99_ms"] <= 0.5 * 1000 * pause_s, closed
    assert fixed["late"] > 0 and fixed["dropped"] == 0
