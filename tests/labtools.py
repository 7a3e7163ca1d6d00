"""Helpers the tests share: run the lab for real, and follow the processes it starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_lab(args: list[str], output: Path, timeout: float = 600) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run `python -m workerlab run ...` for real; return the process and its results.json."""
    proc = subprocess.run(
        [sys.executable, "-m", "workerlab", "run", "--output", str(output), "--quiet", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
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


