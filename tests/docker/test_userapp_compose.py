"""A user's app under `--engine compose`, for real: its folder built into an image, run in the lab's compose
stack with the redis sidecar, judged by the lab's checkers.

The app is the redis-shop example with one more counter, in a process global: under sync-x4 (four
processes) the global one is wrong and the example's redis INCR one right, as natively. Marked ``docker``
(make docker-test).
"""

from __future__ import annotations

import os
import shutil

import pytest
from dockertools import run
from labtools import ROOT, run_lab

EXAMPLES = ROOT / "examples"
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.environ.get("LAB_DOCKER_TESTS") != "1", reason="set LAB_DOCKER_TESTS=1 (make docker-test)"),
]

# The redis shop example (copied beside it as shop.py) with one more counter, in a process global.
APP = '''
from flask import jsonify

import shop


def create_app():
    app = shop.create_app()
    state = {"hits": 0}

    @app.post("/global/hit")
    def global_hit():
        state["hits"] += 1
        return jsonify(hits=state["hits"])

    @app.get("/global/hits")
    def global_hits():
        return jsonify(hits=state["hits"])

    return app
'''

DECLARATION = '''
[app]
import = "app:create_app()"
requirements = "requirements.txt"
services = ["redis"]

[[endpoint]]
name = "global"
check = "counter"
method = "POST"
path = "/global/hit"
json_pointer = "/hits"
read = "/global/hits"

[[endpoint]]
name = "redis"
check = "counter"
method = "POST"
path = "/hit"
json_pointer = "/hits"
read = "/hits"
expect = { sync-x4 = "correct" }
'''


def test_an_app_in_compose_loses_its_global_counter_and_keeps_its_redis_one(docker_env, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(APP)
    shutil.copy(EXAMPLES / "redis-shop" / "app.py", app / "shop.py")
    shutil.copy(EXAMPLES / "redis-shop" / "requirements.txt", app / "requirements.txt")
    (app / "worker-lab.toml").write_text(DECLARATION)
    proc, data = run_lab(["--app", str(app), "--engine", "compose", "-s", "sync-x4", "-n", "300", "-u", "20"],
                         tmp_path / "out", timeout=1500, env=docker_env)
    assert data is not None, f"no results.json\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert data["settings"]["engine"] == "compose" and data["settings"]["image"].startswith("worker-lab/userapp:")
    cells = {c["strategy"]: c for c in data["cells"]}
    wrong, right = cells["global"], cells["redis"]
    assert {"lost-updates", "diverges"} & set(wrong["observed"]["verdict"]), wrong
    assert right["observed"]["verdict"] == ["correct"] and right["match"] is True, right
    assert right["counts"]["final"] == right["counts"]["acknowledged"] == 300, right["counts"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    # The image ran the app as the lab's compose file runs services: not as root, every stack taken down.
    config = run(["docker", "image", "inspect", "-f", "{{.Config.User}}", data["settings"]["image"]], docker_env)
    assert config.stdout.strip() == "lab:lab", config
    projects = run(["docker", "ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}'], docker_env)
    assert not [p for p in projects.stdout.split() if p.startswith(f"wl-{data['run_id']}".lower())], projects.stdout
