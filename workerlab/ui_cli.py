"""`python -m workerlab ui`: a native stack plus locust's own web UI on it, with a live Verdict tab."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request

import click
from rich.console import Console

from loadtests.protocol import USER_CLASS_NAMES

from .hold import hold, holding
from .matrix import new_run_dir
from .paths import RESULTS_DIR, ROOT
from .procs import Child
from .progress import phase
from .scenarios import UnknownName, load_scenarios, pick
from .stacks.native import NativeStack, missing_binaries, missing_message, sidecars_for
from .strategies import RACE_WINDOWS, STRATEGIES

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
# On Stop, users finish the request they are in (else it is cut off and counted unanswered: no-answer).
STOP_TIMEOUT_S = "10"
UI_START_TIMEOUT_S = 30.0

console = Console()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def locust_argv(user_class: str, host: str, port: int, users: int, spawn_rate: float) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), user_class, "--host", host,
            "--web-host", "127.0.0.1", "--web-port", str(port), "--users", str(users),
            "--spawn-rate", str(spawn_rate), "--stop-timeout", STOP_TIMEOUT_S]


@click.command()
@click.argument("scenario")
@click.option("--strategy", "-t", default="naive-global", show_default=True, help="The state strategy to load.")
@click.option("--race-window", type=click.Choice(RACE_WINDOWS), default="yield", show_default=True)
@click.option("--direct", is_flag=True, help="Send load straight to the first app instance, not through nginx.")
@click.option("--users", "-u", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Default number of users in the start form.")
@click.option("--spawn-rate", "-r", type=click.FloatRange(0.1, 10000), default=20, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8089, show_default=True, help="Web UI port.")
def ui(scenario, strategy, race_window, direct, users, spawn_rate, port):
    """Bring SCENARIO's stack up and open locust's web UI on it, with a live Verdict tab; Ctrl-C stops all."""
    scenarios = load_scenarios()
    try:
        pick([scenario], scenarios, "scenario")
        pick([strategy], STRATEGIES, "strategy")
    except UnknownName as exc:
        raise click.UsageError(str(exc)) from None
    sidecars = sidecars_for([STRATEGIES[strategy]])
    missing = missing_binaries(sidecars)
    if missing:
        raise click.ClickException(missing_message(missing))
    check = STRATEGIES[strategy].check
    classes = USER_CLASS_NAMES
    if check not in classes:
        raise click.ClickException(f"strategy {strategy}: no user class for check '{check}' in {LOCUSTFILE}")
    if not _port_free(port):
        raise click.ClickException(f"127.0.0.1:{port} is in use (another locust?); pick one with --port")
    run_dir = new_run_dir(RESULTS_DIR / "ui")
    ui_url = f"http://127.0.0.1:{port}"
    phase("stack-start", scenario)
    with NativeStack(scenarios[scenario], run_dir, race_window=race_window, direct=direct, sidecars=sidecars) as stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        env.update({"LAB_STRATEGY": strategy, "LAB_INSTANCES": ",".join(stack.instance_urls), "PYTHONUNBUFFERED": "1"})
        locust = stack.children.start(Child("locust", locust_argv(classes[check], stack.url, port, users, spawn_rate),
                                            run_dir / "logs" / "locust.log", env=env, cwd=ROOT))
        with holding(console):
            deadline = time.monotonic() + UI_START_TIMEOUT_S
            while not _answers(f"{ui_url}/"):
                if not locust.alive():
                    raise locust.failure("exited during start-up")
                if time.monotonic() > deadline:
                    raise locust.failure(f"web UI not answering after {UI_START_TIMEOUT_S:.0f}s")
                time.sleep(0.1)
            console.print(f"[bold]{scenario}[/] is up at {stack.url}; locust ({classes[check]}, "
                          f"LAB_STRATEGY={strategy}) at [bold]{ui_url}[/]")
            console.print(f"live verdict: {ui_url}/?tab=verdict  (or {ui_url}/verdict)   logs: {run_dir / 'logs'}")
            console.print("Ctrl-C stops locust and every process of the stack.")
            hold(stack)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
