"""Fixtures: real stacks and real lab runs, no mocks of redis, memcached, nginx or gunicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(_ROOT), str(_ROOT / "services" / "app")]

from labtools import run_lab  # noqa: E402

from workerlab.scenarios import load_scenarios  # noqa: E402
from workerlab.stacks.native import SIDECARS, NativeStack  # noqa: E402


@pytest.fixture(scope="session")
def scenarios():
    return load_scenarios()


@pytest.fixture(scope="session")
def sub_matrix(tmp_path_factory):
    """One real run of the sub-matrix the core tests judge (about a minute)."""
    output = tmp_path_factory.mktemp("lab")
    args = [
        "-s", "sync-x1,sync-x4,gthread-2x8,gevent-x1,gevent-unpatched",
        "-t", "naive-global,locked-global,redis-incr,redis-get-set,memcached-incr,sql-update,"
              "iso-request,iso-thread-local,server-session-redis-same-user",
        "-n", "400", "-u", "25",
    ]
    proc, data = run_lab(args, output)
    assert data is not None, f"no results.json; stderr:\n{proc.stderr[-3000:]}\nstdout:\n{proc.stdout[-3000:]}"
    data["_exit_code"] = proc.returncode
    data["_stdout"] = proc.stdout
    return data


@pytest.fixture
def cell(sub_matrix):
    def get(scenario: str, strategy: str) -> dict:
        for c in sub_matrix["cells"]:
            if c["scenario"] == scenario and c["strategy"] == strategy:
                return c
        raise KeyError((scenario, strategy))

    return get


@pytest.fixture(scope="module")
def gthread_stack(tmp_path_factory, scenarios):
    """A running gthread stack with nginx in front and every sidecar (PostgreSQL too), for direct HTTP tests."""
    with NativeStack(scenarios["gthread-2x8"], tmp_path_factory.mktemp("stack"), sidecars=SIDECARS) as stack:
        yield stack


@pytest.fixture
def env_without_lab():
    return {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
