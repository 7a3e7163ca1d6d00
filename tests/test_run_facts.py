"""results.json tells the truth about its run: the CPUs the lab could use, the versions of what served,
and how many of the planned cells an interrupted run ran (the report's side: test_report.py)."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys

import pytest
from labtools import ROOT

from workerlab.results import cpu_quota, machine, of_planned, served_versions, versions
from workerlab.stacks.native import find_binary


# -- the CPUs ---------------------------------------------------------------------------------------------------
def cgroup_tree(tmp_path, proc_cgroup: str, files: dict[str, str]):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cgroup").write_text(proc_cgroup)
    for name, text in files.items():
        path = tmp_path / "fs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(tmp_path / "cgroup"), str(tmp_path / "fs")


def test_cgroup_v1_quota_is_the_tightest_of_the_cgroup_and_its_parents(tmp_path):
    proc, root = cgroup_tree(tmp_path, "4:memory:/x\n3:cpu,cpuacct:/lab/job\n0::/\n", {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/lab/cpu.cfs_quota_us": "150000\n", "cpu,cpuacct/lab/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/lab/job/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/lab/job/cpu.cfs_period_us": "100000\n",
    })
    assert cpu_quota(proc, root) == {"cgroup": "v1", "path": f"{root}/cpu,cpuacct/lab", "quota_us": 150000,
                                     "period_us": 100000, "cpus": 1.5}


def test_cgroup_v1_without_a_quota_says_so(tmp_path):
    proc, root = cgroup_tree(tmp_path, "1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"})
    assert cpu_quota(proc, root) == {"cgroup": "v1", "path": f"{root}/cpu", "quota_us": None, "period_us": 100000,
                                     "cpus": None}


def test_cgroup_v2_cpu_max(tmp_path):
    proc, root = cgroup_tree(tmp_path, "0::/user.slice/lab\n", {
        "user.slice/cpu.max": "max 100000\n", "user.slice/lab/cpu.max": "50000 100000\n"})
    assert cpu_quota(proc, root)["cpus"] == 0.5
    proc, root = cgroup_tree(tmp_path / "u", "0::/user.slice\n", {"user.slice/cpu.max": "max 100000\n"})
    assert cpu_quota(proc, root) == {"cgroup": "v2", "path": f"{root}/user.slice", "quota_us": None,
                                     "period_us": 100000, "cpus": None}


def test_no_cgroup_cpu_controller_is_none(tmp_path):
    assert cpu_quota(str(tmp_path / "missing"), str(tmp_path)) is None
    proc, root = cgroup_tree(tmp_path, "4:memory:/\n", {})
    assert cpu_quota(proc, root) is None


def test_machine_records_the_cpus_this_process_may_use():
    m = machine()
    assert m["cpu_count"] == os.cpu_count()
    assert m["cpu_affinity"] == sorted(os.sched_getaffinity(0))
    assert m["cpu_quota"] == cpu_quota()


# -- versions -----------------------------------------------------------------------------------------------------
def test_the_container_probe_asks_a_real_python_and_real_servers():
    """served_versions' probe, run here instead of in containers: it must find what versions() finds."""
    def on_this_host(service: str, argv: list[str]) -> subprocess.CompletedProcess:
        if service == "app":
            argv = [sys.executable, *argv[1:]]
        elif service == "postgres":  # on PATH in its image; Debian keeps it in /usr/lib/postgresql/<version>/bin
            argv = [find_binary("postgres"), *argv[1:]]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    served = served_versions(on_this_host)
    host = versions()
    assert served["python"] == platform.python_version()
    assert served == {k: v for k, v in host.items() if k != "locust"}
    assert all(served.values()), served


def test_a_container_that_does_not_answer_is_none():
    def broken(service, argv):
        return subprocess.CompletedProcess(argv, 1, "", "service is not running")

    served = served_versions(broken)
    assert served and set(served.values()) == {None}


# -- planned vs judged ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "cells", "planned", "said"), [
    ("interrupted", 3, 8, "3 of 8 planned cells run"),
    ("interrupted", 0, 8, "0 of 8 planned cells run"),
    ("failed", 8, 8, "8 of 8 planned cells run"),
    ("complete", 8, 8, None),
    ("interrupted", 3, None, None),  # a results.json from before "planned"
])
def test_of_planned(status, cells, planned, said):
    assert of_planned({"status": status, "summary": {"cells": cells, "planned": planned}}) == said


@pytest.mark.stack
def test_an_interrupted_run_says_how_many_of_its_planned_cells_it_judged(tmp_path):
    """A real run stopped by Ctrl-C as its second cell starts: terminal, results.md and report.html say 1 of 2."""
    lab = subprocess.Popen(
        [sys.executable, "-m", "workerlab", "run", "-s", "sync-x1", "-t", "naive-global,iso-request", "-n", "40",
         "-u", "4", "--quick", "--quiet", "--output", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "LAB_PHASES": "1", "COLUMNS": "200"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in lab.stderr:
            if line.startswith("phase: cell sync-x1/iso-request"):
                lab.send_signal(signal.SIGINT)
                break
        out, _ = lab.communicate(timeout=120)
    finally:
        if lab.poll() is None:
            lab.kill()
            lab.wait()
    assert lab.returncode == 130, out
    assert "interrupted: 1 of 2 planned cells run." in " ".join(out.split()), out
    [run] = [p.parent for p in tmp_path.glob("*/results.json")]
    data = json.loads((run / "results.json").read_text())
    assert data["status"] == "interrupted" and data["summary"]["planned"] == 2 and data["summary"]["cells"] == 1
    assert "interrupted: 1 of 2 planned cells run" in (run / "results.md").read_text()
    assert ">1 of 2 planned cells run<" in (run / "report.html").read_text()
