"""A venv of the user's app's own: its requirements, and the servers the runtime models need.

Built once per content (the requirements, the lab's server pins, the Python) under .lab/venvs/<hash>, and
linked from each run folder as `venv`: a rerun with the same requirements starts at once. No system site
packages: what the app imports is what its requirements say. gunicorn and gevent (the gunicorn scenarios)
are added at the lab's own pins where the requirements do not name them.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from pathlib import Path

from .. import procs
from ..paths import APP_DIR, ROOT

VENVS = ROOT / ".lab" / "venvs"
# What the runtime models run the app with, at the lab's pins (services/app/requirements.txt).
SERVER_PACKAGES = ("gunicorn", "gevent", "greenlet", "packaging")
PIP_TIMEOUT_S = 900.0
READY = ".ready"  # written last: a venv without it was interrupted and is built again


class VenvError(RuntimeError):
    """The app's venv could not be built; the message shows pip's last lines."""


def _name(line: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def lab_pins() -> dict[str, str]:
    """The lab's own pin line of each server package (e.g. 'gunicorn' -> 'gunicorn==27.0.1')."""
    wanted = {_name(p) for p in SERVER_PACKAGES}
    pins = {}
    for line in (APP_DIR / "requirements.txt").read_text().splitlines():
        if _name(line) in wanted and "==" in line:
            pins[_name(line)] = line.strip()
    return pins


def requirement_lines(requirements: Path | None) -> list[str]:
    """The user's requirements, then each server package they do not name, at the lab's pin."""
    user = requirements.read_text().splitlines() if requirements else []
    named = {_name(line) for line in user if line.strip() and not line.lstrip().startswith(("#", "-"))}
    return [*user, *(pin for name, pin in lab_pins().items() if name not in named)]


def venv_for(requirements: Path | None) -> Path:
    lines = requirement_lines(requirements)
    digest = hashlib.sha256("\n".join([sys.version, *lines]).encode()).hexdigest()[:16]
    return VENVS / digest


def ensure_venv(requirements: Path | None, say=print) -> Path:
    """The venv's folder, built first if it is not there yet; VenvError when pip fails."""
    venv = venv_for(requirements)
    if (venv / READY).exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    say(f"building the app's venv {venv} (once per requirements; pip output: {venv}.log)")
    result = procs.run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    if result.returncode:
        raise VenvError(f"python -m venv failed:\n{result.stderr.decode(errors='replace')[-2000:]}")
    wanted = venv / "requirements.txt"
    wanted.write_text("\n".join(requirement_lines(requirements)) + "\n")
    # -r of the user's file keeps its relative paths (-e ., -r other.txt) relative to where it is.
    cwd = requirements.parent if requirements else venv
    result = procs.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                        "-r", str(wanted)], timeout=PIP_TIMEOUT_S, cwd=cwd)
    log = Path(f"{venv}.log")
    log.write_bytes(result.stdout + result.stderr)
    if result.returncode:
        tail = "\n".join(result.stderr.decode(errors="replace").splitlines()[-15:])
        raise VenvError(f"pip could not install the app's requirements ({wanted}):\n{tail}")
    (venv / READY).write_text("\n".join(requirement_lines(requirements)) + "\n")
    return venv
