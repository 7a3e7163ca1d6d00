"""Presenting a fault run: the faults.md tables, the terminal grid, one line per cell, the expected table, and
the requests each restart dropped or failed, by worker class."""

from __future__ import annotations

from rich.table import Table

from .coverage import Block
from .expected import expect_fault


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
    if c.get("over_counted"):
        parts.append(f"{c['over_counted']} counted twice")
    if c.get("failed_during_fault"):
        parts.append(f"{c['failed_during_fault']} failed ({c.get('dropped_during_fault')} dropped, "
                     f"{c.get('errored_during_fault')} errored), recovered in {c.get('recover_s')}s")
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


def _block_cells(data: dict, block: dict) -> dict:
    """The cells of one block (a scenario by a route), by (strategy, fault)."""
    return {(c["strategy"], c["fault"]): c for c in data["cells"]
            if c["scenario"] == block["scenario"] and c["route"] == block["route"]}


def markdown(data: dict) -> str:
    lines = [f"# worker-lab faults run {data['run_id']} ({data['status']})", ""]
    s = data["settings"]
    lines.append(f"{s['users']} users at {s['per_user_rps']} requests/s each for {s['seconds']}s per cell; "
                 f"faults at a moment are injected {s['at_s']}s after the load starts.")
    for block in s["blocks"]:
        label, faults = block["label"], block["faults"]
        cells = _block_cells(data, block)
        if not cells:
            continue
        lines += ["", f"## {label}: observed verdict (`!!` differs from expected; (in parentheses): a control, "
                      "the fault hits a store the strategy does not use)", "",
                  "| strategy | " + " | ".join(faults) + " |", "|---|" + "---|" * len(faults)]
        for strategy in block["strategies"]:
            row = [cell_text(cells[(strategy, f)]) if (strategy, f) in cells else "" for f in faults]
            lines.append(f"| {strategy} | " + " | ".join(row) + " |")
        lines += ["", f"### {label}: measured figures", "",
                  "| fault | strategy | expected | observed | lost / acked | failed during fault (dropped + errored) "
                  "| recover (s) | fault detail | reason |", "|---|---|---|---|---|---|---|---|---|"]
        order = block["strategies"]
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
                               if k in ("restart_s", "respawn_s", "replacement_served_s", "all_workers_replaced_s",
                                        "evictions", "write_lock_held_at_kill", "write_lock_released_s",
                                        "worker_pids_seen"))
            failed = (f"{n['failed_during_fault']} ({n.get('dropped_during_fault')} + {n.get('errored_during_fault')})"
                      if n else "")
            lines.append(f"| {fault} | {strategy} | {c['expected']['label']} | {cell_text(c)} | {lost} | "
                         f"{failed} | {n.get('recover_s', '')} | {detail} | {c['expected']['reason']} |")
    rows = restart_losses(data)
    if rows:
        lines += ["", "## Requests each restart dropped (no answer) or errored (an HTTP error), by worker class", "",
                  "| " + " | ".join(LOSS_COLUMNS) + " |", "|---|" + "---|" * (len(LOSS_COLUMNS) - 1)]
        lines += ["| " + " | ".join(str(row[k]) for k in LOSS_COLUMNS) + " |" for row in rows]
    sm = data["summary"]
    lines += ["", summary_line(sm) + "."]
    return "\n".join(lines) + "\n"


def summary_line(sm: dict) -> str:
    return (f"{sm.get('matched', 0)} of {sm.get('judged', 0)} judged cells as expected, {sm.get('mismatched', 0)} "
            f"differ, {sm.get('errors', 0)} errors; controls: {sm.get('controls', 0) - sm.get('controls_differ', 0)}"
            f" of {sm.get('controls', 0)} as expected; {sm.get('skipped', 0)} n/a")


def expected_table(block: Block) -> Table:
    table = Table(title=f"expected fault verdicts under {block.label}")
    for col in ("strategy", "fault", "expected", "reason"):
        table.add_column(col)
    for strategy in block.strategies:
        for fault in block.faults:
            e = expect_fault(strategy, fault, block.scenario, block.route)
            table.add_row(strategy, fault.name, e.label, e.reason)
    return table


def grid(data: dict, block: dict) -> Table:
    faults = block["faults"]
    table = Table(title=f"faults under {block['label']}: observed (!! = differs from expected)")
    table.add_column("strategy")
    for f in faults:
        table.add_column(f, overflow="fold")
    cells = _block_cells(data, block)
    for strategy in block["strategies"]:
        row = []
        for f in faults:
            c = cells.get((strategy, f))
            text = cell_text(c) if c else ""
            style = ("red" if c and (c["match"] is False or c["error"]) else
                     "dim" if not c or c["match"] is None or c.get("control") else "green")
            row.append(f"[{style}]{text}[/]")
        table.add_row(strategy, *row)
    return table


LOSS_COLUMNS = ("worker class", "route", "fault", "cells", "dropped per cell", "errored per cell", "requests")


def _spread(values: list[int]) -> str:
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"


def restart_losses(data: dict) -> list[dict]:
    """Per (worker class, route, fault that restarts gunicorn's processes): how many requests each cell's
    restart dropped and errored (min-max over its cells), and how many requests those cells sent."""
    blocks = {(b["scenario"], b["route"]): b for b in data["settings"]["blocks"]}
    groups: dict[tuple, list[dict]] = {}
    for c in data["cells"]:
        if c["skipped"] or c["error"] or not c["counts"] or not data["faults"][c["fault"]]["restarts_gunicorn"]:
            continue
        worker_class = blocks[(c["scenario"], c["route"])]["worker_class"]
        groups.setdefault((worker_class, c["route"], c["fault"]), []).append(c["counts"])
    order = list(data["faults"])
    return [{"worker class": wc, "route": route, "fault": fault, "cells": len(counts),
             "dropped per cell": _spread([n["dropped_during_fault"] for n in counts]),
             "errored per cell": _spread([n["errored_during_fault"] for n in counts]),
             "requests": sum(n["attempted"] for n in counts)}
            for (wc, route, fault), counts in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                      order.index(kv[0][2])))]


def losses_table(data: dict) -> Table:
    table = Table(title="requests each restart dropped (no answer) or errored (an HTTP error), by worker class")
    for col in LOSS_COLUMNS:
        table.add_column(col)
    for row in restart_losses(data):
        table.add_row(*(str(row[k]) for k in LOSS_COLUMNS))
    return table
