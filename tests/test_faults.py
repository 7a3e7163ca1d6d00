"""Faults injected mid-run on a real sync-x4 stack: observed fault verdict == declared expectation.

One small cell per (fault, strategy) pair below - every fault kind at least once - at 6 users
x 25 requests/s for 2.2 s (8 s for a master restart, to see the app back), the fault 1.3 s in; gunicorn's
stash on sync-x1, where one worker keeps it correct. The complete (fault x strategy) table runs under
the ``faults`` marker (``make faults-test``). The checker tests at the top start no server.
"""

from __future__ import annotations

import os

import pytest

from loadtests.fault_checkers import check_counter_fault, check_sessions_fault
from loadtests.verdicts import ANY, FAULT_WORDS
from workerlab.faults import FAULT_STRATEGIES, FAULTS, QUICK, LoadShape, expect_fault, run_faults

SMALL = LoadShape(users=6, per_user_rps=25, seconds=2.2, at_s=1.3)
# A master restart keeps the app away for seconds (a graceful stop, then a new master imports the app): the
# load outlasts it, so the cell sees the recovery.
# A killed worker's replacement must serve before the load ends to be seen counting from zero: on a loaded
# machine the fork, the import and the first accept took longer than the 0.9 s SMALL leaves after the kill.
LONGER = {"master-restart": LoadShape(users=6, per_user_rps=25, seconds=8.0, at_s=1.3),
          "worker-kill": LoadShape(users=6, per_user_rps=25, seconds=5.0, at_s=1.3)}

# Every fault kind, with the strategies whose outcome it decides.
PLAN = {
    "worker-kill": ["naive-global", "sql-update"],
    "worker-recycle": ["naive-global", "redis-incr"],
    "graceful-reload": ["locked-global", "cookie-session"],
    "redis-restart": ["redis-incr", "server-session-redis"],
    "redis-restart-aof-always": ["redis-incr"],
    "redis-restart-aof-everysec": ["redis-incr"],
    "redis-host-crash-aof-always": ["redis-incr"],
    "redis-host-crash-aof-everysec": ["redis-incr"],
    "memcached-restart": ["memcached-incr"],
    "memcached-evict": ["memcached-incr"],
    "sql-kill-in-transaction": ["sql-update"],
    "nginx-reload": ["redis-incr", "cache-simple-inc"],
    "master-restart": ["naive-global"],
}
CELLS = [(fault, strategy) for fault, strategies in PLAN.items() for strategy in strategies]
# gunicorn's stash, where one worker keeps it correct (sync-x1): what outlives which restart.
STASH_PLAN = {"master-restart": ["gunicorn-stash", "redis-incr"], "graceful-reload": ["gunicorn-stash"]}
STASH_CELLS = [(fault, strategy) for fault, strategies in STASH_PLAN.items() for strategy in strategies]


# -- the checkers, on made-up histories ------------------------------------------------------------

def _incr(req, value, t, pid=1, status=200, client="u0"):
    return {"client": client, "req": req, "op": "incr", "phase": "load", "invoke": t, "complete": t + 0.001,
            "status": status, "value": value, "pid": pid, "instance": "i1",
            "error": None if status == 200 else f"HTTP {status}"}


def _final(value, t=10.0, pid=1):
    return {**_incr(10_000, value, t, pid), "op": "read", "phase": "final"}


def test_store_counter_survives_resets_or_loses_some():
    acked = [_incr(i, i + 1, i * 0.01) for i in range(100)]  # 100 increments over 1 s
    survives = check_counter_fault(acked + [_final(100)], scope="store", fault_at=0.5)
    assert survives.verdict == {"survives"} and survives.counts["lost"] == 0
    # Restart at 0.5 s with nothing kept: the counter starts again from 1.
    reset = [_incr(i, i + 1, i * 0.01) for i in range(50)] + [_incr(50 + i, i + 1, 0.5 + i * 0.01) for i in range(50)]
    r = check_counter_fault(reset + [_final(50)], scope="store", fault_at=0.5)
    assert r.verdict == {"resets"} and r.counts["lost"] == 50 and r.counts["first_value_after_fault"] == 1
    # Only the last 10 before the fault gone (an fsync window).
    partial = [_incr(i, i + 1, i * 0.01) for i in range(50)]
    partial += [_incr(50 + i, 41 + i, 0.5 + i * 0.01) for i in range(50)]
    r = check_counter_fault(partial + [_final(90)], scope="store", fault_at=0.5)
    assert r.verdict == {"loses-acked-writes"} and r.counts["lost"] == 10
    # A failed request that still counted stays within the upper bound; no final read is "unavailable".
    assert check_counter_fault(acked + [_incr(100, None, 1.0, status=502), _final(101)], scope="store",
                               fault_at=0.5).verdict == {"survives"}
    assert check_counter_fault(acked, scope="store", fault_at=0.5).verdict == {"unavailable"}
    assert check_counter_fault(acked + [_final(150)], scope="store", fault_at=0.5).verdict == {"over-counts"}


