"""stability's comparison: a cell that gave one verdict in every run is stable; one that changed is a flip."""

from workerlab.stability import compare_runs


def _run(*cells):
    return {"cells": [{"scenario": sc, "strategy": st, "expected": {"label": exp}, "observed": {"label": obs},
                       "match": obs == exp, "error": None} for sc, st, exp, obs in cells]}


def test_the_same_verdict_in_every_run_is_stable():
    runs = [_run(("sync-x4", "redis-incr", "correct", "correct"), ("sync-x4", "naive-global", "diverges", "diverges"))
            for _ in range(3)]
    s = compare_runs(runs)["summary"]
    assert (s["runs"], s["cells"], s["stable"], s["flipped"], s["mismatched_once"]) == (3, 2, 2, 0, 0)


def test_a_verdict_that_changes_between_runs_is_a_flip_and_a_mismatch():
    runs = [_run(("gthread-2x8", "naive-global", "lost-updates", "lost-updates")),
            _run(("gthread-2x8", "naive-global", "lost-updates", "correct")),
            _run(("gthread-2x8", "naive-global", "lost-updates", "lost-updates"))]
    result = compare_runs(runs)
    assert result["summary"]["flipped"] == 1 and result["summary"]["mismatched_once"] == 1
    assert result["cells"][0]["observed"] == ["lost-updates", "correct", "lost-updates"]


def test_a_cell_missing_from_one_run_is_not_stable():
    runs = [_run(("sync-x1", "redis-incr", "correct", "correct")), _run()]
    assert compare_runs(runs)["summary"]["flipped"] == 1
