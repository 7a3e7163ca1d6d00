"""Faults injected mid-run on a real sync-x4 stack: observed fault verdict == declared expectation.

One small cell per (fault, strategy) pair below - every fault kind at least once - at 6 users
x 25 requests/s for 2.2 s (8 s for a master restart, to see the app back), the fault 1.3 s in; gunicorn's
stash on sync-x1, where one worker keeps it correct; a worker kill under gthread, through nginx and straight
to gunicorn. The complete (fault x strategy) table runs under the ``faults`` marker (``make faults-test``).
The checker tests at the top start no server.
"""

from __future__ import annotations

import os

import pytest

from loadtests.fault_checkers import check_counter_fault, check_sessions_fault
from loadtests.verdicts import ANY, FAULT_WORDS
from workerlab.faults import (
    DIRECT,
    FAULT_STRATEGIES,
    FAULTS,
    NGINX,
    QUICK,
    REPRESENTATIVE,
    Block,
    LoadShape,
    default_blocks,
    every,
    expect_fault,
    run_faults,
)
from workerlab.faults.coverage import FULL_TABLE_SCENARIO, default_scenarios, restarts_gunicorn
from workerlab.faults.present import restart_losses

SMALL = LoadShape(users=6, per_user_rps=25, seconds=2.2, at_s=1.3)
# A master restart keeps the app away for seconds (a graceful stop, then a new master imports the app): the
# load outlasts it, so the cell sees the recovery.
# (A killed worker's replacement needs no longer load: the fault holds the load until the replacement has
# served - Fault.holds_load - however long the fork, the import and the first accept take.)
LONGER = {"master-restart": LoadShape(users=6, per_user_rps=25, seconds=8.0, at_s=1.3)}

