"""`python -m workerlab stability`: run the matrix N times in a row and say which cells gave a different
verdict from one run to the next (issue #10: a verdict is worth something only if it comes out the same).

Each run is a child `python -m workerlab run --quiet` with the same arguments, in a folder of its own
under results/<stamp>-stability/; then the runs are compared cell by cell. stability.json (schema
``worker-lab/stability/v1``)::

    {"schema", "runs": [{"run_id", "status", "seconds", "exit"}], "args": [...],
     "cells": [{"scenario", "strategy", "expected", "observed": [label per run], "matched": [bool|null per run],
                "stable": bool}],
     "summary": {"runs", "cells", "stable", "flipped", "mismatched_once"}}

A cell is stable when every run observed the same verdict label; `mismatched_once` counts cells that differed
from their expectation in at least one run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from . import interrupt, procs
from .matrix import new_run_dir
from .paths import RESULTS_DIR, ROOT
from .progress import phase
from .results import load
from .runfile import STABILITY_SCHEMA, write_json

SCHEMA = STABILITY_SCHEMA
RUN_TIMEOUT_S = 6 * 3600  # a default matrix takes well under an hour; past this something hangs
console = Console()


def compare_runs(runs: list[dict]) -> dict:
    """Cell by cell across results.json documents (in run order): the labels each observed, and the flips."""
    keys: dict[tuple[str, str], dict] = {}
    for i, data in enumerate(runs):
        for cell in data["cells"]:
            row = keys.setdefault((cell["scenario"], cell["strategy"]), {
                "scenario": cell["scenario"], "strategy": cell["strategy"], "expected": cell["expected"]["label"],
                "observed": [None] * len(runs), "matched": [None] * len(runs)})
            row["observed"][i] = (cell.get("observed") or {}).get("label") or ("error" if cell.get("error") else None)
            row["matched"][i] = cell.get("match")
    cells = list(keys.values())
    for row in cells:
        row["stable"] = len(set(row["observed"])) == 1
    return {"cells": cells, "summary": {
        "runs": len(runs), "cells": len(cells),
        "stable": sum(1 for c in cells if c["stable"]),
        "flipped": sum(1 for c in cells if not c["stable"]),
        "mismatched_once": sum(1 for c in cells if False in c["matched"])}}


def flips_table(result: dict) -> Table:
    table = Table(title="cells whose verdict changed between runs")
    for col in ("scenario", "strategy", "expected", "observed per run"):
        table.add_column(col)
    for c in result["cells"]:
        if not c["stable"] or False in c["matched"]:
            table.add_row(c["scenario"], c["strategy"], c["expected"], " / ".join(str(o) for o in c["observed"]))
    return table


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--runs", "-r", type=click.IntRange(2, 50), default=5, show_default=True, help="Matrix runs in a row.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR, show_default=True,
              help="Folder for results/<timestamp>-stability/.")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def stability(runs, output, run_args):
    """Run the matrix RUNS times with RUN_ARGS (those of `run`, e.g. --quick -s sync-x4) and show the flips.

    Exit 1 if any cell's verdict changed between runs or differed from its expectation in any run."""
    if any(a in ("--output", "--json", "--engine=compose") or a.startswith("--output=") for a in run_args):
        raise click.UsageError("give --output to stability itself; each run gets its own folder")
    with interrupt.shielded():
        folder = new_run_dir(output)
        folder = folder.rename(folder.with_name(folder.name + "-stability"))
    record = {"schema": SCHEMA, "args": list(run_args), "runs": [], "cells": [], "summary": {}}
    documents = []
    for i in range(runs):
        phase("stability-run", str(i + 1))
        console.print(f"[bold]run {i + 1} of {runs}[/]: python -m workerlab run --quiet {' '.join(run_args)}")
        started = time.monotonic()
        # The child prints its own grid; on Ctrl-C procs.run sends it SIGTERM and waits while it stops its stack
        # and finishes its results.json.
        proc = procs.run([sys.executable, "-m", "workerlab", "run", "--quiet", "--output", str(folder), *run_args],
                         cwd=ROOT, grace=60, timeout=RUN_TIMEOUT_S, stdout=None, stderr=None)
        made = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in {r["run_id"] for r in record["runs"]})
        if not made or not (made[-1] / "results.json").exists():
            raise click.ClickException(f"run {i + 1} wrote no results.json (exit {proc.returncode})")
        data = load(made[-1] / "results.json")
        documents.append(data)
        record["runs"].append({"run_id": made[-1].name, "status": data["status"], "exit": proc.returncode,
                               "seconds": round(time.monotonic() - started, 1)})
        record.update(compare_runs(documents))
        write_json(folder / "stability.json", record)
        if data["status"] != "complete":
            raise click.ClickException(f"run {i + 1} ended {data['status']}: stability needs complete runs")
    s = record["summary"]
    if s["flipped"] or s["mismatched_once"]:
        console.print(flips_table(record))
    console.print(f"{s['stable']} of {s['cells']} cells gave the same verdict in all {s['runs']} runs, "
                  f"{s['flipped']} flipped, {s['mismatched_once']} differed from their expectation at least once "
                  f"({sum(r['seconds'] for r in record['runs']):.0f}s). {folder / 'stability.json'}")
    sys.exit(0 if s["flipped"] == 0 and s["mismatched_once"] == 0 else 1)
