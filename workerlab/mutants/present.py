"""Presenting mutants: the table of what each breaks and which rule must catch it, and a run's outcome."""

from __future__ import annotations

from rich.table import Table

from ..expected import expectation_for
from ..faults import FAULTS, expect_fault
from ..scenarios import load_scenarios
from .table import SETTINGS, FaultMutant, Mutant


def declared_table(mutants: list[Mutant | FaultMutant]) -> Table:
    """Each mutant, the cell it must flip (with that cell's expected verdict) and the rule that must say no."""
    scenarios = load_scenarios()
    table = Table(title="mutants (labapp/mutants.py, workerlab/mutants/table.py)")
    for col in ("mutant", "what it breaks", "cell", "expected there", "caught by"):
        table.add_column(col, overflow="fold")
    for m in mutants:
        scenario = scenarios[m.scenario]
        expected = (expect_fault(m.strategy, FAULTS[m.fault], scenario) if isinstance(m, FaultMutant)
                    else expectation_for(m.strategy, scenario, SETTINGS.race_window))
        table.add_row(m.name, m.breaks, m.cell, expected.label, m.rule)
    return table


def outcome_table(data: dict) -> Table:
    """mutants.json as a table: each mutant's cell, its control, what the mutated cell gave, caught or not."""
    table = Table(title=f"mutants - run {data['run_id']} ({data['status']})")
    for col in ("mutant", "cell", "expected", "clean control", "mutated", "caught", "why"):
        table.add_column(col, overflow="fold")
    for r in data["mutants"]:
        control = r["control"]
        clean = "-" if control is None else control["observed"]["label"] + ("" if control["match"] else " (!!)")
        caught = "[green]yes[/]" if r["caught"] else "[bold red]NO[/]"
        table.add_row(r["mutant"], r["cell"], r["expected"]["label"], clean, mutated_label(r), caught, r["why"])
    return table


def mutated_label(record: dict) -> str:
    """What the mutated cell gave: its verdict, or "error" when the cell is one (its history's verdict beside)."""
    label = record["observed"]["label"]
    return f"error ({label})" if record["error"] else label


def summary_line(summary: dict) -> str:
    line = f"{summary.get('caught', 0)} of {summary.get('mutants', 0)} mutants caught"
    if summary.get("planned") and summary["planned"] != summary.get("mutants"):
        line += f" ({summary['planned']} planned)"
    if summary.get("controls_failed"):
        line += f", {summary['controls_failed']} clean controls did not match"
    return line
