"""A user's app through the lab on real servers: the example apps' sub-matrix, the start-up probe's errors,
--target against a stack this test started, and the refusals (a non-loopback target, compose)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request

import pytest
from labtools import ROOT, run_lab
from markupsafe import escape

from workerlab.scenarios import load_scenarios
from workerlab.userapp.declaration import load
from workerlab.userapp.stack import UserAppStack
from workerlab.userapp.venv import ensure_venv

pytestmark = pytest.mark.stack
EXAMPLES = ROOT / "examples"
LOAD = ["-n", "300", "-u", "20"]


def cells(data: dict) -> dict:
    return {(c["scenario"], c["strategy"]): c for c in data["cells"]}


def lab(tmp_path, *args: str, timeout: float = 900):
    proc, data = run_lab([*args], tmp_path / "out", timeout=timeout)
    assert data is not None, f"no results.json; stderr:\n{proc.stderr[-3000:]}\nstdout:\n{proc.stdout[-3000:]}"
    return proc, cells(data), data


def test_the_naive_shop_loses_its_global_counter_and_its_in_process_cart(tmp_path):
    proc, by, data = lab(tmp_path, "--app", str(EXAMPLES / "naive-shop"), "-s", "sync-x1,sync-x4,gthread-2x8",
                         *LOAD)
    hits = by[("gthread-2x8", "hits")]
    assert "lost-updates" in hits["observed"]["verdict"], hits
    assert hits["counts"]["duplicates"] > 0  # two processes hand out the same values
    x4 = by[("sync-x4", "hits")]["observed"]["verdict"]
    assert {"diverges", "lost-updates"} & set(x4), x4
    assert by[("sync-x4", "cart")]["observed"]["verdict"] != ["correct"]  # each worker its own SimpleCache
    one = by[("sync-x1", "hits")]["observed"]
    # Nothing found with one process: said as what was tried, never a bare "correct".
    assert one["verdict"] == ["correct"] and one["label"] == "not seen"
    assert one["claim"].startswith("not seen in ") and one["claim"].endswith("under sync-x1")
    assert "never safe across processes or instances" in one["still_breaks"]
    assert "hits: broke under " in proc.stdout and "safe only with one process" not in proc.stdout.split("hits:")[0]
    # The same sentences are in results.json and in the HTML report, which reads nothing else.
    assert data["endpoints"]["hits"].startswith("hits: broke under ")
    html = (tmp_path / "out" / data["run_id"] / "report.html").read_text()
    assert 'id="endpoints"' in html and 'data-endpoint="cart"' in html
    assert escape(data["endpoints"]["hits"]) in html


def test_the_redis_shop_is_not_seen_to_break_and_its_expectations_match(tmp_path):
    proc, by, data = lab(tmp_path, "--app", str(EXAMPLES / "redis-shop"), "-s", "sync-x4,gthread-2x8", *LOAD)
    assert proc.returncode == 0, proc.stdout[-2000:]
    for (scenario, endpoint), c in by.items():
        assert c["observed"]["verdict"] == ["correct"], (scenario, endpoint, c["counts"], c["examples"])
        assert c["observed"]["label"] == "not seen" and "not seen in" in c["observed"]["claim"]
    assert by[("sync-x4", "hits")]["match"] is True and by[("sync-x4", "cart")]["match"] is None
    assert by[("sync-x4", "hits")]["counts"]["lost"] == 0 and by[("sync-x4", "orders")]["counts"]["distinct"] > 250
    assert data["summary"]["mismatched"] == 0


def copy_example(tmp_path, toml: str):
    app = tmp_path / "app"
    app.mkdir()
    for name in ("app.py", "requirements.txt"):  # the same requirements: the same (cached) venv
        shutil.copy(EXAMPLES / "redis-shop" / name, app / name)
    (app / "worker-lab.toml").write_text(toml)
    return app


@pytest.mark.parametrize("endpoint, message", [
    ('path = "/nope"\njson_pointer = "/hits"', "request GET /nope answered HTTP 404, not 2xx: '<!doctype html>"),
    ('method = "POST"\npath = "/hit"\njson_pointer = "/count"',
     "endpoint 'e': the answer: no '/count' in the answer: '{\"hits\":1}"),
])
def test_the_start_up_probe_names_what_did_not_answer_as_declared(tmp_path, endpoint, message):
    toml = ('[app]\nimport = "app:create_app()"\nrequirements = "requirements.txt"\nservices = ["redis"]\n\n'
            f'[[endpoint]]\nname = "e"\ncheck = "counter"\n{endpoint}\n')
    proc, data = run_lab(["--app", str(copy_example(tmp_path, toml)), "-s", "sync-x1", *LOAD], tmp_path / "out")
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr[-2000:]
    assert data is None  # no matrix ran


@pytest.fixture(scope="module")
def redis_shop_stack(tmp_path_factory):
    declaration = load(EXAMPLES / "redis-shop")
    venv = ensure_venv(declaration.requirements)
    with UserAppStack(load_scenarios()["sync-x4"], tmp_path_factory.mktemp("target"), declaration, venv) as stack:
        yield stack


def test_target_judges_a_deployment_the_lab_did_not_start(tmp_path, redis_shop_stack):
    for _ in range(5):  # a counter that does not start at 0: the run counts from its read before the load
        urllib.request.urlopen(urllib.request.Request(redis_shop_stack.url + "/hit", method="POST")).read()
    proc, by, data = lab(tmp_path, "--app", str(EXAMPLES / "redis-shop"), "--target", redis_shop_stack.url, *LOAD)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert set(data["scenarios"]) == {"target"} and data["settings"]["target"] == redis_shop_stack.url
    hits = by[("target", "hits")]
    assert hits["observed"]["verdict"] == ["correct"] and hits["counts"]["final"] == 300, hits["counts"]
    assert "not known here" in hits["observed"]["still_breaks"]
    assert {c["observed"]["label"] for c in by.values()} == {"not seen"}


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workerlab", "run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)


def test_a_non_loopback_target_is_refused_without_the_owners_word(tmp_path):
    proc = run_cli("--app", str(EXAMPLES / "redis-shop"), "--target", "http://192.0.2.10:8080",
                   "--output", str(tmp_path))
    assert proc.returncode == 2 and "not loopback" in proc.stderr and "--i-own-this-target" in proc.stderr
    assert not list(tmp_path.iterdir())  # refused before any run folder, any request
    proc = run_cli("--app", str(EXAMPLES / "redis-shop"), "--engine", "compose", "--target", "http://127.0.0.1:9",
                   "--output", str(tmp_path))
    assert proc.returncode == 2 and "drop --engine" in proc.stderr


def test_compose_without_an_engine_says_so_and_starts_nothing(tmp_path):
    proc = run_cli("--app", str(EXAMPLES / "redis-shop"), "--engine", "compose", "--output", str(tmp_path),
                   env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "--engine compose needs a Docker engine" in proc.stderr and "tools/dockerd.sh start" in proc.stderr
    assert "Traceback" not in proc.stderr
