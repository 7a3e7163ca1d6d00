"""Faults prove they happened: each fault's proof rule (workerlab/faults/evidence.py) passes on what a real
injection records and fails on a record of a fault that did not happen; and a cell whose fault is unproven is
an error, never a verdict."""

from __future__ import annotations

import json

import pytest

from workerlab.faults import FAULTS, FaultExpectation, FaultRun, Injection, LoadShape, every
from workerlab.faults.expected import expect_fault

# fault -> (a record that proves it, a record of the same fault that did not happen)
RECORDS = {
    "worker-kill": ({"pid": 11, "held_request": True, "new_worker_pids": [15], "worker_pids_after": [12, 13, 14, 15]},
                    {"pid": 11, "new_worker_pids": [], "worker_pids_after": [11, 12, 13, 14]}),
    "worker-recycle": ({"workers_before": 4, "worker_pids_seen": 9}, {"workers_before": 4, "worker_pids_seen": 4}),
    "graceful-reload": ({"all_workers_replaced_s": 0.4}, {"all_workers_replaced_s": None}),
    "master-restart": ({"pid": 100, "new_master_pid": 200}, {"pid": 100, "new_master_pid": 100}),
    "redis-restart": ({"server_id_before": "a1", "server_id_after": "b2"},
                      {"server_id_before": "a1", "server_id_after": "a1"}),
    "redis-restart-aof-always": ({"server_id_before": "a1", "server_id_after": "b2"},
                                 {"server_id_before": "a1", "server_id_after": None}),
    "redis-restart-aof-everysec": ({"server_id_before": "a1", "server_id_after": "b2"},
                                   {"server_id_before": None, "server_id_after": "b2"}),
    "redis-host-crash-aof-always": ({"shim_loaded": True, "server_id_before": "a1", "server_id_after": "b2"},
                                    {"shim_loaded": False, "server_id_before": "a1", "server_id_after": "b2"}),
    "redis-host-crash-aof-everysec": ({"shim_loaded": True, "unsynced_aof_bytes_at_kill": 412, "server_id_before": "a1",
                                       "server_id_after": "b2"},
                                      {"shim_loaded": True, "unsynced_aof_bytes_at_kill": 0, "server_id_before": "a1",
                                       "server_id_after": "b2"}),
    "memcached-restart": ({"server_id_before": "100", "server_id_after": "200"},
                          {"server_id_before": "100", "server_id_after": "100"}),
    "memcached-evict": ({"evictions": 31}, {"evictions": 0}),
    "sql-kill-in-transaction": ({"pid": 7, "write_lock_held_at_kill": True, "write_lock_released_s": 0.01,
                                 "new_worker_pids": [9], "worker_pids_after": [8, 9]},
                                {"pid": 7, "write_lock_held_at_kill": False, "write_lock_released_s": 0.01,
                                 "new_worker_pids": [9], "worker_pids_after": [8, 9]}),
    "nginx-reload": ({"new_nginx_worker_pids": [301, 302]}, {"new_nginx_worker_pids": []}),
}


def test_every_fault_has_its_two_records():
    assert set(RECORDS) == set(FAULTS)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_a_fault_that_happened_is_proven(name):
    assert FAULTS[name].proof(RECORDS[name][0]) is None


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_a_fault_that_did_not_happen_is_not(name):
    why = FAULTS[name].proof(RECORDS[name][1])
    assert isinstance(why, str) and why


@pytest.mark.parametrize("record, proven", [
    ({"store_unused": True, "shim_loaded": True, "server_id_before": "a1", "server_id_after": "b2"}, True),
    ({"store_unused": True, "shim_loaded": False, "server_id_before": "a1", "server_id_after": "b2"}, False),
    ({"shim_loaded": True, "unsynced_aof_bytes_at_kill": -88, "server_id_before": "a1", "server_id_after": "b2"},
     False),
    ({"shim_loaded": True, "server_id_before": "a1", "server_id_after": "b2"}, False),
], ids=["control-crashed", "control-without-shim", "negative-tail", "tail-not-measured"])
def test_a_host_crash_under_everysec_needs_a_tail_unless_its_cell_is_a_control(record, proven):
    why = FAULTS["redis-host-crash-aof-everysec"].proof(record)
    assert (why is None) is proven, why


def _acks(n: int) -> list[dict]:
    entries = [{"client": "u0", "req": i, "op": "incr", "phase": "load", "invoke": i * 0.01,
                "complete": i * 0.01 + 0.001, "status": 200, "value": i + 1, "pid": 1, "instance": "i1"}
               for i in range(n)]
    return entries + [{**entries[-1], "req": n, "op": "read", "phase": "final", "invoke": 9.0, "complete": 9.001}]


@pytest.mark.parametrize("proven", [True, False])
def test_a_cell_whose_fault_is_unproven_is_an_error_not_a_survival(tmp_path, scenarios, proven):
    fault = FAULTS["redis-restart"]
    run = FaultRun(every({"sync-x4": scenarios["sync-x4"]}, [fault], ["sql-update"]), LoadShape(1, 1, 1.0, 0.5),
                   tmp_path)
    folder = tmp_path / "sync-x4" / fault.name
    (folder / "history").mkdir(parents=True)
    (folder / "history" / "sql-update.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _acks(20)))
    inj = Injection(stack=None, t0=100.0, stop=None, at=100.1, info=dict(RECORDS[fault.name][0 if proven else 1]))
    expectation: FaultExpectation = expect_fault("sql-update", fault, scenarios["sync-x4"])
    assert expectation.control and expectation.label == "survives"
    run.judge_cell(run.blocks[0], fault, "sql-update", expectation, folder, inj)
    cell = run.data["cells"][-1]
    assert cell["observed"]["label"] == "survives"  # the history alone looks fine either way
    if proven:
        assert cell["error"] is None and cell["match"] is True
    else:
        assert cell["error"].startswith("the fault is not proven to have happened: the same server run")
        assert cell["match"] is False and run.data["summary"]["controls_differ"] == 1
