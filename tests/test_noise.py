"""Noise is not news: a cell's rps carries its own spread, and a compare marks a change only beyond both runs'."""

from workerlab.present.html import beyond_noise, compare
from workerlab.results import rps_spread


def _oks(times):
    return [{"status": 200, "invoke": t, "complete": t} for t in times]


def test_a_steady_load_has_a_narrow_spread_and_a_stall_a_wide_one():
    steady = _oks([i / 100 for i in range(500)])  # 100 a second for 5 s
    low, high = rps_spread(steady, 0.0, 5.0)
    assert 95 <= low <= high <= 105
    stalled = _oks([i / 100 for i in range(400)] + [4.99] * 10)  # nothing between 4 s and the end
    low, high = rps_spread(stalled, 0.0, 5.0)
    assert low < 15 and high >= 100


def test_too_few_requests_give_no_spread():
    assert rps_spread(_oks([0.1, 0.2]), 0.0, 1.0) is None


def test_a_difference_inside_either_runs_spread_is_noise():
    assert beyond_noise(300.0, 270.0, [250.0, 330.0], [240.0, 310.0]) is False  # 270 lies in A's spread
    assert beyond_noise(300.0, 330.0, [290.0, 310.0], [290.0, 340.0]) is False  # 300 lies in B's spread


def test_a_difference_outside_both_spreads_is_a_change():
    assert beyond_noise(300.0, 150.0, [290.0, 310.0], [140.0, 160.0]) is True
    assert beyond_noise(300.0, 150.0, None, None) is True  # no spread known: every difference counts
    assert beyond_noise(None, 150.0, None, None) is None


def _run(rps, spread, cpu=None, grain=None):
    return {"run_id": "r", "cells": [{"strategy": "redis-incr", "scenario": "sync-x4", "match": True,
                                      "observed": {"verdict": ["correct"], "label": "correct"},
                                      "expected": {"verdict": ["correct"], "label": "correct"},
                                      "throughput": {"rps": rps, "rps_spread": spread, "p99_ms": 10.0,
                                                     "cpu_us_per_request": cpu, "cpu_us_grain": grain}}]}


def test_compare_counts_changes_beyond_noise_apart():
    same = compare(_run(300.0, [250.0, 340.0], 1000.0, 20.0), _run(280.0, [240.0, 320.0], 1015.0, 20.0))
    assert same["summary"]["rps_changes_beyond_noise"] == 0 and same["summary"]["rps_within_noise"] == 1
    assert same["rows"][0]["cpu_beyond_noise"] is False  # 15 µs apart, within 2 x 20 µs of ticks
    moved = compare(_run(300.0, [290.0, 310.0], 1000.0, 20.0), _run(150.0, [140.0, 160.0], 1500.0, 20.0))
    assert moved["summary"]["rps_changes_beyond_noise"] == 1 and moved["rows"][0]["cpu_beyond_noise"] is True


def test_throughput_counts_every_2xx_answer_and_no_failure():
    """A user's app may answer 201 (an order made): those are answers, a 500 and a dropped request are not."""
    from workerlab.results import throughput

    def entry(t, status, **extra):
        return {"client": "u0", "req": int(t * 100), "phase": "load", "invoke": t, "complete": t + 0.01,
                "status": status, **extra}

    history = ([entry(i / 100, 201) for i in range(50)] + [entry(0.5 + i / 100, 200) for i in range(50)]
               + [entry(0.2, 500), entry(0.3, 0, error="timed out")])
    figures = throughput(history, {})
    assert figures["rps"] == round(100 / 1.0, 1)  # 100 answers over the load's 1.0 s (0.0 to 1.0)
