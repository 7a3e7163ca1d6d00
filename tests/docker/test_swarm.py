"""The compose stack on an orchestrator, for real: `run --engine swarm` deploys each scenario's stack on a
single-node Docker Swarm of the lab's engine (`docker swarm init` when the engine is in none, left again
afterwards) and runs the matrix's cells against it.

The scale-out cells under swarm give the verdicts the matrix declares (natively and in compose alike):
naive-global loses updates and diverges across the 3 replicas, sql-update diverges (a file per replica),
redis-incr is correct. Then: a Ctrl-C mid-cell takes the stack down and leaves the swarm, a swarm that
cannot start (its port taken) and a run with no engine are clear errors. The docker-marked tests need make docker-test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from dockertools import ROOT, run
from labtools import run_lab

docker_only = [
    pytest.mark.docker,
    pytest.mark.skipif(os.environ.get("LAB_DOCKER_TESTS") != "1", reason="set LAB_DOCKER_TESTS=1 (make docker-test)"),
]
LOAD = ["-n", "300", "-u", "20"]


def swarm_state(env) -> str:
    return run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], env).stdout.strip()


def left_behind(env, run_id: str) -> list[str]:
    """Containers, services and networks of the run's stacks (their names start with wl-<run id>)."""
    prefix = f"wl-{run_id}".lower()
    names = run(["docker", "ps", "-a", "--format", "{{.Names}}"], env).stdout.split()
    names += run(["docker", "network", "ls", "--format", "{{.Name}}"], env).stdout.split()
    if swarm_state(env) == "active":
        names += run(["docker", "service", "ls", "--format", "{{.Name}}"], env).stdout.split()
    return [n for n in names if n.startswith(prefix)]


@pytest.mark.parametrize("_", [pytest.param(None, marks=docker_only)])
def test_scale_out_cells_on_a_swarm_give_the_declared_verdicts(docker_env, tmp_path, _):
    before = swarm_state(docker_env)
    started = time.monotonic()
    proc, data = run_lab(["--engine", "swarm", "-s", "scale-out-3", "-t", "naive-global,sql-update,redis-incr",
                          *LOAD], tmp_path, timeout=1200, env=docker_env)
    assert data is not None, f"no results.json\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    print(f"\n[docker tests] swarm scale-out-3: {len(data['cells'])} cells in {time.monotonic() - started:.0f}s")
    cells = {c["strategy"]: c for c in data["cells"]}
    assert data["settings"]["engine"] == "swarm"
    assert cells["naive-global"]["observed"]["label"] == "lost-updates+diverges", cells["naive-global"]["observed"]
    assert cells["sql-update"]["observed"]["label"] == "diverges", cells["sql-update"]["observed"]
    assert cells["redis-incr"]["observed"]["label"] == "correct", cells["redis-incr"]["observed"]
    assert cells["redis-incr"]["counts"]["final"] == 300, cells["redis-incr"]["counts"]
    assert all(c["match"] for c in data["cells"]) and proc.returncode == 0, proc.stdout[-3000:]
    # Three replicas (one gunicorn worker each) served the load: nginx spread it over every task.
    assert cells["naive-global"]["throughput"]["served_by"]["processes"] == 3, cells["naive-global"]["throughput"]
    # What served is asked of the stack's containers, as in compose.
    assert data["scenarios"]["scale-out-3"]["served_versions"]["gunicorn"]
    assert swarm_state(docker_env) == before and not left_behind(docker_env, data["run_id"])


@pytest.mark.parametrize("at_phase", [pytest.param(p, marks=docker_only) for p in ("stack-start", "cell")])
def test_ctrl_c_takes_the_swarm_stack_down(docker_env, tmp_path, at_phase):
    """Ctrl-C as the stack starts (the swarm being made, the stack deployed) and mid-cell: exit 130, the stack
    removed, the swarm left as it was found."""
    before = swarm_state(docker_env)
    lab = subprocess.Popen([sys.executable, "-m", "workerlab", "run", "--engine", "swarm", "-s", "scale-out-3",
                            "-t", "naive-global", "-n", "5000", "-u", "10", "--output", str(tmp_path), "--quiet"],
                           cwd=ROOT, env={**docker_env, "LAB_PHASES": "1"}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in lab.stderr:
            if line.startswith(f"phase: {at_phase}"):
                break
        else:
            pytest.fail(f"the lab exited ({lab.wait()}) before phase {at_phase}")
        os.killpg(lab.pid, signal.SIGINT)  # a terminal's Ctrl-C
        assert lab.wait(timeout=300) == 130
    finally:
        if lab.poll() is None:
            os.killpg(lab.pid, signal.SIGKILL)
    run_id = next(tmp_path.iterdir()).name
    assert swarm_state(docker_env) == before and not left_behind(docker_env, run_id)


@pytest.mark.parametrize("_", [pytest.param(None, marks=docker_only)])
def test_a_swarm_that_cannot_start_is_a_clear_error(docker_env, tmp_path, _):
    """The lab's swarm listens on 127.0.0.1:2377: with that port taken, `docker swarm init` fails for real."""
    if swarm_state(docker_env) != "inactive":
        pytest.skip("the engine is in a swarm already: the lab would use it, not make one")
    networks = run(["docker", "network", "ls", "--format", "{{.Name}}"], docker_env).stdout.split()
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 2377))
        except OSError:
            pytest.skip("127.0.0.1:2377 is in use already")
        taken.listen()
        proc, data = run_lab(["--engine", "swarm", "-s", "scale-out-3", "-t", "redis-incr", *LOAD], tmp_path,
                             timeout=300, env=docker_env)
    assert proc.returncode == 1 and data is not None, proc.stderr[-2000:]
    error = data["scenarios"]["scale-out-3"]["error"]
    assert error.startswith("docker swarm init failed") and "address already in use" in error, error
    assert data["cells"][0]["error"].startswith("stack did not start: docker swarm init failed"), data["cells"]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert swarm_state(docker_env) == "inactive"
    assert run(["docker", "network", "ls", "--format", "{{.Name}}"], docker_env).stdout.split() == networks


def test_swarm_without_an_engine_says_so(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workerlab", "run", "--engine", "swarm", "-s", "scale-out-3",
                           "--output", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 1 and "--engine swarm needs a Docker engine" in proc.stderr, proc.stderr[-2000:]
    assert "tools/dockerd.sh start" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())  # refused before any run folder
