"""Clients and threads made at import under gunicorn's --preload, their fixes, and gunicorn's own stash:
measured on real gunicorn, nginx, redis and memcached (issue #14, items 1 and 3)."""

from __future__ import annotations

import re

import pytest
from labtools import run_lab

from workerlab.expected_fork import NO_ARBITER, PYMEMCACHE_SHARED, PYTHON_MEMCACHED_SHARED

pytestmark = pytest.mark.stack

FORK_STRATEGIES = ("import-redis", "import-pymemcache", "import-python-memcached", "lazy-pymemcache", "import-thread",
                   "lazy-thread", "gunicorn-stash")
PRELOAD = ("sync-x4-preload", "gthread-2x8-preload")


def _run(output, scenarios: str, strategies: str) -> dict:
    proc, data = run_lab(["-s", scenarios, "-t", strategies, "-n", "300", "-u", "25"], output)
    assert data is not None, f"no results.json; stderr:\n{proc.stderr[-3000:]}"
    data["_exit_code"] = proc.returncode
    return data


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[dict]:
    """The fork-safety rows with and without --preload, and the stash under one worker, three instances and
    the dev server (about two minutes)."""
    return [_run(tmp_path_factory.mktemp("fork"), ",".join(("sync-x4", *PRELOAD)), ",".join(FORK_STRATEGIES)),
            _run(tmp_path_factory.mktemp("stash"), "sync-x1,scale-out-3,dev-single", "gunicorn-stash")]


@pytest.fixture
def cell(runs):
    def get(scenario: str, strategy: str) -> dict:
        return next(c for run in runs for c in run["cells"] if (c["scenario"], c["strategy"]) == (scenario, strategy))
    return get


def observed(c) -> set[str]:
    return set(c["observed"]["verdict"])


def test_every_cell_matches_its_declared_expectation(runs):
    for run in runs:
        wrong = [(c["scenario"], c["strategy"], c["observed"]["label"], c["expected"]["label"], c["counts"])
                 for c in run["cells"] if not c["match"]]
        assert not wrong
        assert run["_exit_code"] == 0


@pytest.mark.parametrize("scenario", PRELOAD)
@pytest.mark.parametrize("strategy", ["import-redis", "lazy-pymemcache"])
def test_fork_safe_clients_read_back_every_nonce_under_preload(cell, scenario, strategy):
    c = cell(scenario, strategy)
    assert observed(c) == {"correct"}, c["counts"]
    n = c["counts"]
    assert n["acknowledged"] == n["attempted"] == 300 and n["crossed_responses"] == n["not_read_back"] == 0
    assert n["processes_under_load"] >= 2


def test_without_preload_each_sync_worker_has_its_own_socket_and_thread(cell):
    for strategy in ("import-pymemcache", "import-python-memcached", "import-thread"):
        c = cell("sync-x4", strategy)
        assert observed(c) == {"correct"}, (strategy, c["counts"])


@pytest.mark.parametrize("scenario", PRELOAD)
def test_a_pymemcache_socket_opened_at_import_fails_requests_under_preload(cell, scenario):
    c = cell(scenario, "import-pymemcache")
    assert observed(c) == {"error"}, c["counts"]
    kinds = c["counts"]["error_kinds"]
    assert c["counts"]["errors"] > 0 and all(re.search(PYMEMCACHE_SHARED, kind) for kind in kinds), kinds
    assert c["counts"]["crossed_responses"] == 0  # pymemcache checks each reply's key: it raises instead


def test_a_python_memcached_socket_opened_at_import_crosses_answers_under_preload(cell):
    c = cell("sync-x4-preload", "import-python-memcached")
    assert observed(c) == {"crossed", "error"}, c["counts"]
    assert c["counts"]["crossed_responses"] > 0 and c["counts"]["not_read_back"] > 0
    kinds = c["counts"]["error_kinds"]  # a read that got nothing, or (rarely) a reply torn between two readers
    assert all(re.search(PYTHON_MEMCACHED_SHARED, kind) for kind in kinds), kinds
    crossed = next(e for e in c["examples"] if "whose" in e)
    assert crossed["got"]["value"] == crossed["whose"]["sent"] != crossed["got"]["sent"]
    # A gthread worker serves on threads of its own, each with its own socket: the importing thread's is unused.
    assert observed(cell("gthread-2x8-preload", "import-python-memcached")) == {"correct"}


@pytest.mark.parametrize("scenario", PRELOAD)
def test_a_thread_started_at_import_runs_in_the_master_only(cell, scenario):
    c = cell(scenario, "import-thread")
    n = c["counts"]
    assert observed(c) == {"lost-updates"}, n
    assert n["final"] == 0 and n["lost"] == n["acknowledged"] == 300  # no worker's copy ever moved
    fixed = cell(scenario, "lazy-thread")
    assert observed(fixed) == {"correct"} and fixed["counts"]["final"] == 300, fixed["counts"]


def test_the_stash_is_shared_by_one_masters_workers_and_loses_their_updates(cell):
    c = cell("sync-x4-preload", "gunicorn-stash")
    n = c["counts"]
    assert observed(c) == {"lost-updates"}, n
    assert n["distinct_final_values"] == 1 and n["processes_read_at_end"] == 4  # one store for four workers
    assert 0 < n["final"] < n["acknowledged"] and n["duplicates"] > 0


def test_the_stash_counts_right_with_one_request_at_a_time(cell):
    c = cell("sync-x1", "gunicorn-stash")
    assert observed(c) == {"correct"} and c["counts"]["final"] == 300, c["counts"]


def test_each_instance_has_a_stash_of_its_own(cell):
    c = cell("scale-out-3", "gunicorn-stash")
    assert "diverges" in observed(c), c["counts"]  # each instance's own acknowledged values run 1..n
    finals = next(e["final_reads"] for e in c["examples"] if "final_reads" in e)
    assert len(finals) == c["counts"]["processes_read_at_end"] == 3, finals  # one gunicorn worker per instance
    assert all(v > 0 for v in finals.values()) and sum(finals.values()) <= c["counts"]["attempted"], finals


def test_no_stash_without_gunicorns_dirty_arbiter(cell):
    c = cell("dev-single", "gunicorn-stash")
    assert observed(c) == {"error"}
    assert all(re.search(NO_ARBITER, kind) for kind in c["counts"]["error_kinds"]), c["counts"]["error_kinds"]


def test_a_cell_that_leaves_a_worker_stuck_hands_the_next_one_a_fresh_app(tmp_path):
    """lazy-thread under gevent-preload deadlocks the only worker (no-answer); the cell after it must not find the
    worker still stuck (until gunicorn's 30 s timeout), so the app starts again before it - and only then."""
    data = _run(tmp_path, "gevent-preload", "lazy-thread,redis-incr,redis-get-set")
    by = {c["strategy"]: c for c in data["cells"]}
    assert observed(by["lazy-thread"]) == {"no-answer"}, by["lazy-thread"]["counts"]
    assert any(n.startswith("the app was started again before this cell") for n in by["redis-incr"]["notes"])
    assert observed(by["redis-incr"]) == {"correct"} and by["redis-incr"]["counts"]["final"] == 300
    assert not any("started again" in n for n in by["redis-get-set"]["notes"])  # the cell before answered all
