"""The docker CLI as the lab's engines use it: pointed at the engine compose/lab-compose.sh finds (the system
one, or the project-local one of tools/dockerd.sh), each call bounded in time and stopped with the lab."""

from __future__ import annotations

import os
import re
import subprocess

from .. import procs
from .compose import LAB_COMPOSE


class EngineMissing(RuntimeError):
    """No Docker engine answers; the message says what is missing and how to start one."""


def engine_env() -> dict[str, str]:
    """The environment whose `docker` reaches the engine lab-compose.sh finds; EngineMissing if none does."""
    try:
        proc = procs.run([str(LAB_COMPOSE), "engine"], text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineMissing(f"cannot ask for a Docker engine: {exc}") from None
    match = re.search(r"^engine: (\S+)", proc.stdout, re.M)
    if proc.returncode != 0 or not match:
        lines = [line.removeprefix("[lab-compose] ") for line in proc.stderr.splitlines() if line.strip()]
        raise EngineMissing("\n".join(lines) or f"lab-compose.sh engine exited {proc.returncode}")
    return {**os.environ, "DOCKER_HOST": match.group(1)}


def docker(env: dict[str, str], *args: str, timeout: float = 120, log=None) -> subprocess.CompletedProcess:
    """`docker ARGS` in a session of its own; text output captured, or both streams appended to `log`."""
    if log is None:
        return procs.run(["docker", *args], env=env, text=True, timeout=timeout, grace=30)
    with open(log, "a") as out:
        return procs.run(["docker", *args], env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                         timeout=timeout, grace=30)
