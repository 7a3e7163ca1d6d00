"""The declared expectations cover every cell and say why."""

from __future__ import annotations

from loadtests.verdicts import MATRIX_WORDS
from workerlab.expected import expect, expectation_for
from workerlab.strategies import STRATEGIES


def test_every_cell_has_a_declared_verdict_and_reason(scenarios):
    for strategy in STRATEGIES:
        for scenario in scenarios.values():
            e = expect(strategy, scenario)
            assert e.verdict and e.verdict <= set(MATRIX_WORDS), (strategy, scenario.name)
            assert len(e.reason) > 10


def test_other_race_windows_do_not_judge_window_dependent_cells(scenarios):
    e = expectation_for("naive-global", scenarios["gthread-2x8"], "none")
    assert e.label == "any"
    assert expectation_for("naive-global", scenarios["sync-x4"], "none").label == "diverges"


def test_scenarios_declare_the_runtime_models(scenarios):
    assert {"dev-single", "dev-threaded", "dev-processes", "sync-x1", "sync-x4", "gthread-2x8", "gevent-x1",
            "gevent-x4", "gevent-unpatched", "scale-out-3"} <= set(scenarios)
    assert scenarios["scale-out-3"].instances == 3
    assert scenarios["gevent-unpatched"].in_process_concurrency == "greenlets-unpatched"
    assert scenarios["dev-processes"].forks_per_request
