"""The docker suite's engine: one for the session, started (and later stopped) only when none answers.

Each test module brings its stacks up under names of its own and takes them down; this fixture only makes
sure a docker CLI reaches an engine and that the base images the project names are there (stand-ins,
tools/offline-images/build.sh, when the upstream ones are missing).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dockertools import engine_answers, run

ROOT = Path(__file__).resolve().parents[2]
DOCKERD_SH = ROOT / "tools" / "dockerd.sh"
BUILD_SH = ROOT / "tools" / "offline-images" / "build.sh"
LOCAL_SOCK = ROOT / ".lab" / "docker" / "docker.sock"


@pytest.fixture(scope="session")
def docker_env():
    """An environment whose docker CLI reaches an engine; starts (and later stops) one if needed."""
    env = dict(os.environ)
    started = False
    if not engine_answers(env):
        if not env.get("DOCKER_HOST"):
            env["DOCKER_HOST"] = f"unix://{LOCAL_SOCK}"
        if not engine_answers(env):
            if env["DOCKER_HOST"] != f"unix://{LOCAL_SOCK}":
                pytest.fail(f"no Docker engine at DOCKER_HOST={os.environ['DOCKER_HOST']}")
            proc = run([str(DOCKERD_SH), "start"], env, timeout=120)
            if proc.returncode != 0:
                pytest.fail(f"could not start dockerd with tools/dockerd.sh:\n{proc.stderr}")
            started = True
    t0 = time.monotonic()
    try:
        # Base images: stand-ins for whichever upstream ones this engine lacks (no-op when present).
        listed = run([str(BUILD_SH), "--list"], env, check=True).stdout.split()
        missing = [ref for ref in listed if run(["docker", "image", "inspect", ref], env).returncode != 0]
        if missing:
            run([str(BUILD_SH), *missing], env, timeout=1800, check=True)
            print(f"\n[docker tests] stand-in base images {missing} built in {time.monotonic() - t0:.0f}s")
        yield env
    finally:
        if started:
            run([str(DOCKERD_SH), "stop"], env, timeout=120)


