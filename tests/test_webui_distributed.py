"""The Verdict tab under distributed locust (as in the compose stack: a master and workers).

The workers send the requests and record them; the master, which has the web UI, must judge them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from labtools import ROOT, get_json, post, wait_for

from workerlab.procs import free_port
from workerlab.stacks.native import NativeStack

pytestmark = pytest.mark.stack


def test_master_judges_what_its_workers_recorded(tmp_path, scenarios):
    with NativeStack(scenarios["gthread-2x8"], tmp_path / "stack") as stack:
        web, bus = free_port(), free_port()
        env = {**os.environ, "LAB_STRATEGY": "redis-incr", "LAB_INSTANCES": ",".join(stack.instance_urls)}
        locust = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"), "CounterUser",
                  "--loglevel", "WARNING"]
        master_args = ["--master", "--stop-timeout", "10", "--master-bind-host", "127.0.0.1",
                       "--master-bind-port", str(bus),
                       "--web-host", "127.0.0.1", "--web-port", str(web), "--host", stack.url]
        procs = [subprocess.Popen(locust + master_args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                  stderr=open(tmp_path / "master.log", "wb"), start_new_session=True)]
        try:
            procs += [subprocess.Popen(locust + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(bus)],
                                       env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                       stderr=open(tmp_path / f"worker{i}.log", "wb"), start_new_session=True)
                      for i in range(2)]
            base = f"http://127.0.0.1:{web}"
            wait_for(lambda: len(get_json(f"{base}/stats/requests").get("workers", [])) == 2, 60, "two workers")
            assert post(f"{base}/swarm", {"user_count": 20, "spawn_rate": 20})["success"]
            snap = wait_for(lambda: (s := get_json(f"{base}/verdict.json")["snapshot"])["recorded"] >= 400 and s,
                            60, "400 requests recorded by the workers and judged on the master")
            post(f"{base}/stop")
            assert snap["strategy"] == "redis-incr" and snap["key"].startswith("ui-")
            assert snap["counts"]["acknowledged"] >= 400
            # One redis counter for both workers only if each increments the master's key: a worker on a
            # key of its own would hand out 1, 2, 3 ... again, and the master would see duplicates.
            assert snap["counts"]["duplicates"] == 0
            # Live, before Stop, nothing was read at rest: the counter cannot be judged yet.
            assert snap["verdict"] == ["inconclusive"], snap
            final = wait_for(lambda: (d := get_json(f"{base}/verdict.json"))["snapshot"]["final_reads"]
                             .startswith("done") and d["snapshot"], 60, "the master's final reads")
            assert final["verdict"] == ["correct"], final
        finally:
            for proc in procs:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
