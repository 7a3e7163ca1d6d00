"""The image of a user's app for `--engine compose`: the declaration's folder and its requirements, built
from compose/userapp/Dockerfile in a context the lab assembles under the run folder (`image/`).

The context holds requirements.txt (the app's own plus gunicorn and gevent at the lab's pins: venv.py's
list, as a native run installs), app/ (the folder, without caches, venvs and VCS data) and served/ (the
lab's gunicorn settings, its unpatched gevent worker and the dev server: what a native run serves with).
The tag is the context's hash, so a second run of the same app reuses the image.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..paths import APP_DIR, ROOT
from ..stacks.docker_cli import docker
from .declaration import Declaration
from .stack import SERVED
from .venv import requirement_lines

DOCKERFILE = ROOT / "compose" / "userapp" / "Dockerfile"
NOT_COPIED = (".git", ".hg", ".venv", "venv", "__pycache__", "*.pyc", ".lab", "results", "node_modules")
BUILD_TIMEOUT_S = 1200.0
IMAGE_REPO = "worker-lab/userapp"


class ImageError(RuntimeError):
    """The app's image did not build; the message shows the build's last lines."""


@dataclass(frozen=True)
class AppImage:
    tag: str  # worker-lab/userapp:<hash>
    context: Path


def stage(declaration: Declaration, folder: Path) -> Path:
    """The build context for the declaration's app, written to `folder` (replaced)."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(declaration.app_dir, folder / "app", ignore=shutil.ignore_patterns(*NOT_COPIED), symlinks=True)
    served = folder / "served"
    served.mkdir()
    for source in (SERVED / "gunicorn_conf.py", SERVED / "devserver.py", APP_DIR / "gunicorn.conf.py",
                   APP_DIR / "labapp" / "workers.py"):
        shutil.copy(source, served / source.name)
    (folder / "requirements.txt").write_text("\n".join(requirement_lines(declaration.requirements)) + "\n")
    shutil.copy(DOCKERFILE, folder / "Dockerfile")
    return folder


def context_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_image(declaration: Declaration, folder: Path, env: dict[str, str]) -> AppImage:
    """Stage the context in `folder` and build it; ImageError with the build's last lines if it fails."""
    context = stage(declaration, folder)
    tag = f"{IMAGE_REPO}:{context_hash(context)}"
    log = folder.parent / "image-build.log"
    try:
        proc = docker(env, "build", "--tag", tag, str(context), timeout=BUILD_TIMEOUT_S, log=log)
    except subprocess.TimeoutExpired:
        raise ImageError(f"the app's image did not build within {BUILD_TIMEOUT_S:.0f}s (log: {log})") from None
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise ImageError(f"the app's image did not build (docker build exited {proc.returncode}; log: {log}):\n"
                         f"{tail}")
    return AppImage(tag=tag, context=context)
