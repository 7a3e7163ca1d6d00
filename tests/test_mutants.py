"""Mutants: the app's broken twins are inert unless the runner arms them, each flips its cell, and a fast
subset runs for real (real gunicorn, redis, nginx) and is caught beside a clean control that matches."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from labapp import create_app, mutants
from labapp.settings import Settings
from labapp.strategies import REGISTRY
from labtools import ROOT, processes_mentioning

from loadtests.verdicts import ANY
from workerlab.expected import expectation_for
from workerlab.faults import FAULTS, expect_fault
from workerlab.faults.run import UNPROVEN
from workerlab.mutants import ALL, FAULT_MUTANTS, MUTANTS, SCHEMA, SETTINGS, fault_verdict_of, verdict_of

# Four rules of the judge, in one scenario (one control stack): duplicates, failed final reads, a 200 without
# a value, an over-count.
FAST = ["duplicate-value", "final-read-fails", "answer-without-value", "over-count"]


# -- the declarations --------------------------------------------------------------------------------------------

def test_every_mutant_is_declared_once_on_each_side():
    assert set(MUTANTS) == set(mutants.MUTATIONS)
    assert not set(MUTANTS) & set(FAULT_MUTANTS) and len(ALL) >= 12


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_mutant_runs_where_its_rule_would_flip_a_judged_verdict(scenarios, name):
    m = MUTANTS[name]
    expected = expectation_for(m.strategy, scenarios[m.scenario], SETTINGS.race_window)
    assert expected.judged and ANY not in expected.verdict
    assert m.word not in expected.verdict | expected.maybe, "the mutant's word would not be a flip here"


@pytest.mark.parametrize("name", sorted(FAULT_MUTANTS))
def test_a_fault_mutant_runs_in_a_judged_cell_that_the_history_alone_would_pass(scenarios, name):
    m = FAULT_MUTANTS[name]
    e = expect_fault(m.strategy, FAULTS[m.fault], scenarios[m.scenario])
    assert e.label == "survives" and not e.control  # judged, and a missing fault would look the same
    assert m.mutated().inject is not FAULTS[m.fault].inject and m.mutated().proof is FAULTS[m.fault].proof


# -- the app: inert unless armed ---------------------------------------------------------------------------------

def _app(tmp_path, env: dict[str, str]):
    return create_app(Settings.from_env({"LAB_DATA_DIR": str(tmp_path), **env})).test_client()


def test_without_lab_mutant_no_strategy_is_touched():
    strategies = {name: copy.copy(s) for name, s in REGISTRY.items()}
    assert mutants.arm(None, strategies) is None and mutants.arm("", strategies) is None
    assert all(not {"incr", "read", "echo"} & vars(s).keys() for s in strategies.values())


@pytest.mark.parametrize("name", sorted(mutants.MUTATIONS))
def test_lab_mutant_replaces_one_method_of_this_apps_copy_of_one_strategy(name):
    strategies = {n: copy.copy(s) for n, s in REGISTRY.items()}
    assert mutants.arm(name, strategies) == name
    m = mutants.MUTATIONS[name]
    touched = {(n, k) for n, s in strategies.items() for k in {"incr", "read", "echo"} & vars(s).keys()}
    assert touched == {(m.strategy, m.method)}
    assert m.method not in vars(REGISTRY[m.strategy])  # the registry's own strategy stays as it is


def test_an_unarmed_app_serves_every_strategy_right_whatever_the_request_says(tmp_path):
    client = _app(tmp_path, {})
    assert "mutant" not in client.get("/health").json
    headers = {"LAB_MUTANT": "skip-a-number", "X-Lab-Mutant": "worker-resets"}
    client.set_cookie("LAB_MUTANT", "token-of-another-request")
    smuggled = "LAB_MUTANT=skip-a-number&mutant=worker-resets"
    values = [client.get(f"/s/naive-global/incr?key=inert&{smuggled}", headers=headers).json["value"]
              for _ in range(45)]
    assert values == list(range(1, 46))  # no skip at 3, no reset at 20 or 40
    for i in range(12):  # the 10th is its own
        assert client.get(f"/s/iso-request/echo?token=t{i}&{smuggled}", headers=headers).json["value"] == f"t{i}"


def test_an_armed_app_says_so_and_breaks_as_declared(tmp_path):
    client = _app(tmp_path, {"LAB_MUTANT": "skip-a-number"})
    assert client.get("/health").json["mutant"] == "skip-a-number"
    assert [client.get("/s/naive-global/incr?key=armed-skip").json["value"] for _ in range(4)] == [1, 2, 4, 5]
    client = _app(tmp_path, {"LAB_MUTANT": "worker-resets"})
    values = [client.get("/s/naive-global/incr?key=armed-reset").json["value"] for _ in range(22)]
    assert values == [*range(1, 21), 1, 2]
    client = _app(tmp_path, {"LAB_MUTANT": "token-of-another-request"})
    answers = [client.get(f"/s/iso-request/echo?token=t{i}").json["value"] for i in range(1, 11)]
    assert answers == [f"t{i}" for i in range(1, 10)] + ["t9"]


def test_an_unknown_mutant_is_a_clear_error_at_start_up():
    with pytest.raises(ValueError, match="LAB_MUTANT='nope': expected one of .*over-count"):
        Settings.from_env({"LAB_MUTANT": "nope"})


# -- caught or not: the mutants' own judge, both ways -------------------------------------------------------------

def _cell(observed: list[str], expected: list[str], match, counts=None, error=None) -> dict:
    return {"observed": {"verdict": observed, "label": "+".join(observed)},
            "expected": {"verdict": expected, "label": "+".join(expected)},
            "match": match, "counts": counts or {}, "error": error}


def test_a_mutant_is_caught_only_by_its_rule_beside_a_clean_control_that_matched():
    m = MUTANTS["duplicate-value"]  # lost-updates, with duplicates > 0
    clean = _cell(["correct"], ["correct"], True)
    flipped = _cell(["lost-updates"], ["correct"], False, {"duplicates": 1})
    assert verdict_of(m, flipped, clean) == (True, "observed lost-updates ≠ correct (duplicates=1)")
    caught, why = verdict_of(m, flipped, _cell(["lost-updates"], ["correct"], False))
    assert not caught and "its clean control gave lost-updates" in why
    assert not verdict_of(m, flipped, None)[0]
    assert not verdict_of(m, _cell(["correct"], ["correct"], True), clean)[0]  # the judge did not see it
    caught, why = verdict_of(m, _cell(["lost-updates"], ["correct"], False, {"lost": 3}), clean)
    assert not caught and "not by its rule" in why  # lost-updates, but no duplicate: another rule said no
    assert not verdict_of(m, _cell(["error"], ["correct"], False, error="stack did not start"), clean)[0]


def test_a_fault_mutant_is_caught_only_as_an_error_for_want_of_its_evidence():
    clean = _cell(["survives"], ["survives"], True)
    unproven = _cell(["survives"], ["survives"], False, error=f"{UNPROVEN}: the same server run answered")
    assert fault_verdict_of(unproven, clean)[0]
    assert not fault_verdict_of(_cell(["survives"], ["survives"], True), clean)[0]  # judged as if it happened
    assert not fault_verdict_of(_cell(["survives"], ["survives"], False, error="stack: redis exited"), clean)[0]
    assert not fault_verdict_of(unproven, _cell(["resets"], ["survives"], False))[0]
    assert not fault_verdict_of(None, clean)[0]


# -- the report's Mutants section ----------------------------------------------------------------------------------

def _record(name: str, caught: bool, control_match: bool = True, error: str | None = None) -> dict:
    return {"mutant": name, "breaks": f"what {name} breaks", "cell": "sync-x1/redis-incr", "scenario": "sync-x1",
            "strategy": "redis-incr", "fault": None, "rule": "over-counts", "caught": caught, "why": f"why {name}",
            "expected": {"verdict": ["correct"], "label": "correct"},
            "observed": {"verdict": ["over-counts"], "label": "over-counts"},
            "control": {"observed": {"verdict": ["correct"], "label": "correct"}, "match": control_match,
                        "error": None},
            "counts": {}, "notes": [], "examples": [], "history": None, "error": error}


def test_the_report_shows_the_mutants_of_its_run_folder(tmp_path):
    from workerlab.present.html import ResultsError, render_report

    (tmp_path / "results.json").write_text((ROOT / "tests" / "fixtures" / "results-sample" / "results.json")
                                           .read_text())
    assert 'id="mutants"' not in render_report(tmp_path).read_text()  # a run without mutants.json
    records = [_record("over-count", True), _record("duplicate-value", False, control_match=False),
               _record("fault-not-injected", True, error=f"{UNPROVEN}: the same server run answered")]
    data = {"schema": SCHEMA, "run_id": tmp_path.name, "status": "complete", "mutants": records,
            "summary": {"planned": 3, "mutants": 3, "caught": 2, "not_caught": 1, "controls_failed": 1}}
    (tmp_path / "mutants.json").write_text(json.dumps(data))
    html = render_report(tmp_path).read_text()
    assert 'id="mutants"' in html and 'class="badge bad" id="mutants-badge">2 of 3 mutants caught' in html
    assert 'data-mutant="duplicate-value" data-caught="false" class="changed"' in html
    assert "control did not match" in html and "error (over-counts)" in html
    (tmp_path / "mutants.json").write_text(json.dumps({**data, "schema": "worker-lab/results/v1"}))
    with pytest.raises(ResultsError, match="not a worker-lab mutants file"):
        render_report(tmp_path)


# -- a fast subset, for real --------------------------------------------------------------------------------------

@pytest.mark.stack
def test_a_fast_subset_is_caught_and_its_clean_control_matches(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workerlab", "mutants", "-m", ",".join(FAST),
                           "--output", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    [run_dir] = [p.parent for p in tmp_path.glob("*/mutants.json")]
    data = json.loads((run_dir / "mutants.json").read_text())
    assert data["schema"] == SCHEMA and data["status"] == "complete", proc.stderr[-2000:]
    assert [r["mutant"] for r in data["mutants"]] == FAST
    for r in data["mutants"]:
        assert r["control"]["match"] is True and r["control"]["observed"]["label"] == "correct", r
        assert r["caught"] is True and r["observed"]["label"] != r["expected"]["label"], r
        assert MUTANTS[r["mutant"]].word in r["observed"]["verdict"], r
    assert data["summary"] == {"planned": 4, "mutants": 4, "caught": 4, "not_caught": 0, "controls_failed": 0}
    assert proc.returncode == 0, proc.stdout[-3000:]
    controls = json.loads((run_dir / "results.json").read_text())
    assert controls["summary"]["cells"] == 1 and controls["summary"]["matched"] == 1  # one control for all four
    html = (run_dir / "report.html").read_text()
    assert 'id="mutants"' in html and "4 of 4 mutants caught" in html
    assert not processes_mentioning(run_dir)
