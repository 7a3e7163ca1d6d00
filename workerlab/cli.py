"""worker-lab's command line: list, expected, serve, run (and report, ui, faults, mutants, bench from their modules).

`entry()` is the one way in (`python -m workerlab`): every command gets the same signal policy
(workerlab/interrupt.py) and the same ending - whatever the lab started is stopped, and the exit
status is the command's, or 130/143 when SIGINT/SIGTERM ended it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from loadtests.arrivals import ARRIVALS
from loadtests.protocol import DEFAULT_MASTER_BIND

from . import interrupt
from .bench import bench
from .expected import expectation_for
from .faults import faults
from .hold import hold, holding
from .matrix import QUICK_REQUESTS, QUICK_USERS, Matrix, RunSettings, new_run_dir
from .mutants import mutants
from .paths import RESULTS_DIR
from .present.terminal import TerminalReport, styled, throughput_table, verdict_grid
from .progress import current, phase
from .report_cli import report
from .results import of_planned, summary_line
from .scenarios import UnknownName, load_scenarios, pick
from .stability import stability
from .stacks.compose import engine_problem
from .stacks.native import SIDECARS, NativeStack, missing_binaries, missing_message, sidecars_for
from .strategies import RACE_WINDOWS, STRATEGIES
from .ui_cli import ui
from .userapp.command import run_app
from .worker_cli import load_from, waiting_line, worker

console = Console()


def _select(scenario_names, strategy_names):
    scenarios = load_scenarios()
    try:
        chosen_scenarios = pick(list(scenario_names), scenarios, "scenario")
        chosen_strategies = pick(list(strategy_names), STRATEGIES, "strategy")
    except UnknownName as exc:
        raise click.UsageError(str(exc)) from None
    return ({n: scenarios[n] for n in chosen_scenarios}, {n: STRATEGIES[n] for n in chosen_strategies})


def _split(values) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """worker-lab: is my global / cache / session safe under threads, greenlets, processes and instances?"""


@main.command("list")
def list_cmd():
    """Show the scenarios (runtime models) and the state strategies."""
    table = Table(title="scenarios (compose/scenarios/*.env)")
    for col in ("scenario", "server", "processes", "in-process concurrency", "instances", "description"):
        table.add_column(col)
    for s in load_scenarios().values():
        procs = "fork per request" if s.forks_per_request else str(s.processes)
        table.add_row(s.name, s.server, procs, s.in_process_concurrency, str(s.instances), s.description)
    console.print(table)
    table = Table(title="strategies (services/app/labapp/strategies/)")
    for col in ("strategy", "check", "needs", "Q", "what it is"):
        table.add_column(col)
    for s in STRATEGIES.values():
        table.add_row(s.name, s.check, ",".join(s.needs), str(s.question or ""), s.summary)
    console.print(table)


@main.command()
@click.option("--scenario", "-s", multiple=True, help="Scenario name(s); default all.")
@click.option("--strategy", "-t", multiple=True, help="Strategy name(s); default all.")
@click.option("--race-window", type=click.Choice(RACE_WINDOWS), default="yield", show_default=True)
def expected(scenario, strategy, race_window):
    """Print the declared expected verdict of every cell, with its reason."""
    scenarios, strategies = _select(_split(scenario), _split(strategy))
    table = Table(title=f"expected verdicts (race window '{race_window}')")
    for col in ("strategy", "scenario", "expected", "reason"):
        table.add_column(col)
    for st in strategies:
        for sc in scenarios.values():
            e = expectation_for(st, sc, race_window)
            table.add_row(st, sc.name, styled(e.label), e.reason)
    console.print(table)


@main.command()
@click.argument("scenario")
@click.option("--direct", is_flag=True, help="Skip nginx; print the app instances' own URLs.")
@click.option("--race-window", type=click.Choice(RACE_WINDOWS), default="yield", show_default=True)
def serve(scenario, direct, race_window):
    """Bring SCENARIO's stack up on 127.0.0.1 and keep it up until Ctrl-C."""
    scenarios, _ = _select([scenario], [])
    missing = missing_binaries(SIDECARS)
    if missing:
        raise click.ClickException(missing_message(missing))
    run_dir = new_run_dir(RESULTS_DIR / "serve")
    phase("stack-start", scenario)
    with NativeStack(scenarios[scenario], run_dir, race_window=race_window, direct=direct,
                     sidecars=SIDECARS) as stack:
        console.print(f"[bold]{scenario}[/] is up: {stack.url}  (instances: "
                      + ", ".join(f"http://127.0.0.1:{p}" for p in stack.app_ports) + ")")
        console.print(f"try: curl '{stack.url}/s/naive-global/incr?key=demo'   logs: {run_dir / 'logs'}")
        console.print("Ctrl-C stops every process of the stack.")
        with holding(console):
            hold(stack)


