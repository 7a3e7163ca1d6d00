"""Presenting a fault run: the faults.md tables, the terminal grid, one line per cell, the expected table."""

from __future__ import annotations

from rich.table import Table

from ..scenarios import Scenario
from .expected import expect_fault
from .table import Fault


def figures(cell: dict) -> str:
    """The measured figures of one cell, short: lost/acknowledged, failed, recovery."""
    c = cell.get("counts") or {}
    if not c:
        return ""
    parts = []
    if cell["scope"] == "session":
        parts.append(f"of {c.get('users', 0)} users {c.get('users_lost_session', 0)} lost their session, "
                     f"{c.get('users_stepped_back', 0)} stepped back")
    if c.get("lost") is not None:
        parts.append(f"lost {c['lost']}/{c.get('acknowledged', 0)} acked")
    if c.get("failed_during_fault"):
        parts.append(f"{c['failed_during_fault']} failed, recovered in {c.get('recover_s')}s")
    else:
        parts.append("0 failed")
    return "; ".join(parts)


def cell_text(cell: dict) -> str:
    """One cell in the tables; a control (the fault hits a store the strategy does not use) in parentheses."""
    if cell["skipped"]:
        return "n/a"
    if cell["error"]:
        return f"!! error: {cell['error'][:60]}"
    observed = cell["observed"]["label"] if cell["observed"] else "?"
    if cell["match"] is False:
        text = f"!! {observed} ≠ {cell['expected']['label']}"
    elif cell["match"] is None:
        text = f"{observed} (not judged)"
    else:
        text = observed
    return f"({text})" if cell.get("control") else text


def describe_cell(cell: dict) -> str:
    mark = {True: "[green]ok[/]", False: "[bold red]MISMATCH[/]", None: "[dim]--[/]"}[cell["match"]]
    if cell.get("control") and cell["match"]:
        mark = "[dim]ctl[/]"
    text = cell_text(cell)
    if cell["skipped"]:
        return f"  [dim]n/a {cell['strategy']:<22} {cell['expected']['reason']}[/]"
    extra = f"  [red]{cell['error']}[/]" if cell["error"] else ""
    return (f"  {mark} {cell['strategy']:<22} expected {cell['expected']['label']:<10} observed {text:<12} "
            f"{figures(cell)}{extra}")


def markdown(data: dict) -> str:
    faults = data["settings"]["faults"]
    lines = [f"# worker-lab faults run {data['run_id']} ({data['status']})", ""]
    s = data["settings"]
    lines.append(f"{s['users']} users at {s['per_user_rps']} requests/s each for {s['seconds']}s per cell; "
                 f"faults at a moment are injected {s['at_s']}s after the load starts.")
    for scenario in data["settings"]["scenarios"]:
        cells = {(c["strategy"], c["fault"]): c for c in data["cells"] if c["scenario"] == scenario}
        if not cells:
            continue
        lines += ["", f"## {scenario}: observed verdict (`!!` differs from expected; (in parentheses): a control, "
                      "the fault hits a store the strategy does not use)", "",
                  "| strategy | " + " | ".join(faults) + " |", "|---|" + "---|" * len(faults)]
        for strategy in data["settings"]["strategies"]:
            row = [cell_text(cells[(strategy, f)]) if (strategy, f) in cells else "" for f in faults]
            lines.append(f"| {strategy} | " + " | ".join(row) + " |")
        lines += ["", f"### {scenario}: measured figures", "",
                  "| fault | strategy | expected | observed | lost / acked | failed during fault | recover (s) "
                  "| fault detail | reason |", "|---|---|---|---|---|---|---|---|---|"]
        order = data["settings"]["strategies"]
        for (strategy, fault), c in sorted(cells.items(),
                                           key=lambda kv: (faults.index(kv[0][1]), order.index(kv[0][0]))):
            if c["skipped"] or (c.get("control") and c["match"]):  # a control shows here only when it failed
                continue
            n = c["counts"]
            lost = f"{n.get('lost')} / {n.get('acknowledged')}" if n else ""
            if c["scope"] == "session" and n:
                lost += (f" (of {n.get('users')} users: {n.get('users_lost_session')} lost their session, "
                         f"{n.get('users_stepped_back')} stepped back)")
            detail = ", ".join(f"{k}={v}" for k, v in c["injected"].items()
                               if k in ("restart_s", "respawn_s", "all_workers_replaced_s", "evictions",
                                        "write_lock_held_at_kill", "write_lock_released_s", "worker_pids_seen"))
            lines.append(f"| {fault} | {strategy} | {c['expected']['label']} | {cell_text(c)} | {lost} | "
                         f"{n.get('failed_during_fault', '')} | {n.get('recover_s', '')} | {detail} | "
                         f"{c['expected']['reason']} |")
    sm = data["summary"]
    lines += ["", summary_line(sm) + "."]
    return "\n".join(lines) + "\n"


def summary_line(sm: dict) -> str:
    return (f"{sm.get('matched', 0)} of {sm.get('judged', 0)} judged cells as expected, {sm.get('mismatched', 0)} "
            f"differ, {sm.get('errors', 0)} errors; controls: {sm.get('controls', 0) - sm.get('controls_differ', 0)}"
            f" of {sm.get('controls', 0)} as expected; {sm.get('skipped', 0)} n/a")


def expected_table(scenario: Scenario, faults: list[Fault], strategies: list[str]) -> Table:
    table = Table(title=f"expected fault verdicts under {scenario.name}")
    for col in ("strategy", "fault", "expected", "reason"):
        table.add_column(col)
    for strategy in strategies:
        for fault in faults:
            e = expect_fault(strategy, fault, scenario)
            table.add_row(strategy, fault.name, e.label, e.reason)
    return table


def grid(data: dict, scenario: str) -> Table:
    faults = data["settings"]["faults"]
    table = Table(title=f"faults under {scenario}: observed (!! = differs from expected)")
    table.add_column("strategy")
    for f in faults:
        table.add_column(f, overflow="fold")
    cells = {(c["strategy"], c["fault"]): c for c in data["cells"] if c["scenario"] == scenario}
    for strategy in data["settings"]["strategies"]:
        row = []
        for f in faults:
            c = cells.get((strategy, f))
            text = cell_text(c) if c else ""
            style = ("red" if c and (c["match"] is False or c["error"]) else
                     "dim" if not c or c["match"] is None or c.get("control") else "green")
            row.append(f"[{style}]{text}[/]")
        table.add_row(strategy, *row)
    return table
