"""A user's app under a runtime model in containers (`--engine compose`): the lab's compose stack
(compose/compose.yaml: nginx, redis, memcached, the replicas) with the app service running the app's image
(image.py) instead of the lab's app, through an override written for the stack (compose.userapp.json).

The override gives the app service the image, the scenario's server command (gunicorn with the lab's
settings, or the dev server, as natively), the variables of the sidecars it declares (REDIS_URL=redis://redis:6379/0
...), its own [env], and a healthcheck on its declared health path.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..scenarios import Scenario
from ..stacks.compose import ComposeStack
from ..stacks.native import server_argv
from .declaration import SERVICES, Declaration
from .image import AppImage

PORT = 8000
# Inside the app's container: what the sidecars' names on compose's backend network give.
SERVICE_URLS = {"redis": "redis://redis:6379/0", "memcached": "memcached:11211"}
HEALTH_PROBE = ("import sys, urllib.error, urllib.request\n"
                "try:\n    urllib.request.urlopen(sys.argv[1], timeout=2)\n"
                "except urllib.error.HTTPError:\n    pass  # any answer: the server is up\n")


def app_service(scenario: Scenario, declaration: Declaration, image: AppImage) -> dict:
    """The app service's settings for one scenario, on top of compose.yaml's."""
    command = server_argv(scenario,
                          ["python", "-m", "gunicorn", "-c", "/opt/worker-lab/gunicorn_conf.py",
                           declaration.import_path],
                          ["python", "/opt/worker-lab/devserver.py", declaration.import_path, "--host", "0.0.0.0",
                           "--port", str(PORT)])
    environment = {SERVICES[name]: SERVICE_URLS[name] for name in declaration.services}
    environment.update(declaration.env)
    return {
        "build": {"context": str(image.context), "dockerfile": "Dockerfile"},
        "image": image.tag,
        "command": command,
        "environment": environment,
        "healthcheck": {"test": ["CMD", "python", "-c", HEALTH_PROBE, f"http://127.0.0.1:{PORT}{declaration.health}"],
                        "interval": "3s", "timeout": "3s", "retries": 20, "start_period": "10s"},
    }


class UserAppComposeStack(ComposeStack):
    def __init__(self, scenario: Scenario, run_dir: Path, declaration: Declaration, image: AppImage,
                 direct: bool = False):
        super().__init__(scenario, run_dir, direct=direct)
        self.override = run_dir / "compose.userapp.json"
        run_dir.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: compose reads it as an override file.
        self.override.write_text(json.dumps({"services": {"app": app_service(scenario, declaration, image)}},
                                            indent=2) + "\n")

    def override_files(self) -> list[Path]:
        return [*super().override_files(), self.override]

    def live_processes(self) -> None:
        """Not asked: the app's answers name no container pid (at most its own served-by header)."""
        return None
