"""compose/lab-compose.sh's checks that need no Docker engine: they run in the default test run.

Unknown scenarios exit 2 with the valid names before anything is built; a missing
engine exits 3 naming what is missing and how to start one; every scenario file
renders through the installed compose CLI (when there is one) with its INSTANCES
as the app's replica count and ports on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_COMPOSE = ROOT / "compose" / "lab-compose.sh"
SCENARIOS = sorted(p.stem for p in (ROOT / "compose" / "scenarios").glob("*.env"))


def run(*args, env_extra=None):
    env = dict(os.environ, LAB_COMPOSE_PROJECT="wltest-cli", **(env_extra or {}))
    return subprocess.run([str(LAB_COMPOSE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def compose_clis() -> list[str]:
    found = []
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        found.append("docker compose")
    if shutil.which("docker-compose"):
        found.append("docker-compose")
    return found


@pytest.mark.parametrize("name", ["no-such-scenario", "../scenarios/sync-x4", ""])
def test_unknown_scenario_exits_2_listing_valid_ones(name):
    proc = run("up", name, env_extra={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 2, proc.stderr
    for valid in SCENARIOS:
        assert valid in proc.stderr
    # Checked before the engine: nothing was built, no engine was even asked.
    assert "engine" not in proc.stderr


def test_missing_engine_exits_3_and_says_how_to_start_one():
    proc = run("up", "sync-x4", env_extra={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 3, proc.stderr
    if shutil.which("docker"):
        assert "no Docker engine is reachable at unix:///nonexistent/docker.sock" in proc.stderr
        assert "tools/dockerd.sh start" in proc.stderr
    else:
        assert "docker CLI is not installed" in proc.stderr


@pytest.mark.parametrize("cli", compose_clis() or [pytest.param(None, marks=pytest.mark.skip("no compose CLI"))])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_renders(cli, scenario):
    proc = run("config", scenario, env_extra={"LAB_COMPOSE": cli})
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    env = dict(
        line.split("=", 1)
        for line in (ROOT / "compose" / "scenarios" / f"{scenario}.env").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    # app replicas first (services are sorted: app < locust-worker); the scenario's INSTANCES.
    replicas = re.findall(r"replicas: (\d+)", text)
    assert replicas and replicas[0] == env["INSTANCES"], replicas
    assert re.search(rf"SERVER: '?\"?{re.escape(env['SERVER'])}", text), "env_file did not reach the app"
    for key in ("PRELOAD", "DIRTY_WORKERS"):  # gunicorn.conf.py reads them in the container as natively
        if key in env:
            assert re.search(rf"{key}: '?\"?{re.escape(env[key])}", text), f"{key} did not reach the app"
    # Published ports: v1 prints "- HOST_IP:PUBLISHED:TARGET/tcp", v2 a mapping with host_ip.
    blocks = port_blocks(text)
    assert len(blocks) == 2, "nginx and the locust UI publish ports, nothing else"
    for block in blocks:
        ips = re.findall(r"^\s*- \"?([^:\s]+):\d+:\d+", block, re.M) + re.findall(r"host_ip: (\S+)", block)
        entries = len(re.findall(r"^\s*- ", block, re.M))
        assert ips == ["127.0.0.1"] * entries and entries == 1, block


def port_blocks(text: str) -> list[str]:
    """The text under each `ports:` key of the rendered file."""
    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "ports:":
            indent = len(line) - len(line.lstrip())
            body = []
            for nxt in lines[i + 1 :]:
                stripped = nxt.lstrip()
                if not stripped:
                    continue
                nindent = len(nxt) - len(stripped)
                if nindent < indent or (nindent == indent and not stripped.startswith("- ")):
                    break
                body.append(nxt)
            blocks.append("\n".join(body))
    return blocks


def test_each_app_replica_keeps_its_files_in_its_own_container():
    """LAB_DATA_DIR (SQLite, FileSystemCache, session files) is on each replica's own /tmp tmpfs, never a
    volume the replicas would share: replicas are separate hosts (the native runner gives each instance
    of a scale-out scenario its own folder too)."""
    yaml = pytest.importorskip("yaml")
    base = yaml.safe_load((ROOT / "compose" / "compose.yaml").read_text())["services"]["app"]
    lab = yaml.safe_load((ROOT / "compose" / "compose.lab.yaml").read_text())["services"]["app"]
    assert not base.get("volumes") and not lab.get("volumes"), "the app mounts a volume"
    data_dir = base["environment"]["LAB_DATA_DIR"]
    tmpfs = [t.split(":", 1)[0] for t in base["tmpfs"]]
    assert any(data_dir.startswith(t.rstrip("/") + "/") for t in tmpfs), (data_dir, tmpfs)