def test_process_counter_resets_when_its_process_dies():
    history = [_incr(i, i + 1, i * 0.01, pid=1) for i in range(40)]
    history += [_incr(40 + i, i + 1, 0.5 + i * 0.01, pid=2) for i in range(30)]  # the replacement, from 1
    history += [_final(30, pid=2)]
    r = check_counter_fault(history, scope="process", fault_at=0.45, dead={"i1/1"})
    assert r.verdict == {"resets"}
    assert (r.counts["lost"], r.counts["processes_died"], r.counts["fresh_processes_from_zero"]) == (40, 1, 1)
    r = check_counter_fault(history + [_final(40, pid=1)], scope="process", fault_at=0.45)
    assert r.verdict == {"survives"}


def test_store_reads_at_rest_that_agree_survive():
    acked = [_incr(i, i + 1, i * 0.01) for i in range(10)]
    r = check_counter_fault(acked + [_final(10), _final(10, pid=2)], scope="store", fault_at=0.05)
    assert r.verdict == {"survives"} and r.counts["instances_unread"] == 0


def test_store_reads_at_rest_that_disagree_diverge():
    acked = [_incr(i, i + 1, i * 0.01) for i in range(10)]
    r = check_counter_fault(acked + [_final(10), _final(7, pid=2, t=9.0)], scope="store", fault_at=0.05)
    assert r.verdict == {"diverges"}
    assert r.notes == ["final reads disagree: [7, 10]"]


def test_store_instance_that_served_load_but_was_not_read_is_inconclusive():
    acked = [_incr(i, i + 1, i * 0.01) for i in range(10)] + [{**_incr(10, 11, 0.2), "instance": "i2"}]
    r = check_counter_fault(acked + [_final(11)], scope="store", fault_at=0.05)
    assert r.verdict == {"inconclusive"}
    assert r.notes == ["instance(s) ['i2'] served load but answered no read at rest"]


def test_store_counter_that_went_back_loses_acked_writes_even_if_the_final_covers_them():
    # 5 then 4 (after 5 completed): an acknowledged increment was not seen; a failed request made up the count.
    history = [_incr(i, i + 1, i * 0.01) for i in range(5)] + [_incr(5, 4, 0.2), _incr(6, None, 0.3, status=502)]
    r = check_counter_fault(history + [_final(7)], scope="store", fault_at=0.1)
    assert r.counts["lost"] == 0 and r.counts["went_back"] == 1
    assert r.verdict == {"loses-acked-writes"}


def test_process_counter_that_went_back_loses_acked_writes():
    history = [_incr(i, i + 1, i * 0.01) for i in range(5)] + [_incr(5, 3, 0.2)] + [_final(6)]
    assert check_counter_fault(history, scope="process", fault_at=0.1).verdict == {"loses-acked-writes"}
    ordered = [_incr(i, i + 1, i * 0.01) for i in range(6)] + [_final(6)]
    assert check_counter_fault(ordered, scope="process", fault_at=0.1).verdict == {"survives"}


def test_process_counter_with_a_live_process_unread_is_inconclusive():
    history = [_incr(i, i + 1, i * 0.01, pid=1) for i in range(5)] + [_incr(5 + i, i + 1, i * 0.01, pid=2)
                                                                      for i in range(5)]
    r = check_counter_fault(history + [_final(5, pid=1)], scope="process", fault_at=0.45)
    assert r.verdict == {"inconclusive"} and r.counts["processes_unread"] == 1
    r = check_counter_fault(history + [_final(5, pid=1), _final(5, pid=2)], scope="process", fault_at=0.45)
    assert r.verdict == {"survives"}


