"""Helpers of the docker suite (tests/docker): docker and the lab's scripts run from the repo root."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args, env, timeout=900, check=False) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def engine_answers(env) -> bool:
    try:
        return run(["docker", "version", "--format", "{{.Server.Version}}"], env, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
