"""The command: ``python -m workerlab faults`` (``make faults``, ``make faults-expected``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console

from ..paths import RESULTS_DIR
from ..scenarios import UnknownName, load_scenarios, pick
from ..stacks.native import missing_binaries
from .coverage import FULL_TABLE_SCENARIO, REPRESENTATIVE, ROUTES, default_blocks, default_scenarios
from .present import expected_table, grid, losses_table, summary_line
from .run import run_faults
from .shape import FULL, QUICK
from .table import FAULT_STRATEGIES, FAULTS

console = Console(width=None if sys.stdout.isatty() else 200)  # piped: do not fold the grid into 80 columns


def _split(values) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


@click.command()
@click.option("--scenario", "-s", multiple=True, help="Scenario name(s); default every gunicorn scenario.")
@click.option("--fault", "-f", "fault_names", multiple=True,
              help=f"Fault name(s), comma-separated; default all under {FULL_TABLE_SCENARIO}, the ones that restart "
                   "gunicorn's workers under the other scenarios.")
@click.option("--strategy", "-t", multiple=True,
              help=f"Strategy name(s); default the {len(FAULT_STRATEGIES)} the fault table covers under "
                   f"{FULL_TABLE_SCENARIO}, {', '.join(REPRESENTATIVE)} under the other scenarios.")
@click.option("--route", "-r", multiple=True,
              help=f"How the load reaches gunicorn: {', '.join(ROUTES)}; default nginx, and also direct for gthread.")
@click.option("--quick", is_flag=True, help=f"{QUICK.users} users x {QUICK.per_user_rps}/s for {QUICK.seconds}s "
                                            f"per cell (default {FULL.users} x {FULL.per_user_rps}/s "
                                            f"for {FULL.seconds}s).")
@click.option("--expected", "expected_only", is_flag=True, help="Print the expected table and exit; nothing runs.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR, show_default=True,
              help="Folder for results/<timestamp>/faults.json.")
def faults(scenario, fault_names, strategy, route, quick, expected_only, output):
    """Inject faults mid-run (worker kill, recycle, reload, redis/memcached restart, eviction, nginx reload)
    and check what survives, and count the requests each drops. Exit 1 if any judged cell differs from its
    expectation."""
    all_scenarios = load_scenarios()
    try:
        scenario_names = pick(_split(scenario) or default_scenarios(all_scenarios), all_scenarios, "scenario")
        names = {"faults": _split(fault_names), "strategies": _split(strategy), "routes": _split(route)}
        pick(names["faults"], FAULTS, "fault")
        pick(names["strategies"], dict.fromkeys(FAULT_STRATEGIES), "strategy")
        pick(names["routes"], ROUTES, "route")
    except UnknownName as exc:
        raise click.UsageError(str(exc)) from None
    blocks = default_blocks({n: all_scenarios[n] for n in scenario_names}, **names)
    if not blocks:
        raise click.UsageError("nothing to run: the direct route needs a scenario with one app instance")
    if expected_only:
        for block in blocks:
            console.print(expected_table(block))
        return
    missing = missing_binaries()
    if missing:
        raise click.ClickException(f"missing {', '.join(missing)}: run 'make setup'")
    shape = QUICK if quick else FULL
    started = time.monotonic()
    run, interrupted = run_faults(blocks, shape, output, say=lambda text: console.print(text, highlight=False))
    data = run.data
    for block in data["settings"]["blocks"]:
        console.print(grid(data, block))
    console.print(losses_table(data))
    s = data["summary"]
    console.print(f"{summary_line(s)} ({time.monotonic() - started:.0f}s). Results: {run.path}  "
                  f"table: {run.run_dir / 'faults.md'}")
    # A control that fails says the lab is broken, not the strategy: it fails the run too.
    sys.exit(0 if s["mismatched"] == 0 and s["controls_differ"] == 0 else 1)  # or 130/143 (cli.entry)
