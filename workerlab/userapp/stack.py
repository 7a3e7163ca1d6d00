"""A user's app under a runtime model, natively: the lab's stack (sidecars, instances, nginx) with the app
run from its own venv and folder instead of the lab's app."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from ..paths import APP_DIR
from ..scenarios import Scenario
from ..stacks.native import NativeStack, server_argv
from .declaration import SERVICES, Declaration

SERVED = Path(__file__).resolve().parent / "served"


def service_urls(ports: dict[str, int]) -> dict[str, str]:
    """The variables the lab fills in from its sidecars (declaration.SERVICES names them); the PostgreSQL
    sidecar adds DATABASE_URL here."""
    urls = {"redis": lambda port: f"redis://127.0.0.1:{port}/0", "memcached": lambda port: f"127.0.0.1:{port}"}
    return {SERVICES[name]: urls[name](port) for name, port in ports.items() if name in SERVICES}


def answers(url: str, timeout: float = 2.0) -> bool:
    """Any HTTP answer at all (a 404 too): the server is up."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


class UserAppStack(NativeStack):
    def __init__(self, scenario: Scenario, run_dir: Path, declaration: Declaration, venv: Path, **kwargs):
        super().__init__(scenario, run_dir, sidecars=declaration.services, **kwargs)
        self.declaration = declaration
        self.python = str(venv / "bin" / "python")
        self.app_cwd = declaration.app_dir

    @property
    def runs_stash(self) -> bool:
        return False  # the user's app runs under the lab's served/gunicorn_conf.py: no dirty arbiter

    def app_answers(self, url: str) -> bool:
        return answers(url + self.declaration.health)

    def app_env(self, index: int, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LAB_", "GUNICORN_", "FLASK_", "VIRTUAL_ENV", "PYTHON"))}
        data = self.data_dir(index)
        data.mkdir(parents=True, exist_ok=True)
        env.update(dict(self.scenario.env))
        env.update({
            "PYTHONPATH": str(self.declaration.app_dir),
            "PYTHONUNBUFFERED": "1",
            "TMPDIR": str(data),  # each instance of a scale-out scenario a host of its own, with its own /tmp
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "LAB_GUNICORN_CONF": str(APP_DIR / "gunicorn.conf.py"),
            "LAB_WORKERS_PY": str(APP_DIR / "labapp" / "workers.py"),
            "LAB_READY_DIR": str(self.ready_dir(index)),  # the lab's gunicorn.conf.py notes each worker ready
        })
        env.update(service_urls(self.ports))
        env.update(self.declaration.env)
        return env

    def app_argv(self, port: int) -> list[str]:
        return server_argv(self.scenario,
                           [self.python, "-m", "gunicorn", "-c", str(SERVED / "gunicorn_conf.py"),
                            self.declaration.import_path],
                           [self.python, str(SERVED / "devserver.py"), self.declaration.import_path, "--port",
                            str(port)])