@main.command()
@click.option("--scenario", "-s", multiple=True, help="Scenario name(s), repeatable or comma-separated; default all.")
@click.option("--strategy", "-t", multiple=True, help="Strategy name(s), repeatable or comma-separated; default all.")
@click.option("--quick", is_flag=True, help=f"{QUICK_REQUESTS} requests at {QUICK_USERS} users per cell.")
@click.option("--requests", "-n", type=click.IntRange(10, 1_000_000), default=None,
              help="Requests per cell [default 2000].")
@click.option("--users", "-u", type=click.IntRange(1, 1000), default=None, help="Concurrent users [default 50].")
@click.option("--race-window", type=click.Choice(RACE_WINDOWS), default="yield", show_default=True)
@click.option("--rate", type=click.FloatRange(1, 100_000), default=None,
              help="Fixed-rate load: requests a second per cell, each with a scheduled start; latency counted from "
                   "it (corrected for coordinated omission) [default: closed loop, as fast as answers come].")
@click.option("--arrivals", type=click.Choice(ARRIVALS), default="constant", show_default=True,
              help="With --rate: evenly spaced or Poisson arrivals.")
@click.option("--direct", is_flag=True, help="Send load straight to the first app instance, not through nginx.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR, show_default=True,
              help="Folder for results/<timestamp>/.")
@click.option("--engine", type=click.Choice(("native", "compose", "swarm")), default="native", show_default=True,
              help="native: processes on 127.0.0.1; compose: the compose/ stacks in containers (needs Docker); "
                   "swarm: the same stacks deployed on a single-node Docker Swarm.")
@click.option("--without", "without", multiple=True, type=click.Choice(SIDECARS),
              help="Do not start this sidecar (repeatable): its cells then show what an app sees when it is down.")
@click.option("--quiet", "mode", flag_value="quiet", help="Print only mismatches and the final grid.")
@click.option("--json", "mode", flag_value="json", help="Print one JSON object per cell; nothing else on stdout.")
@click.option("--app", type=click.Path(exists=True, path_type=Path), default=None,
              help="Your app's worker-lab.toml (or its folder): its endpoints are the rows (README: Your own app).")
@click.option("--target", default=None, help="With --app: judge the endpoints of a deployment the lab did not "
                                             "start, at this base URL (loopback only, unless...).")
@click.option("--i-own-this-target", is_flag=True, help="Allow a --target that is not on loopback (it gets load).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Send the load from N locust workers (`python -m workerlab worker`, on this machine or others); "
                   "the driver is their master and judges one history per cell.")
@click.option("--master-bind", default=None, metavar="HOST:PORT",
              help=f"With --workers: where the master listens for them [default {DEFAULT_MASTER_BIND}].")
