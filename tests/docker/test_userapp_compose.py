"""A user's app under `--engine compose`, for real: its folder built into an image, run in the lab's compose
stack with the redis sidecar, judged by the lab's checkers.

The app keeps one counter in a process global (a redis round trip between its read and its write) and one
in redis (INCR): under sync-x4 (four processes) the global one is wrong and the redis one right, as
natively. Marked ``docker`` (make docker-test).
"""

from __future__ import annotations

import os

import pytest
from dockertools import run
from labtools import run_lab

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.environ.get("LAB_DOCKER_TESTS") != "1", reason="set LAB_DOCKER_TESTS=1 (make docker-test)"),
]

APP = '''
import os

import redis
from flask import Flask, jsonify


def create_app():
    app = Flask(__name__)
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    state = {"hits": 0}

    @app.post("/global/hit")
    def global_hit():
        value = state["hits"] + 1
        store.ping()  # I/O between the read and the write, as a real handler has
        state["hits"] = value
        return jsonify(hits=value)

    @app.get("/global/hits")
    def global_hits():
        return jsonify(hits=state["hits"])

    @app.post("/redis/hit")
    def redis_hit():
        return jsonify(hits=store.incr("hits"))

    @app.get("/redis/hits")
    def redis_hits():
        return jsonify(hits=int(store.get("hits") or 0))

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
path = "/redis/hit"
json_pointer = "/hits"
read = "/redis/hits"
expect = { sync-x4 = "correct" }
'''


def test_an_app_in_compose_loses_its_global_counter_and_keeps_its_redis_one(docker_env, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(APP)
    (app / "requirements.txt").write_text("Flask==3.1.3\nredis==8.1.0\n")
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
