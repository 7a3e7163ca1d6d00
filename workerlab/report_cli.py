"""`python -m workerlab report` (HTML report, run comparison) and `python -m workerlab ui` (locust's web UI).

Added to the main command group at the end of cli.py.
"""

from __future__ import annotations

import ast
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .html_report import ResultsError, newest_run, render_report, write_compare
from .paths import RESULTS_DIR, ROOT
from .procs import Child, StackError, tail

RACE_WINDOWS = ("none", "yield", "io")
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
UI_START_TIMEOUT_S = 30.0

console = Console()


# -- report ------------------------------------------------------------------------------------------------------
def _delta(value) -> str:
    if value is None:
        return ""
    colour = "green" if value >= 0 else "red"
    return f"[{colour}]{value:+.1f}%[/]"


def _num(value, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def compare_table(result: dict, changes_only: bool = False) -> Table:
    from .report import styled

    a, b = result["a"]["run_id"], result["b"]["run_id"]
    table = Table(title=f"{a} (A) -> {b} (B): verdict and throughput per cell")
    for col in ("strategy", "scenario", "verdict A -> B", "as expected", "rps A", "rps B", "Δ rps", "p99 A", "p99 B"):
        numeric = col.startswith(("rps", "Δ", "p99"))
        table.add_column(col, justify="right" if numeric else "left", no_wrap=numeric, overflow="fold")
    rows = sorted(result["rows"], key=lambda r: (not r["verdict_changed"], not r["match_changed"]))
    for r in rows:
        if changes_only and not (r["verdict_changed"] or r["match_changed"]):
            continue
        if r["only"]:
            verdict = f"[dim]only in {r['only']}:[/] {styled(r['verdict_a'] or r['verdict_b'])}"
        elif r["verdict_changed"]:
            verdict = f"[bold]{styled(r['verdict_a'])} -> {styled(r['verdict_b'])}[/]"
        else:
            verdict = styled(r["verdict_b"])
        match = {True: "[green]yes[/]", False: "[bold red]NO[/]", None: "-"}
        expected = f"{match[r['match_a']]} -> {match[r['match_b']]}" if r["match_changed"] else match[r["match_b"]]
        table.add_row(r["strategy"], r["scenario"], verdict, expected, _num(r["rps_a"]), _num(r["rps_b"]),
                      _delta(r["rps_delta_pct"]), _num(r["p99_a"], 1), _num(r["p99_b"], 1))
    return table


@click.command()
@click.argument("runs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With two runs: where to write compare.html [default: next to B's results.json].")
@click.option("--changes-only", is_flag=True,
              help="With two runs: list only the cells whose verdict or expectation match changed.")
def report(runs, output, changes_only):
    """Render report.html for a run, or compare two runs.

    RUNS: a run folder or its results.json. None: the newest run under results/.
    One: write report.html next to its results.json and print the path.
    Two (A B): print verdict changes and throughput deltas per cell, and write compare.html.
    """
    try:
        if len(runs) > 2:
            raise click.UsageError("give at most two runs (A B) to compare")
        if len(runs) == 2:
            out, result = write_compare(runs[0], runs[1], output)
            console.print(compare_table(result, changes_only))
            s = result["summary"]
            line = (f"{s['verdict_changes']} verdict changes and {s['match_changes']} expectation changes in "
                    f"{s['common']} common cells")
            if s["median_rps_delta_pct"] is not None:
                line += f"; median throughput change per cell {s['median_rps_delta_pct']:+.1f}%"
            for side in ("a", "b"):
                if s[f"only_{side}"]:
                    line += f"; {s[f'only_{side}']} only in {side.upper()}"
            console.print(line)
            click.echo(str(out))
            return
        run_dir = runs[0] if runs else newest_run(RESULTS_DIR)
        click.echo(str(render_report(run_dir)))
    except ResultsError as exc:
        raise click.ClickException(str(exc)) from None


# -- ui ----------------------------------------------------------------------------------------------------------
def user_classes() -> dict[str, str]:
    """check kind -> user class name, read from the locustfile's USER_CLASSES without importing it.

    (Importing the locustfile imports locust, which monkey-patches this process with gevent.)
    """
    tree = ast.parse(LOCUSTFILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "USER_CLASSES"
                                                for t in node.targets) and isinstance(node.value, ast.Dict):
            return {k.value: v.id for k, v in zip(node.value.keys, node.value.values, strict=True)
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Name)}
    raise click.ClickException(f"no USER_CLASSES dict in {LOCUSTFILE}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def locust_argv(user_class: str, host: str, port: int, users: int, spawn_rate: float) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), user_class, "--host", host,
            "--web-host", "127.0.0.1", "--web-port", str(port), "--users", str(users),
            "--spawn-rate", str(spawn_rate)]


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
    from .cli import _quiet_signals  # cli imports this module at its end; import lazily
    from .matrix import new_run_dir
    from .scenarios import UnknownName, load_scenarios, pick
    from .stack import NativeStack, missing_binaries
    from .strategies import STRATEGIES

    scenarios = load_scenarios()
    try:
        pick([scenario], scenarios, "scenario")
        pick([strategy], STRATEGIES, "strategy")
    except UnknownName as exc:
        raise click.UsageError(str(exc)) from None
    missing = missing_binaries()
    if missing:
        raise click.ClickException(f"missing {', '.join(missing)}: run 'make setup'")
    check = STRATEGIES[strategy].check
    classes = user_classes()
    if check not in classes:
        raise click.ClickException(f"strategy {strategy}: no user class for check '{check}' in {LOCUSTFILE}")
    if not _port_free(port):
        raise click.ClickException(f"127.0.0.1:{port} is in use (another locust?); pick one with --port")
    run_dir = new_run_dir(RESULTS_DIR / "ui")
    stack = NativeStack(scenarios[scenario], run_dir, race_window=race_window, direct=direct)
    ui_url = f"http://127.0.0.1:{port}"
    code = 0
    try:
        stack.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        env.update({"LAB_STRATEGY": strategy, "LAB_INSTANCES": ",".join(stack.instance_urls), "PYTHONUNBUFFERED": "1"})
        locust = stack.children.start(Child("locust", locust_argv(classes[check], stack.url, port, users, spawn_rate),
                                            run_dir / "logs" / "locust.log", env=env, cwd=ROOT))
        deadline = time.monotonic() + UI_START_TIMEOUT_S
        while not _answers(f"{ui_url}/"):
            if not locust.alive():
                raise locust.failure("exited during start-up")
            if time.monotonic() > deadline:
                raise locust.failure(f"web UI not answering after {UI_START_TIMEOUT_S:.0f}s")
            time.sleep(0.1)
        console.print(f"[bold]{scenario}[/] is up at {stack.url}; locust ({classes[check]}, LAB_STRATEGY={strategy}) "
                      f"at [bold]{ui_url}[/]")
        console.print(f"live verdict: {ui_url}/?tab=verdict  (or {ui_url}/verdict)   logs: {run_dir / 'logs'}")
        console.print("Ctrl-C stops locust and every process of the stack.")
        while True:
            time.sleep(1)
            dead = [c.name for c in stack.children.children if not c.alive()]
            if dead:
                raise StackError(f"{', '.join(dead)} exited; see {run_dir / 'logs'}\n"
                                 + tail(run_dir / "logs" / f"{dead[0]}.log", 10))
    except KeyboardInterrupt:
        console.print("stopping ...")
    except StackError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        code = 1
    finally:
        _quiet_signals()
        stack.stop()
    sys.exit(code)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
