"""The server's CPU per request (workerlab/cpu.py): the process-tree figure counts reaped children once, and
each cell's limit is named by its rule."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workerlab.cpu import LIMITS, ServerCpu, cost

# Burns `seconds` of its own CPU time, in itself or in a child it forks and reaps, then waits for a line.
BURN = """
import os, sys, time
def burn(s):
    end = time.process_time() + s
    while time.process_time() < end:
        pass
if sys.argv[1] == "child":
    pid = os.fork()
    if pid == 0:
        burn(float(sys.argv[2])); os._exit(0)
    os.waitpid(pid, 0)
else:
    burn(float(sys.argv[2]))
print("done", flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize("where", ["self", "child"])
def test_server_cpu_counts_a_process_and_the_children_it_reaped(where):
    proc = subprocess.Popen([sys.executable, "-c", BURN, where, "0.4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        window = ServerCpu({"app": [proc.pid]}).start()
        assert proc.stdout.readline().strip() == "done"
        window.stop()
    finally:
        proc.communicate("\n", timeout=30)
    assert 0.38 <= window.spent["app"] < 5, window.spent  # CPU time, not wall time: the machine's load does not move it


def test_a_group_that_did_nothing_spent_nothing():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE)
    try:
        window = ServerCpu({"app": [proc.pid]})
        window.start()
        window.stop()
    finally:
        proc.communicate(b"\n", timeout=30)
    assert window.spent["app"] < 0.05


def _cost(rps, busy=False, waited=0.0):
    # 1,000 answered in 2 s on 2 CPUs, 0.5 CPU-seconds in all: 500 µs a request, capacity 4,000 rps.
    return cost({"app": 0.4, "nginx": 0.1}, waited, 1000, 2.0, 2, rps, busy)


def test_cpu_per_request_and_capacity():
    c = _cost(500.0)
    assert c["cpu_us_per_request"] == 500.0 and c["cpu_us_by"] == {"app": 400.0, "nginx": 100.0}
    assert c["capacity_rps"] == 4000.0 and c["server_cores"] == 0.25


@pytest.mark.parametrize("rps,busy,waited,limit", [
    (3900.0, False, 0.0, "server-cpu"),   # at its capacity, whatever the generator did
    (3900.0, True, 0.0, "server-cpu"),
    (500.0, True, 0.0, "generator"),      # far below capacity while the generator was busy
    (500.0, False, 1.0, "shared-cpu"),    # its threads waited half a CPU for one
    (500.0, False, 0.1, "server-wait"),   # nothing else explains it: locks, I/O, workers
])
def test_each_limit_by_its_rule(rps, busy, waited, limit):
    assert _cost(rps, busy, waited)["limit"] == limit
    assert limit in LIMITS


def test_no_answer_or_no_cpu_gives_no_figure():
    assert cost({"app": 0.0}, 0.0, 1000, 2.0, 2, 500.0, False)["cpu_us_per_request"] is None
    assert cost({"app": 0.5}, 0.0, 0, 2.0, 2, None, False)["limit"] is None