# Every fault kind, with the strategies whose outcome it decides.
PLAN = {
    "worker-kill": ["naive-global", "sql-update"],
    "worker-recycle": ["naive-global", "redis-incr"],
    "graceful-reload": ["locked-global", "cookie-session"],
    "redis-restart": ["redis-incr", "server-session-redis"],
    "redis-restart-aof-always": ["redis-incr"],
    "redis-restart-aof-everysec": ["redis-incr"],
    "redis-host-crash-aof-always": ["redis-incr"],
    "redis-host-crash-aof-everysec": ["redis-incr", "cookie-session"],  # and a control: no tail to wait for
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


def _dropped(req, t):
    """A request the fault left without an HTTP answer (the connection refused or reset under it)."""
    return {**_incr(req, None, t, status=0), "error": "ConnectionResetError: [Errno 104] Connection reset by peer"}


def test_a_fault_that_fails_nothing_drops_and_errors_nothing():
    r = check_counter_fault([_incr(i, i + 1, i * 0.01) for i in range(50)] + [_final(50)], scope="store",
                            fault_at=0.2)
    n = r.counts
    assert (n["failed_during_fault"], n["dropped_during_fault"], n["errored_during_fault"]) == (0, 0, 0)


def test_failures_during_the_fault_are_dropped_without_an_answer_or_errored_with_one():
    history = [_incr(i, i + 1, i * 0.01) for i in range(40)]
    history += [_dropped(40, 0.05)]  # before the fault: not the fault's
    history += [_incr(41, None, 0.3, status=502), _dropped(42, 0.31), _dropped(43, 0.32),
                {**_incr(44, None, 0.33, status=0), "unanswered": True, "error": "unanswered"}]
    history += [_incr(45 + i, 41 + i, 0.4 + i * 0.01) for i in range(5)] + [_final(45)]
    n = check_counter_fault(history, scope="store", fault_at=0.2).counts
    assert (n["dropped_during_fault"], n["errored_during_fault"], n["failed_during_fault"]) == (3, 1, 4)
    assert n["failed_before_fault"] == 1
    s = check_sessions_fault(history, fault_at=0.2).counts
    assert (s["dropped_during_fault"], s["errored_during_fault"]) == (3, 1)


def test_make_faults_covers_every_gunicorn_scenario_with_the_worker_faults(scenarios):
    blocks = default_blocks({n: scenarios[n] for n in default_scenarios(scenarios)})
    covered = {b.scenario.name for b in blocks}
    assert covered == {n for n, s in scenarios.items() if s.server == "gunicorn"}
    assert {"sync-x4", "gthread-2x8", "gevent-x1", "gevent-unpatched", "scale-out-3"} <= covered
    worker_faults = tuple(f for f in FAULTS.values() if restarts_gunicorn(f))
    assert [f.name for f in worker_faults] == ["worker-kill", "worker-recycle", "graceful-reload", "master-restart"]
    for b in blocks:
        if b.scenario.name == FULL_TABLE_SCENARIO:
            assert b.faults == tuple(FAULTS.values()) and b.strategies == FAULT_STRATEGIES and b.route is NGINX
        else:
            assert b.faults == worker_faults and b.strategies == REPRESENTATIVE
    routes = {(b.scenario.name, b.route.name) for b in blocks}
    assert ("gthread-2x8", "direct") in routes and ("gthread-2x8", "nginx") in routes
    assert ("gevent-x4", "direct") not in routes  # DIRECT_BY_DEFAULT: gthread only (gevent: --route direct)
    assert ("scale-out-3", "direct") not in routes  # direct reaches one instance
    assert ("sync-x4", "direct") not in routes
    # --scenario / --route narrow; a named route replaces the default ones; direct needs one instance.
    assert [(b.scenario.name, b.route.name) for b in default_blocks({"gevent-x1": scenarios["gevent-x1"]},
                                                                    routes=["direct"])] == [("gevent-x1", "direct")]
    assert default_blocks({"scale-out-3": scenarios["scale-out-3"]}, routes=["direct"]) == []


def test_the_new_cells_expectations_come_from_rules(scenarios):
    gevent, gthread = scenarios["gevent-x4"], scenarios["gthread-2x8"]
    stash, kill = "gunicorn-stash", FAULTS["worker-kill"]
    # gevent scenarios run a dirty arbiter too, and four workers sharing its stash already lose updates
    # without a fault: the kill is not judged there.
    assert expect_fault(stash, kill, gevent).verdict == {ANY}
    assert expect_fault(stash, kill, scenarios["sync-x1"]).label == "survives"
    assert expect_fault("redis-incr", FAULTS["nginx-reload"], gthread, DIRECT).verdict is None
    # The killed request had written: resent on a kept-alive connection (gthread, gevent) or by the client
    # (direct), a store counts it twice; under sync nginx's connection was new and it is a 502.
    for route in (NGINX, DIRECT):
        assert expect_fault("locked-global", kill, gthread, route).label == "resets"
        assert expect_fault("redis-incr", kill, gthread, route).label == "over-counts"
        assert expect_fault("cookie-session", kill, gthread, route).label == "survives"  # never saved, so no twice
    assert expect_fault("redis-incr", kill, scenarios["sync-x4"]).label == "survives"
    assert expect_fault("redis-incr", kill, scenarios["sync-x4"], DIRECT).label == "over-counts"
    assert expect_fault("redis-incr", FAULTS["graceful-reload"], gthread).label == "survives"  # nothing killed
    # gevent-unpatched / gevent-preload: a lock made before (or without) the patch is the scenario's own error.
    for name in ("gevent-unpatched", "gevent-preload"):
        assert expect_fault("locked-global", kill, scenarios[name]).label == "any"
        assert expect_fault("redis-incr", FAULTS["master-restart"], scenarios[name]).label == "survives"


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
        run, interrupted = run_faults(every({scenario.name: scenario}, [FAULTS[fault]], strategies),
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
    c = fault_cells[("worker-kill", "naive-global")]
    assert c["injected"]["replacement_served_s"] is not None  # the load lasted until the replacement served
    n = c["counts"]
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
    everysec = fault_cells[("redis-host-crash-aof-everysec", "redis-incr")]["injected"]
    assert everysec["shim_loaded"] is True and everysec["unsynced_aof_bytes_at_kill"] > 0
    # always fsyncs before answering: nothing is waiting at rest, which checks how the tail is measured
    assert fault_cells[("redis-host-crash-aof-always", "redis-incr")]["injected"]["unsynced_aof_bytes_at_kill"] == 0
    # a control writes nothing to redis: the crash does not wait for a tail that cannot come (it came after
    # the quick load had ended once, and the control read as unavailable)
    control = fault_cells[("redis-host-crash-aof-everysec", "cookie-session")]
    assert control["control"] and control["injected"]["store_unused"] is True
    assert "unsynced_aof_bytes_at_kill" not in control["injected"]
    assert control["injected"]["at_s"] < SMALL.seconds, control["injected"]
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


@pytest.fixture(scope="module")
def gthread_cells(tmp_path_factory, scenarios):
    """gthread-2x8 under a worker kill (through nginx and straight to gunicorn) and a master restart (direct)."""
    gthread, output = scenarios["gthread-2x8"], tmp_path_factory.mktemp("gthread-faults")
    runs = [([Block(gthread, route, (FAULTS["worker-kill"],), ("locked-global", "redis-incr"))
              for route in (NGINX, DIRECT)], SMALL),
            ([Block(gthread, DIRECT, (FAULTS["master-restart"],), ("redis-incr",))], LONGER["master-restart"])]
    cells, data = {}, []
    for blocks, shape in runs:
        run, interrupted = run_faults(blocks, shape, output)
        assert not interrupted
        data.append(run.data)
        cells.update({(c["route"], c["fault"], c["strategy"]): c for c in run.data["cells"]})
    return cells, data


@pytest.mark.stack
@pytest.mark.parametrize("route", ["nginx", "direct"])
def test_a_gthread_worker_kill_resets_a_global_and_resends_the_killed_request(gthread_cells, fault_cells, route):
    """Under gthread the connection to the killed worker was kept alive: nginx (or, straight to gunicorn, the load
    generator) sends the killed GET again, so redis counts it twice; under sync (a connection per request) the
    same kill is nginx's 502 and redis counts it once."""
    cells, _ = gthread_cells
    for strategy, verdict in (("locked-global", ["resets"]), ("redis-incr", ["over-counts"])):
        c = cells[(route, "worker-kill", strategy)]
        assert c["error"] is None and c["match"] is True, (c["error"], c["counts"], c["notes"])
        assert c["observed"]["verdict"] == verdict == c["expected"]["verdict"]
        assert c["injected"]["held_request"] is True
    n = cells[(route, "worker-kill", "locked-global")]["counts"]
    assert n["processes_died"] == 1 and n["lost"] == n["acknowledged_in_dead_processes"] > 0
    n = cells[(route, "worker-kill", "redis-incr")]["counts"]
    # Resent, not failed. (Another request the killed worker's threads were answering may fail: its answer began.)
    assert n["lost"] == 0 and n["over_counted"] >= 1, n
    assert n["failed_during_fault"] == n["dropped_during_fault"] + n["errored_during_fault"]
    sync = fault_cells[("worker-kill", "sql-update")]
    assert sync["observed"]["verdict"] == ["survives"] and sync["counts"]["over_counted"] == 0
    assert sync["counts"]["errored_during_fault"] >= 1 and sync["counts"]["dropped_during_fault"] == 0  # nginx 502


@pytest.mark.stack
def test_a_restart_straight_to_gunicorn_drops_requests_nginx_answers_them(gthread_cells, stash_fault_cells):
    """No master listening: straight to gunicorn the connection is refused (dropped, no answer); through nginx
    the same outage is nginx's 502 (errored, an answer)."""
    cells, data = gthread_cells
    direct = cells[("direct", "master-restart", "redis-incr")]
    n = direct["counts"]
    assert direct["match"] is True and n["dropped_during_fault"] > 0, (n, direct["error"])
    assert n["failed_during_fault"] == n["dropped_during_fault"] + n["errored_during_fault"]
    via_nginx = stash_fault_cells[("master-restart", "redis-incr")]["counts"]
    assert via_nginx["errored_during_fault"] > 0 and via_nginx["dropped_during_fault"] == 0, via_nginx
    rows = restart_losses(data[1])
    assert [(r["worker class"], r["route"], r["fault"], r["cells"]) for r in rows] == [
        ("gthread", "direct", "master-restart", 1)]
    assert rows[0]["dropped per cell"] == str(n["dropped_during_fault"])
    assert {(r["route"], r["fault"]) for r in restart_losses(data[0])} == {("nginx", "worker-kill"),
                                                                         ("direct", "worker-kill")}


@pytest.mark.faults
@pytest.mark.skipif(os.environ.get("LAB_FAULTS_FULL") != "1", reason="the full table: make faults-test")
def test_the_whole_fault_table_is_as_expected(tmp_path, scenarios):
    run, interrupted = run_faults(every({"sync-x4": scenarios["sync-x4"]}, list(FAULTS.values()),
                                        list(FAULT_STRATEGIES)), QUICK, tmp_path)
    assert not interrupted
    wrong = [(c["fault"], c["strategy"], c["observed"], c["error"]) for c in run.data["cells"] if c["match"] is False]
    assert not wrong, wrong
    s = run.data["summary"]
    assert s["errors"] == 0 and s["judged"] >= 45 and s["controls"] >= 45 and s["controls_differ"] == 0, s