@click.option("--local-workers", is_flag=True, help="With --workers: the lab starts the N workers on this machine.")
def run(scenario, strategy, quick, requests, users, race_window, rate, arrivals, direct, output, engine, without,
        mode, app, target, i_own_this_target, workers, master_bind, local_workers):
    """Run the (scenario x strategy) matrix and judge every cell. Exit 1 if any cell differs from its expectation."""
    mode = mode or "rich"
    distributed = load_from(workers, master_bind, local_workers)
    if (target or i_own_this_target) and app is None:
        raise click.UsageError("--target needs --app (the declaration says what to send)")
    if app is not None:
        if engine == "swarm":
            raise click.UsageError("--app runs natively or with --engine compose (swarm: the lab's own app)")
        if engine != "native" and target:
            raise click.UsageError("--target judges a deployment the lab did not start: drop --engine")
        if strategy or without:
            raise click.UsageError("--strategy and --without are for the lab's own app; --app's rows are its "
                                   "declared endpoints")
        scenarios, _ = _select(_split(scenario), [])
        missing = missing_binaries() if engine == "native" else []
        if missing and not target:
            raise click.ClickException(f"missing {', '.join(missing)}: run 'make setup'")
        settings = RunSettings(requests=requests or (QUICK_REQUESTS if quick else 2000),
                               users=users or (QUICK_USERS if quick else 50), direct=direct, quick=quick,
                               rate=rate, arrivals=arrivals, engine=engine, **distributed)
        _say_waiting(settings, mode)
        run_app(app, scenarios, settings, output, mode, target, i_own_this_target, console)
        return
    scenarios, strategies = _select(_split(scenario), _split(strategy))
    if engine != "native":
        if without:
            raise click.UsageError(f"--without is for the native engine; {engine} stacks always have their sidecars")
        problem = engine_problem()
        if problem:
            raise click.ClickException(f"--engine {engine} needs a Docker engine:\n{problem}")
    sidecars = tuple(s for s in SIDECARS if s not in without)
    missing = missing_binaries(sidecars_for(strategies.values(), sidecars)) if engine == "native" else []
    if missing:
        raise click.ClickException(missing_message(missing))
    settings = RunSettings(
        requests=requests or (QUICK_REQUESTS if quick else 2000),
        users=users or (QUICK_USERS if quick else 50),
        race_window=race_window, direct=direct, quick=quick, sidecars=sidecars, engine=engine, rate=rate,
        arrivals=arrivals, **distributed,
    )
    _say_waiting(settings, mode)
    with interrupt.shielded():  # the run folder and its first results.json come together
        run_dir = new_run_dir(output)
        matrix = Matrix(scenarios, strategies, settings, run_dir, None)
    report_ = TerminalReport(matrix.total_cells, mode=mode)
    matrix.report = report_
    started = time.monotonic()
    try:
        with report_:
            matrix.run()
    except KeyboardInterrupt:  # the partial results are still shown and rendered
        pass
    data = matrix.results.data
    report_path = None
    if data["cells"]:
        phase("report")
        with interrupt.shielded():  # it imports matplotlib: never interrupt a C extension's import
            from .present.html import render_report

            report_path = render_report(run_dir)
    if mode != "json":
        console.print(verdict_grid(data))
        console.print(throughput_table(data))
        s = data["summary"]
        partial = of_planned(data)
        console.print((f"[bold yellow]{data['status']}: {partial}.[/] " if partial else "")
                      + f"{summary_line(s)} ({s['planned']} planned, {time.monotonic() - started:.0f}s). "
                      f"Results: {run_dir / 'results.json'}  matrix: {run_dir / 'results.md'}")
        if report_path:
            console.print(f"HTML report: {report_path}")
        if data["settings"]["race_window"] != "yield":
            console.print("[dim]cells marked 'any' rest on the 'yield' race window and are not judged; "
                          "words marked '?' may show or not[/]")
    sys.exit(0 if data["summary"]["mismatched"] == 0 else 1)


def _say_waiting(settings: RunSettings, mode: str) -> None:
    line = waiting_line(settings)
    if line and mode != "json":
        console.print(line, highlight=False, soft_wrap=True)


main.add_command(bench)
main.add_command(faults)
main.add_command(mutants)
main.add_command(report)
main.add_command(ui)
main.add_command(stability)
main.add_command(worker)


def _exit_code(code) -> int:
    """SystemExit's code as an exit status (a message is printed, as Python does, and is status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _invoke(args: list[str] | None) -> int:
    try:
        rv = main.main(args=args, prog_name="python -m workerlab", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except SystemExit as exc:
        return _exit_code(exc.code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        return 130  # exit_status() gives the signal's own status


def entry(args: list[str] | None = None) -> None:
    """Run one command; then stop whatever is left and finish every results file; exit 128 + the signal
    when SIGINT or SIGTERM ended it. `interrupt.install()` has run before this module was imported."""
    code = 1
    try:
        try:
            code = _invoke(args)
        finally:
            interrupt.stop_raising()
            interrupt.run_exit_hooks()
    except KeyboardInterrupt:  # the one Interrupted landed between the command's end and the line above
        interrupt.run_exit_hooks()
    where = current()
    if interrupt.received() is None:
        phase("done")  # nothing is left to stop: a signal from here on only changes the exit status
    interrupt.announce(where)
    interrupt.exit_now(interrupt.exit_status(code))
