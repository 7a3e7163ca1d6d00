"""A SQLAlchemy engine made at import under gunicorn's --preload, and SQLAlchemy's two fixes (an engine made on
first use, engine.dispose(close=False) after the fork): measured on real gunicorn, nginx and PostgreSQL (issue #14,
item 1)."""

from __future__ import annotations

import re

import pytest
from labtools import run_lab

from workerlab.expected_fork import SQLALCHEMY_SHARED

pytestmark = pytest.mark.stack

STRATEGIES = ("import-sqlalchemy", "lazy-sqlalchemy", "dispose-sqlalchemy")
PRELOAD = ("sync-x4-preload", "gthread-2x8-preload")
REQUESTS = 300


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[int, dict]:
    """The three rows with and without --preload (about two minutes)."""
    proc, data = run_lab(["-s", ",".join(("sync-x4", *PRELOAD)), "-t", ",".join(STRATEGIES), "-n", str(REQUESTS),
                          "-u", "25"], tmp_path_factory.mktemp("sqlalchemy"))
    assert data is not None, f"no results.json; stderr:\n{proc.stderr[-3000:]}"
    return proc.returncode, {(c["scenario"], c["strategy"]): c for c in data["cells"]}


def observed(c) -> set[str]:
    return set(c["observed"]["verdict"])


def test_every_cell_matches_its_declared_expectation(run):
    exit_code, cells = run
    wrong = [(key, c["observed"]["label"], c["expected"]["label"], c["counts"]) for key, c in cells.items()
             if not c["match"]]
    assert not wrong
    assert exit_code == 0


@pytest.mark.parametrize("scenario", PRELOAD)
def test_an_engine_used_at_import_shares_one_session_between_preloaded_workers(run, scenario):
    c = run[1][(scenario, "import-sqlalchemy")]
    n = c["counts"]
    assert "error" in observed(c) and observed(c) <= {"error", "crossed", "no-answer"}, n
    assert n["errors"] > 0 and all(re.search(SQLALCHEMY_SHARED, kind) for kind in n["error_kinds"]), n["error_kinds"]
    for example in (e for e in c["examples"] if "whose" in e):  # a crossed answer is another request's nonce
        assert example["got"]["value"] == example["whose"]["sent"] != example["got"]["sent"]
        # Within a process the pool lends a connection to one request at a time: the reply came from another
        # process (the owner's pid is unknown when it was never answered).
        assert example["whose"].get("pid") != example["got"]["pid"]


def test_without_preload_each_worker_made_its_own_engine(run):
    for strategy in STRATEGIES:
        c = run[1][("sync-x4", strategy)]
        n = c["counts"]
        assert observed(c) == {"correct"} and n["acknowledged"] == REQUESTS, (strategy, n)


@pytest.mark.parametrize("scenario", PRELOAD)
@pytest.mark.parametrize("strategy", ["lazy-sqlalchemy", "dispose-sqlalchemy"])
def test_the_fixes_read_back_every_nonce_under_preload(run, scenario, strategy):
    c = run[1][(scenario, strategy)]
    n = c["counts"]
    assert observed(c) == {"correct"}, n
    assert n["acknowledged"] == n["attempted"] == REQUESTS and n["crossed_responses"] == n["not_read_back"] == 0
    assert n["processes_under_load"] >= 2
