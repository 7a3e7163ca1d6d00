"""The compose engine: the same scenario's stack in containers, driven from the host.

Brings the stack up with compose/lab-compose.sh (the script behind `make up`), under a
project name of its own and free 127.0.0.1 ports, plus compose/compose.lab.yaml, which
publishes each app replica on an ephemeral loopback port for the final reads.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .. import procs
from ..paths import ROOT
from ..procs import ManagedStack, StackError, free_port, tail
from ..scenarios import Scenario
from .native import BASE_SIDECARS, SIDECARS

LAB_COMPOSE = ROOT / "compose" / "lab-compose.sh"
LAB_OVERRIDE = ROOT / "compose" / "compose.lab.yaml"
UP_TIMEOUT_S = 900  # a cold build of the images can take minutes


def engine_problem() -> str | None:
    """None when a Docker engine and a compose CLI answer, else what is missing and how to fix it."""
    try:
        proc = procs.run([str(LAB_COMPOSE), "engine"], text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot ask for a Docker engine: {exc}"
    if proc.returncode == 0:
        return None
    lines = [line.removeprefix("[lab-compose] ") for line in proc.stderr.splitlines() if line.strip()]
    return "\n".join(lines) or f"lab-compose.sh engine exited {proc.returncode}"


class ComposeStack(ManagedStack):
    def __init__(self, scenario: Scenario, run_dir: Path, *, race_window: str = "yield", direct: bool = False,
                 sidecars: tuple[str, ...] = SIDECARS):
        if set(BASE_SIDECARS) - set(sidecars):
            raise StackError("--without is for the native engine; the compose stack always has its sidecars")
        self.scenario = scenario
        self.run_dir = run_dir
        self.race_window = race_window
        self.direct = direct
        self.project = re.sub(r"[^a-z0-9_-]", "-", f"wl-{run_dir.parent.name}-{scenario.name}".lower())
        self.http_port = free_port()
        self.app_ports: list[int] = []
        self.started = False

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "LAB_COMPOSE_PROJECT": self.project,
            "LAB_HTTP_PORT": str(self.http_port),
            "LAB_LOCUST_PORT": str(free_port()),
            "LAB_RACE_WINDOW": self.race_window,
            "LAB_COMPOSE_EXTRA_FILES": " ".join(str(f) for f in self.override_files()),
        })
        return env

    def override_files(self) -> list[Path]:
        """Files compose reads after compose.yaml: the lab's (each replica published for the final reads)."""
        return [LAB_OVERRIDE]

    def _script(self, *args: str, log: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        # In a session of its own (a terminal's Ctrl-C reaches only the lab); interrupted, it gets SIGTERM and
        # a minute to stop what it started before it is killed.
        if log is None:
            return procs.run([str(LAB_COMPOSE), *args], env=self._env(), text=True, timeout=timeout, grace=60)
        with open(log, "ab") as out:
            return procs.run([str(LAB_COMPOSE), *args], env=self._env(), stdout=out, stderr=subprocess.STDOUT,
                             timeout=timeout, grace=60)

    def start(self) -> None:
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.started = True
        up_log = logs / "compose-up.log"
        proc = self._script("up", self.scenario.name, log=up_log, timeout=UP_TIMEOUT_S)
        if proc.returncode != 0:
            raise StackError(f"compose stack {self.project} did not come up; last lines of {up_log}:\n"
                             f"{tail(up_log, 40)}")
        for index in range(1, self.scenario.instances + 1):
            out = self._script("compose", "port", "--index", str(index), "app", "8000")
            match = re.search(r":(\d+)\s*$", out.stdout.strip())
            if out.returncode != 0 or not match:
                raise StackError(f"no published port for app replica {index}: {out.stderr.strip()[-500:]}")
            self.app_ports.append(int(match.group(1)))

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        try:
            self._script("logs", "--no-color", log=logs / "compose.log", timeout=60)
        except subprocess.TimeoutExpired:
            pass
        self._script("down", log=logs / "compose-down.log", timeout=180)

    def exec_in(self, service: str, argv: list[str]) -> subprocess.CompletedProcess:
        """argv run inside the stack's first container of `service` (compose exec), its output captured."""
        return self._script("compose", "exec", "-T", service, *argv, timeout=60)

    def live_processes(self) -> set[str] | None:
        """Every process alive in the app containers, as the history names them (``instance/pid``: the
        container's hostname and its pid there); None when a container does not say."""
        live: set[str] = set()
        probe = "import os; print(os.uname().nodename, *(p for p in os.listdir('/proc') if p.isdigit()))"
        for index in range(1, self.scenario.instances + 1):
            out = self._script("compose", "exec", "-T", "--index", str(index), "app", "python", "-c", probe,
                               timeout=60)
            words = out.stdout.split()
            if out.returncode != 0 or not words:
                return None
            live |= {f"{words[0]}/{pid}" for pid in words[1:]}
        return live

    @property
    def url(self) -> str:
        port = self.app_ports[0] if self.direct else self.http_port
        return f"http://127.0.0.1:{port}"

    @property
    def instance_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.app_ports]
