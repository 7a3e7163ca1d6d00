"""Load beyond one machine: the run's driver is a locust master, two workers send the load, one history is judged.

Three "machines" on one kernel: network namespaces of their own, joined by a bridge on a private /24 - the
master's (the whole lab: its native stack, and its driver listening for workers at 10.77.0.1:5557) and one per
worker (10.77.0.2, 10.77.0.3), each with nothing but its loopback and its veth. The lab's stack keeps to its
machine's loopback (the project's rule); the workers reach it through the bridge: the master's namespace
forwards what comes in on the bridge for any port but the master's to its own 127.0.0.1 (DNAT, route_localnet),
and each worker sends to that address (`worker --target-host 10.77.0.1`). Nothing changes on the host: every
interface, address and rule lives in the namespaces, which are deleted - with any process left in them - however
the test ends.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labtools import ROOT

from loadtests.history import read_history

pytestmark = pytest.mark.stack

MASTER_IP, MASTER_PORT = "10.77.0.1", 5557
WORKER_IPS = ("10.77.0.2", "10.77.0.3")
REQUESTS, USERS = 400, 20


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30).stdout


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def remove_namespace(ns: str) -> None:
    """Kill whatever still runs in `ns` (only the processes in this namespace, found by the kernel), delete it."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def machines():
    """{"master": ns, "workers": [ns, ns]}: three namespaces on one bridge (in the master's namespace)."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"):
        pytest.skip("network namespaces need root, iproute2 and iptables")
    tag = f"wl{os.getpid() % 100000}"
    master, workers = f"{tag}m", [f"{tag}w{i}" for i in (1, 2)]
    try:
        for ns in (master, *workers):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", master, "link", "add", "br0", "type", "bridge")
        ip("-n", master, "addr", "add", f"{MASTER_IP}/24", "dev", "br0")
        ip("-n", master, "link", "set", "br0", "up")
        for i, (ns, address) in enumerate(zip(workers, WORKER_IPS, strict=True)):
            ip("link", "add", f"{tag}p{i}", "netns", master, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", master, "link", "set", f"{tag}p{i}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        subprocess.run(in_ns(master, "sysctl", "-qw", "net.ipv4.conf.br0.route_localnet=1"), check=True)
        subprocess.run(in_ns(master, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "br0", "-p", "tcp", "-d",
                             MASTER_IP, "!", "--dport", str(MASTER_PORT), "-j", "DNAT", "--to-destination",
                             "127.0.0.1"), check=True)
        yield {"master": master, "workers": workers}
    finally:
        for ns in (master, *workers):
            remove_namespace(ns)


def sent_bytes(ns: str) -> int:
    return json.loads(ip("-n", ns, "-j", "-s", "link", "show", "dev", "eth0"))[0]["stats64"]["tx"]["bytes"]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_two_workers_entries_arrive_and_one_history_is_judged(machines, tmp_path):
    """Two scenarios: two plans, two masters one after the other (one driver per scenario); the workers serve
    both. The second worker measures its clock as a worker on another machine does (it must find ~0)."""
    master, workers = machines["master"], machines["workers"]
    lab = start(in_ns(master, sys.executable, "-m", "workerlab", "run", "-s", "sync-x4,gthread-2x8",
                      "-t", "redis-incr,naive-global,server-session-redis", "-n", str(REQUESTS), "-u", str(USERS),
                      "--workers", "2", "--master-bind", f"{MASTER_IP}:{MASTER_PORT}", "--output", str(tmp_path),
                      "--quiet"), tmp_path / "lab.out")
    env = [os.environ, {**os.environ, "LAB_WORKER_CLOCK": "measure"}]
    procs = [subprocess.Popen(in_ns(ns, sys.executable, "-m", "workerlab", "worker", "--master",
                                    f"{MASTER_IP}:{MASTER_PORT}", "--target-host", MASTER_IP, "--connect-timeout",
                                    "120"), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / f"{ns}.out", "wb"), start_new_session=True, env=env[i])
             for i, ns in enumerate(workers)]
    code = lab.wait(timeout=600)
    lab_out = (tmp_path / "lab.out").read_text()
    assert code == 0, lab_out  # every cell as declared
    # The last master ends the run: each worker is told so and exits 0.
    for proc, ns in zip(procs, workers, strict=True):
        assert proc.wait(timeout=30) == 0, (tmp_path / f"{ns}.out").read_text()
        said = (tmp_path / f"{ns}.out").read_text()
        assert said.count("connected to the master") >= 2 and "the master ended the run" in said, said
    offsets = [float(line.split("master ")[1].split(" ms")[0])
               for line in (tmp_path / f"{workers[1]}.out").read_text().splitlines() if "clock offset" in line]
    assert len(offsets) == 6 and all(abs(o) < 5 for o in offsets), offsets  # one per cell, the same clock
    measuring = {line.split()[1] for line in (tmp_path / f"{workers[1]}.out").read_text().splitlines()
                 if "connected to the master" in line}

    run_dir = next(tmp_path.glob("*/results.json")).parent
    cells = {(c["scenario"], c["strategy"]): c for c in json.loads((run_dir / "results.json").read_text())["cells"]}
    assert {k: c["observed"]["verdict"] for k, c in cells.items()} == {
        ("sync-x4", "redis-incr"): ["correct"], ("sync-x4", "naive-global"): ["diverges"],
        ("gthread-2x8", "redis-incr"): ["correct"], ("gthread-2x8", "naive-global"): ["diverges", "lost-updates"],
        # a user is its id: two workers' users must not share one (each worker's u0 would be one user: leaks)
        ("sync-x4", "server-session-redis"): ["correct"], ("gthread-2x8", "server-session-redis"): ["correct"]}
    for (scenario, strategy), cell in cells.items():
        history = read_history(run_dir / scenario / "history" / f"{strategy}.jsonl")
        load = [e for e in history if e["phase"] == "load"]
        per_worker = collections.Counter(e.get("worker") for e in load)
        # Both workers' entries arrived, every request of the budget is in the one history, each named by its
        # worker, with who served it.
        assert len(per_worker) == 2 and None not in per_worker, per_worker
        assert sum(per_worker.values()) == REQUESTS and all(n >= USERS // 2 for n in per_worker.values()), per_worker
        assert all(e["status"] == 200 and isinstance(e.get("pid"), int) for e in load)
        assert all(e["client"].startswith(f"{e['worker']}-u") for e in load)
        # The measured clock's entries are widened by its error bound; the shared clock's are exact.
        assert all((e.get("clock_error", 0) > 0) == (e["worker"] in measuring) for e in load)
        assert len({e["req"] for e in history}) == len(history)  # one numbering for the whole history
        assert cell["counts"]["sent"] == cell["counts"]["answered"] == REQUESTS
        assert len([n for n in cell["notes"] if n.startswith("worker ")]) == 2, cell["notes"]
    # The load crossed the bridge: each worker's only interface carried it.
    assert all(sent_bytes(ns) > REQUESTS * 50 for ns in workers)


def test_a_worker_without_a_master_says_so_and_exits_1(tmp_path):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "workerlab", "worker", "--master", "127.0.0.1:9",
                           "--connect-timeout", "2"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "no lab master answered at 127.0.0.1:9 within 2s" in proc.stderr
    assert time.monotonic() - started < 30


def test_bad_addresses_are_usage_errors():
    for argv in (["worker", "--master", "nohost"], ["run", "--workers", "2", "--master-bind", "1.2.3.4"],
                 ["run", "--local-workers"]):
        proc = subprocess.run([sys.executable, "-m", "workerlab", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_a_worker_killed_mid_cell_leaves_unanswered_entries_never_a_silent_gap(tmp_path):
    """Workers as plain processes on loopback: one is SIGKILLed while its cell runs. What it sent and never
    reported is in the history as unanswered - the cell is not judged on the other worker's half alone."""
    from workerlab.procs import free_port

    bind = f"127.0.0.1:{free_port()}"
    lab = subprocess.Popen([sys.executable, "-m", "workerlab", "run", "-s", "gthread-2x8", "-t", "redis-incr",
                            "-n", "300", "--rate", "50", "--quick", "--workers", "2", "--master-bind", bind,
                            "--output", str(tmp_path), "--quiet"], cwd=ROOT, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           env={**os.environ, "LAB_PHASES": "1"})
    workers = [start([sys.executable, "-m", "loadtests.worker", "--master", bind], tmp_path / f"w{i}.out")
               for i in range(2)]
    try:
        for line in lab.stderr:  # the cell's load begins right after its phase marker
            if line.startswith("phase: cell"):
                break
        time.sleep(2.0)
        os.killpg(workers[0].pid, signal.SIGKILL)
        rest = lab.stderr.read()
        assert lab.wait(timeout=200) == 1, rest  # the cell is not as expected: requests went unanswered
        assert workers[1].wait(timeout=30) == 0
    finally:
        for proc in (lab, *workers):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    run_dir = next(tmp_path.glob("*/results.json")).parent
    cell = json.loads((run_dir / "results.json").read_text())["cells"][0]
    assert "no-answer" in cell["observed"]["verdict"], cell
    assert any("entries incomplete" in n for n in cell["notes"]), cell["notes"]
    history = read_history(run_dir / "gthread-2x8" / "history" / "redis-incr.jsonl")
    unreported = [e for e in history if e.get("client", "").endswith("-unreported")]
    assert unreported and all(e["unanswered"] and "before it reported" in e["error"] for e in unreported)
    load = [e for e in history if e["phase"] == "load"]
    assert len(load) == 300  # the budget, every request accounted for: recorded, or unanswered for want of a report


