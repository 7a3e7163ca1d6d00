"""The command: ``python -m workerlab mutants`` (``make mutants``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console

from .. import interrupt
from ..matrix import new_run_dir
from ..paths import RESULTS_DIR
from ..present.terminal import TerminalReport
from ..progress import phase
from ..scenarios import UnknownName, pick
from ..stacks.native import missing_binaries
from .present import declared_table, outcome_table, summary_line
from .run import MutantRun
from .table import ALL

console = Console(width=None if sys.stdout.isatty() else 200)


def _split(values) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


@click.command()
@click.option("--mutant", "-m", "names", multiple=True, help="Mutant name(s), comma-separated; default all.")
@click.option("--list", "list_only", is_flag=True, help="Print the mutants and the rule that must catch each; "
                                                        "nothing runs.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR, show_default=True,
              help="Folder for results/<timestamp>/mutants.json.")
def mutants(names, list_only, output):
    """Run the checkers against deliberately broken variants of the app, each in a cell whose verdict it must
    flip, beside the same cell run clean. Exit 1 unless every mutant is caught."""
    try:
        chosen = [ALL[n] for n in pick(_split(names), ALL, "mutant")]
    except UnknownName as exc:
        raise click.UsageError(str(exc)) from None
    if list_only:
        console.print(declared_table(chosen))
        return
    missing = missing_binaries()
    if missing:
        raise click.ClickException(f"missing {', '.join(missing)}: run 'make setup'")
    started = time.monotonic()
    with interrupt.shielded():  # the run folder and its first results files come together
        run_dir = new_run_dir(output)
        run = MutantRun(chosen, run_dir, None, say=lambda text: console.print(text, highlight=False))
    report_ = run.report = TerminalReport(run.total_cells + len(chosen), console=console)
    try:
        with report_:
            run.run()
    except KeyboardInterrupt:  # what ran is still shown and rendered
        pass
    data = run.file.data
    if run.results.data["cells"] or data["mutants"]:
        phase("report")
        with interrupt.shielded():  # it imports matplotlib: never interrupt a C extension's import
            from ..present.html import render_report

            report_path = render_report(run_dir)
        console.print(f"HTML report: {report_path}")
    console.print(outcome_table(data))
    console.print(f"{summary_line(data['summary'])} ({time.monotonic() - started:.0f}s). Results: {run.file.path}")
    s = data["summary"]
    sys.exit(0 if data["status"] == "complete" and s["caught"] == s["planned"] else 1)
