"""Helpers the tests share: run the lab for real, and follow the processes it starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_lab(args: list[str], output: Path, timeout: float = 600,
            env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run `python -m workerlab run ...` for real; return the process and its results.json."""
    proc = subprocess.run(
        [sys.executable, "-m", "workerlab", "run", "--output", str(output), "--quiet", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    found = sorted(output.glob("*/results.json"))
    return proc, (json.loads(found[-1].read_text()) if found else None)


def descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def processes_mentioning(path) -> list[str]:
    """Live processes whose command line or environment names `path` (a run folder)."""
    import psutil

    found = []
    text = str(path)
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.environ() if text not in cmdline else {}
            if text in cmdline or any(text in v for v in environ.values()):
                found.append(f"{proc.info['pid']}: {cmdline}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False




def get_json(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def post(url: str, fields: dict | None = None) -> dict:
    """A form POST (locust's /swarm and /stop) answered with JSON."""
    import urllib.parse
    import urllib.request

    body = urllib.parse.urlencode(fields or {}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10) as response:
        return json.loads(response.read())


def wait_for(predicate, timeout: float, what: str):
    """Poll until predicate() is truthy (connection errors count as not yet); return its value."""
    import time
    import urllib.error

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, urllib.error.URLError, ValueError):
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")
