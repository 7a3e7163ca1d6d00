"""The matrix's wall time: estimated from results.json files and this bench's figures, or measured end to end."""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

from loadtests.history import read_history
from loadtests.protocol import DRAIN_AFTER_TIMEOUT_S

from .. import procs
from ..paths import ROOT
from ..results import SCHEMA as RESULTS_SCHEMA


def results_files(*results_dirs: Path) -> list[tuple[Path, dict]]:
    """Every readable worker-lab results.json with load times, oldest first."""
    found = []
    for path in {p for d in results_dirs for p in d.glob("*/results.json")}:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("schema") == RESULTS_SCHEMA and any(
                (c.get("throughput") or {}).get("load_seconds") for c in data.get("cells", [])):
            found.append((path.stat().st_mtime, path, data))
    return [(path, data) for _, path, data in sorted(found, key=lambda f: f[:2])]


def _drain_after_timeout() -> float:
    """The driver's pause after a cell that hit its time limit."""
    return DRAIN_AFTER_TIMEOUT_S


def _checking_seconds(results_path: Path, data: dict) -> list[float]:
    """Time read_history + check on the run's real histories, per cell (what the matrix does per cell)."""
    from loadtests.checkers import check

    per_cell = []
    for c in data.get("cells", [])[:60]:
        if not c.get("history"):
            continue
        path = results_path.parent / c["history"]
        if not path.exists():
            continue
        t0 = time.perf_counter()
        check(c["check"], read_history(path))
        per_cell.append(time.perf_counter() - t0)
    return per_cell


def estimate_matrix(results_dirs: list[Path], scenario_records: dict, all_scenarios: dict, strategies: dict) -> dict:
    files = results_files(*results_dirs)
    if not files:
        return {"basis": "no results/*/results.json with load times: run `workerlab run` once, or --matrix-times"}
    # Per cell, the newest load time of any run, scaled to the default 2000 requests.
    load: dict[tuple[str, str], float] = {}
    timeouts: dict[tuple[str, str], bool] = {}
    observed = []
    for path, data in files:
        scale = 2000 / (data.get("settings", {}).get("requests") or 2000)
        for c in data["cells"]:
            t = c.get("throughput") or {}
            if t.get("load_seconds"):
                load[(c["scenario"], c["strategy"])] = t["load_seconds"] * scale
                timeouts[(c["scenario"], c["strategy"])] = any("time limit" in n for n in c.get("notes", []))
        try:
            wall = (datetime.fromisoformat(data["finished"]) - datetime.fromisoformat(data["started"])).total_seconds()
        except (KeyError, TypeError, ValueError):
            wall = None
        if wall:
            observed.append({"run": path.parent.name, "status": data.get("status"), "cells": len(data["cells"]),
                             "wall_seconds": wall, "requests": data.get("settings", {}).get("requests"),
                             "load_seconds": round(sum((c.get("throughput") or {}).get("load_seconds") or 0
                                                       for c in data["cells"]), 1)})
    path, data = files[-1]
    every = sorted(load.values())
    overall = statistics.median(every)
    drain = _drain_after_timeout()
    startups = [r["startup_seconds"] + r.get("stop_seconds", 0) for r in scenario_records.values()
                if r.get("startup_seconds") is not None]
    driver_starts = [r["driver_startup_seconds"] for r in scenario_records.values()
                     if r.get("driver_startup_seconds") is not None]
    after_load = [m["after_load_seconds"] for r in scenario_records.values() for cell in r.get("cells", {}).values()
                  for m in cell["measurements"] if m.get("after_load_seconds") and m.get("record")]
    checking = _checking_seconds(path, data)
    per_check = statistics.median(checking) * 2000 / (data.get("settings", {}).get("requests") or 2000) \
        if checking else 0.0
    per_after = statistics.median(after_load) if after_load else 0.0
    startup_default = statistics.median(startups) if startups else 3.0
    driver_default = statistics.median(driver_starts) if driver_starts else 2.0
    out = {"sources": [str(p) for p, _ in files], "observed_runs": observed[-5:],
           "basis": (f"estimated: per cell the newest load time in {len(files)} results file(s) ({len(load)} cells, "
                     "scaled to 2000 requests; a missing cell takes its scenario's median), plus the driver's "
                     f"{drain:.0f}s drain after a cell that hit its time limit, this bench's stack start-up + stop, "
                     "driver start-up and final reads + history write, and checking the newest run's histories")}
    for mode, req_scale in (("default", 1.0), ("quick", 300 / 2000)):
        measured_cells = 0
        load_total = 0.0
        for sc in all_scenarios:
            by_scenario = [v for (s, _), v in load.items() if s == sc]
            for st in strategies:
                if (sc, st) in load:
                    measured_cells += 1
                    load_total += load[(sc, st)] * req_scale
                else:
                    load_total += (statistics.median(by_scenario) if by_scenario else overall) * req_scale
        cells = len(all_scenarios) * len(strategies)
        startup = sum(
            (scenario_records.get(sc, {}).get("startup_seconds") or startup_default)
            + (scenario_records.get(sc, {}).get("stop_seconds") or 0) for sc in all_scenarios)
        drained = sum(1 for sc in all_scenarios for st in strategies if timeouts.get((sc, st))) if mode == "default" \
            else 0
        breakdown = {
            "stack_start_stop": round(startup, 1),
            "drain_after_time_limit": round(drained * drain, 1),
            "driver_startup": round(driver_default * len(all_scenarios), 1),
            "load": round(load_total, 1),
            "final_reads_and_history_write": round(per_after * req_scale * cells, 1),
            "checking": round(per_check * req_scale * cells, 1),
        }
        out[mode] = {"kind": "estimated", "seconds": round(sum(breakdown.values()), 1), "cells": cells,
                     "cells_with_load_time": measured_cells, "breakdown": breakdown,
                     "per_cell_seconds": {"load_median": round(overall * req_scale, 3),
                                          "final_reads_and_write": round(per_after * req_scale, 3),
                                          "checking": round(per_check * req_scale, 3)}}
    return out


def measure_matrix(run_dir: Path) -> dict:
    out = {"basis": "measured: `workerlab run` and `workerlab run --quick` run end to end by the bench"}
    for mode, args in (("default", []), ("quick", ["--quick"])):
        folder = run_dir / f"matrix-{mode}"
        t0 = time.monotonic()
        proc = procs.run([sys.executable, "-m", "workerlab", "run", "--quiet", "--output", str(folder), *args],
                         cwd=ROOT, text=True, timeout=3600, grace=120)  # a nested lab stops its own stacks
        wall = time.monotonic() - t0
        found = sorted(folder.glob("*/results.json"))
        data = json.loads(found[-1].read_text()) if found else {}
        cells = data.get("cells", [])
        load = sum((c.get("throughput") or {}).get("load_seconds") or 0 for c in cells)
        out[mode] = {"kind": "measured", "seconds": round(wall, 1), "cells": len(cells), "exit_code": proc.returncode,
                     "breakdown": {"load": round(load, 1),
                                   "start_up_driver_final_reads_checking": round(wall - load, 1)}}
    return out