def test_sessions_name_the_users_who_lost_theirs():
    history = [_incr(i, i + 1, i * 0.01, client="a") for i in range(10)]
    history += [_incr(10 + i, i + 1, 0.2 + i * 0.01, client="a") for i in range(5)]  # a starts again from 1
    history += [_incr(20 + i, i + 1, i * 0.01, client="b") for i in range(8)]
    history += [_incr(30, None, 0.1, client="b", status=503), _incr(31, 10, 0.15, client="b")]  # a gap is fine
    r = check_sessions_fault(history, fault_at=0.15)
    assert r.verdict == {"resets"}
    assert r.counts["users_lost"] == ["a"] and r.counts["lost"] == 10 and r.counts["failed_during_fault"] == 0
    assert r.counts["failed_before_fault"] == 1


def test_every_fault_and_strategy_has_an_expectation_with_a_reason(scenarios):
    for scenario in scenarios.values():
        for fault in FAULTS.values():
            for strategy in FAULT_STRATEGIES:
                e = expect_fault(strategy, fault, scenario)
                assert e.reason
                assert e.verdict is None or e.verdict <= {ANY, *FAULT_WORDS}, (strategy, fault.name, e.verdict)
    dev = scenarios["dev-single"]
    assert expect_fault("naive-global", FAULTS["worker-kill"], dev).verdict is None  # no gunicorn worker to kill
    assert expect_fault("naive-global", FAULTS["worker-kill"], scenarios["gthread-2x8"]).label == "any"


