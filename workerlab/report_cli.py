"""`python -m workerlab report`: render a run's report.html, or compare two runs."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .paths import RESULTS_DIR
from .present.html import ResultsError, newest_run, render_report, write_compare

console = Console()


def _delta(value, beyond_noise: bool | None = True) -> str:
    """A change, coloured only when it lies beyond both runs' own spread; else dim, marked ≈ (within noise);
    uncoloured where no spread is known (None)."""
    if value is None:
        return ""
    if beyond_noise is False:
        return f"[dim]≈{value:+.0f}%[/]"
    if beyond_noise is None:
        return f"{value:+.0f}%"
    colour = "green" if value >= 0 else "red"
    return f"[{colour}]{value:+.1f}%[/]"


def _num(value, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def compare_table(result: dict, changes_only: bool = False) -> Table:
    from .present.terminal import styled

    a, b = result["a"]["run_id"], result["b"]["run_id"]
    table = Table(title=f"{a} (A) -> {b} (B): verdict and throughput per cell (≈: within noise - inside the "
                        "other run's own spread)")
    for col in ("strategy", "scenario", "verdict A -> B", "as expected", "rps A→B", "Δ rps", "Δ p99", "Δ CPU/req"):
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
        table.add_row(r["strategy"], r["scenario"], verdict, expected, f"{_num(r['rps_a'])}→{_num(r['rps_b'])}",
                      _delta(r["rps_delta_pct"], r["rps_beyond_noise"]), _delta(r["p99_delta_pct"], None),
                      _delta(r["cpu_delta_pct"], r["cpu_beyond_noise"]))
    s = result["summary"]
    table.caption = (f"throughput: {s['rps_changes_beyond_noise']} cells changed beyond noise, "
                     f"{s['rps_within_noise']} within it")
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