def test_a_worker_stopped_mid_cell_reports_what_it_sent_and_leaves(tmp_path):
    """SIGTERM to `workerlab worker` mid-cell: it stops its users, sends every entry they recorded, tells the master
    it leaves and exits 143; the cell's history holds its entries whole (nothing to make up as unanswered)."""
    from workerlab.procs import free_port

    bind = f"127.0.0.1:{free_port()}"
    lab = subprocess.Popen([sys.executable, "-m", "workerlab", "run", "-s", "gthread-2x8", "-t", "redis-incr",
                            "-n", "300", "--rate", "50", "--quick", "--workers", "2", "--master-bind", bind,
                            "--output", str(tmp_path), "--quiet"], cwd=ROOT, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           env={**os.environ, "LAB_PHASES": "1"})
    workers = [start([sys.executable, "-m", "workerlab", "worker", "--master", bind], tmp_path / f"w{i}.out")
               for i in range(2)]
    try:
        for line in lab.stderr:
            if line.startswith("phase: cell"):
                break
        time.sleep(2.0)
        workers[0].send_signal(signal.SIGTERM)
        assert workers[0].wait(timeout=60) == 143, (tmp_path / "w0.out").read_text()
        lab.stderr.read()
        lab.wait(timeout=200)
        assert workers[1].wait(timeout=30) == 0
    finally:
        for proc in (lab, *workers):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    said = (tmp_path / "w0.out").read_text()
    assert "stopped by SIGTERM" in said, said
    run_dir = next(tmp_path.glob("*/results.json")).parent
    cell = json.loads((run_dir / "results.json").read_text())["cells"][0]
    history = read_history(run_dir / "gthread-2x8" / "history" / "redis-incr.jsonl")
    per_worker = collections.Counter(e.get("worker") for e in history if e["phase"] == "load")
    assert len(per_worker) == 2 and not any(e["client"].endswith("-unreported") for e in history), per_worker
    assert not any("incomplete" in n for n in cell["notes"]), cell["notes"]
    assert sum(per_worker.values()) < 300  # the leaver's share was cut short, and nothing was made up


def test_a_cells_budget_is_shared_in_proportion_to_each_workers_users():
    from loadtests.protocol import shares

    assert shares(2000, [25, 25]) == [1000, 1000]
    assert shares(300, [11, 9]) == [165, 135]
    assert shares(10, [1, 1, 1]) == [4, 3, 3] and sum(shares(1001, [7, 5, 3])) == 1001
    assert shares(400, [20, 0]) == [400, 0]  # a worker locust gave no users sends nothing
    assert shares(400, [0, 0]) == [0, 0]


def test_addresses_are_host_and_port():
    from loadtests.protocol import BadAddress, parse_address

    assert parse_address("10.77.0.1:5557") == ("10.77.0.1", 5557)
    assert parse_address("[::1]:5557") == ("::1", 5557)
    for bad in ("10.77.0.1", ":5557", "host:0", "host:65536", "host:port"):
        with pytest.raises(BadAddress):
            parse_address(bad)