def test_the_command_names_valid_faults_and_prints_the_expected_table():
    import subprocess
    import sys

    from labtools import ROOT

    proc = subprocess.run([sys.executable, "-m", "workerlab", "faults", "-f", "no-such-fault"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "valid faults: worker-kill" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "workerlab", "faults", "--expected", "-t", "redis-incr"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "redis-restart-aof-everysec" in proc.stdout and "resets" in proc.stdout


# -- real stacks -------------------------------------------------------------------------------------

def _run_plan(output, scenario, plan: dict) -> dict:
    """Every (fault, strategy) cell of ``plan`` under ``scenario``, by (fault, strategy)."""
    cells = {}
    for fault, strategies in plan.items():
        run, interrupted = run_faults({scenario.name: scenario}, [FAULTS[fault]], strategies,
                                      LONGER.get(fault, SMALL), output)
        assert not interrupted
        for c in run.data["cells"]:
            cells[(c["fault"], c["strategy"])] = c
    return cells


@pytest.fixture(scope="module")
def fault_cells(tmp_path_factory, scenarios):
    return _run_plan(tmp_path_factory.mktemp("faults"), scenarios["sync-x4"], PLAN)


@pytest.fixture(scope="module")
def stash_fault_cells(tmp_path_factory, scenarios):
    return _run_plan(tmp_path_factory.mktemp("stash-faults"), scenarios["sync-x1"], STASH_PLAN)


@pytest.fixture
def any_fault_cell(request):
    """The cell (fault, strategy) of the fixture its test names: the sync-x4 plan or the stash plan."""
    def get(plan: str, fault: str, strategy: str) -> dict:
        return request.getfixturevalue(plan)[(fault, strategy)]
    return get


@pytest.mark.stack
@pytest.mark.parametrize("plan,fault,strategy", [("fault_cells", f, s) for f, s in CELLS]
                         + [("stash_fault_cells", f, s) for f, s in STASH_CELLS],
                         ids=[f"{f}/{s}" for f, s in CELLS] + [f"sync-x1/{f}/{s}" for f, s in STASH_CELLS])
def test_fault_verdict_is_the_expected_one(any_fault_cell, plan, fault, strategy):
    c = any_fault_cell(plan, fault, strategy)
    assert not c["skipped"], c["expected"]["reason"]
    assert c["error"] is None, c["error"]  # also: the fault is proven to have happened
    assert FAULTS[fault].proof(c["injected"]) is None
    assert c["observed"]["verdict"] == c["expected"]["verdict"], (c["counts"], c["injected"], c["notes"])
    n = c["counts"]
    assert n["recovered"], n
    # A store that is down is a 503 naming it (nginx says 502 for a killed worker) - never a 500.
    assert not any(kind.startswith("HTTP 500") for kind in n["failure_kinds"]), n["failure_kinds"]
    if c["observed"]["verdict"] == ["survives"]:
        assert n["lost"] == 0


@pytest.mark.stack
def test_the_stash_is_lost_with_its_master_and_outlives_a_reload(stash_fault_cells):
    """gunicorn.dirty.stash lives in the dirty arbiter: a HUP keeps it, a new master starts it empty."""
    restart = stash_fault_cells[("master-restart", "gunicorn-stash")]
    n = restart["counts"]
    assert restart["observed"]["verdict"] == ["resets"] and n["lost"] > 0, n
    assert n["failed_during_fault"] > 0 and restart["injected"]["restart_s"] > 0  # the app really was down
    assert stash_fault_cells[("master-restart", "redis-incr")]["counts"]["lost"] == 0
    reload_ = stash_fault_cells[("graceful-reload", "gunicorn-stash")]
    assert reload_["observed"]["verdict"] == ["survives"] and reload_["counts"]["lost"] == 0


@pytest.mark.stack
def test_worker_kill_loses_exactly_what_the_dead_worker_held(fault_cells):
    n = fault_cells[("worker-kill", "naive-global")]["counts"]
    assert n["processes_died"] == 1 and n["fresh_processes_from_zero"] >= 1
    assert n["lost"] == n["acknowledged_in_dead_processes"] > 0


@pytest.mark.stack
def test_redis_without_persistence_forgets_everything_acknowledged_before_the_restart(fault_cells):
    n = fault_cells[("redis-restart", "redis-incr")]["counts"]
    assert n["lost"] >= n["acknowledged_before_fault"] > 0
    s = fault_cells[("redis-restart", "server-session-redis")]["counts"]
    assert s["users_lost_session"] >= 1 and s["users_lost"]


@pytest.mark.stack
@pytest.mark.parametrize("fault", ["redis-restart-aof-always", "redis-restart-aof-everysec"])
def test_redis_aof_keeps_every_acknowledged_increment_across_kill_9(fault_cells, fault):
    c = fault_cells[(fault, "redis-incr")]
    n = c["counts"]
    assert n["lost"] == 0 and n["acknowledged"] <= n["final"] <= n["attempted"]
    assert c["injected"]["restart_s"] < 5


@pytest.mark.stack
def test_a_host_crash_loses_at_most_about_a_second_with_everysec_and_nothing_with_always(fault_cells):
    assert fault_cells[("redis-host-crash-aof-everysec", "redis-incr")]["injected"]["shim_loaded"] is True
    n = fault_cells[("redis-host-crash-aof-everysec", "redis-incr")]["counts"]
    rate = SMALL.users * SMALL.per_user_rps
    assert 0 < n["lost"] <= 1.5 * rate, n  # about one second's worth of acknowledged increments, at most
    assert fault_cells[("redis-host-crash-aof-always", "redis-incr")]["counts"]["lost"] == 0


@pytest.mark.stack
def test_memcached_evicts_the_counter_under_pressure(fault_cells):
    c = fault_cells[("memcached-evict", "memcached-incr")]
    assert c["injected"]["evictions"] > 0
    assert c["counts"]["lost"] >= c["counts"]["acknowledged_before_fault"] > 0


@pytest.mark.stack
def test_sqlite_kill_inside_the_transaction_rolls_it_back(fault_cells):
    c = fault_cells[("sql-kill-in-transaction", "sql-update")]
    assert c["injected"]["write_lock_held_at_kill"] is True  # the worker really was inside BEGIN IMMEDIATE
    assert c["injected"]["write_lock_released_s"] is not None
    n = c["counts"]
    assert n["lost"] == 0 and n["acknowledged"] <= n["final"] <= n["attempted"]
    assert n["failed_during_fault"] >= 1  # the held request itself died with its worker


@pytest.mark.faults
@pytest.mark.skipif(os.environ.get("LAB_FAULTS_FULL") != "1", reason="the full table: make faults-test")
def test_the_whole_fault_table_is_as_expected(tmp_path, scenarios):
    run, interrupted = run_faults({"sync-x4": scenarios["sync-x4"]}, list(FAULTS.values()), list(FAULT_STRATEGIES),
                                  QUICK, tmp_path)
    assert not interrupted
    wrong = [(c["fault"], c["strategy"], c["observed"], c["error"]) for c in run.data["cells"] if c["match"] is False]
    assert not wrong, wrong
    s = run.data["summary"]
    assert s["errors"] == 0 and s["judged"] >= 45 and s["controls"] >= 45 and s["controls_differ"] == 0, s
