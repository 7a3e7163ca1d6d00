"""results.json: the run's one output, from which every table and picture is made.

Schema ``worker-lab/results/v1``::

    {
      "schema": "worker-lab/results/v1",
      "run_id": "20261127-131500", "status": "running" | "complete" | "interrupted" | "failed",
      "started": ISO time, "finished": ISO time | null,
      "settings": {"requests", "users", "race_window", "direct", "quick", "scenarios", "strategies"},
      "versions": {"python", "flask", "gunicorn", "gevent", "locust", "redis-py", "pymemcache",
                   "redis-server", "memcached", "nginx"},
      "machine": {"cpu_count", "platform"},
      "scenarios": {name: {"description", "error" | null}},
      "cells": [{
        "scenario", "strategy", "check", "question",
        "expected": {"verdict": [...], "label", "reason", "maybe": [...], "cause": regex | null},
        "observed": {"verdict": [...], "label"} ,
        "match": bool | null,                # observed matches expected (expected.Expectation.judge);
                                             # null: not judged (an "any" expectation) - never counted as matched
        "counts": {...}, "examples": [...], "notes": [...],   # from the checker
        "throughput": {"rps", "p50_ms", "p95_ms", "p99_ms", "achieved_concurrency",
                       "generator_cpu_share", "generator_bound", "load_seconds"},
        "history": "history/<scenario>/<strategy>.jsonl",   # relative to the run folder
        "error": null | "text"                # the cell could not run at all
      }],
      "summary": {"planned", "cells", "judged", "matched", "mismatched", "not_judged", "errors"}
    }
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from loadtests.checkers import CheckResult
from loadtests.verdicts import ANY, ERROR, MATRIX_WORDS, format_verdict

from . import interrupt, procs
from .expected import Expectation
from .runfile import write_json

SCHEMA = "worker-lab/results/v1"
GENERATOR_BOUND_SHARE = 0.85  # of the one core a locust process can use


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version_of(argv: list[str], pattern: str) -> str | None:
    try:
        out = procs.run(argv, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else None


def versions() -> dict:
    from .stack import find_binary

    found = {"python": platform.python_version()}
    for label, dist in (("flask", "flask"), ("gunicorn", "gunicorn"), ("gevent", "gevent"), ("locust", "locust"),
                        ("redis-py", "redis"), ("pymemcache", "pymemcache"), ("flask-session", "flask-session"),
                        ("flask-caching", "flask-caching")):
        try:
            found[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[label] = None
    for label, binary, args, pattern in (("redis-server", "redis-server", ["--version"], r"v=(\S+)"),
                                         ("memcached", "memcached", ["-V"], r"memcached (\S+)"),
                                         ("nginx", "nginx", ["-v"], r"nginx/(\S+)")):
        try:
            found[label] = _version_of([find_binary(binary), *args], pattern)
        except Exception:
            found[label] = None
    return found


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def throughput(history: list[dict], driver_stats: dict) -> dict:
    load = [e for e in history if e.get("phase", "load") == "load"]
    ok = [e for e in load if e.get("status") == 200]
    latencies = sorted((e["complete"] - e["invoke"]) * 1000 for e in load)
    wall = (max(e["complete"] for e in load) - min(e["invoke"] for e in load)) if load else 0
    share = driver_stats.get("generator_cpu_share")
    # What the generator got plus what it waited for: on a shared machine a starved generator is the
    # bottleneck at a low CPU share (measured by workerlab bench: CPU share alone flagged 0 of 52).
    demand = None if share is None else share + (driver_stats.get("generator_wait_share") or 0)
    return {
        "rps": round(len(ok) / wall, 1) if wall else None,
        "p50_ms": _round(percentile(latencies, 0.50)),
        "p95_ms": _round(percentile(latencies, 0.95)),
        "p99_ms": _round(percentile(latencies, 0.99)),
        "achieved_concurrency": round(sum(latencies) / 1000 / wall, 1) if wall else None,
        "generator_cpu_share": share,
        "generator_wait_share": driver_stats.get("generator_wait_share"),
        "generator_bound": bool(demand is not None and demand >= GENERATOR_BOUND_SHARE),
        "load_seconds": round(wall, 3),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def cell_record(scenario: str, strategy, expectation: Expectation, check: CheckResult | None, *,
                history_path: str | None, throughput_: dict | None, error: str | None = None) -> dict:
    observed = check.verdict if check else frozenset({ERROR})
    match = expectation.judge(observed, check.error_texts if check else {})
    if error:
        match = False  # the cell could not run: judged, and not as expected
    return {
        "scenario": scenario,
        "strategy": strategy.name,
        "check": strategy.check,
        "question": strategy.question,
        "expected": {"verdict": sorted(expectation.verdict), "label": expectation.label, "reason": expectation.reason,
                     "maybe": sorted(expectation.maybe), "cause": expectation.cause},
        "observed": {"verdict": sorted(observed), "label": format_verdict(observed)},
        "match": match,
        "counts": check.counts if check else {},
        "examples": check.examples if check else [],
        "notes": check.notes if check else [],
        "throughput": throughput_,
        "history": history_path,
        "error": error,
    }


class ResultsFile:
    """results.json, rewritten after every cell so an interrupted run stays readable."""

    def __init__(self, run_dir: Path, settings: dict, scenarios: dict, planned: int | None = None):
        self.run_dir = run_dir
        self.path = run_dir / "results.json"
        self.planned = planned
        self.data = {
            "schema": SCHEMA,
            "run_id": run_dir.name,
            "status": "running",
            "started": now_iso(),
            "finished": None,
            "settings": settings,
            "versions": {},  # probe_versions() fills them in
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
            "scenarios": {name: {"description": s.description, "error": None} for name, s in scenarios.items()},
            "cells": [],
            "summary": {},
        }
        with interrupt.shielded():  # a run folder always holds a readable results.json, and it is finished
            self.write()
            interrupt.on_exit(self.finish_if_running)

    def probe_versions(self) -> None:
        self.data["versions"] = versions()
        self.write()

    def finish_if_running(self) -> None:
        """At the lab's exit, however it ends: a run still 'running' was interrupted (or failed)."""
        if self.data["status"] == "running":
            self.finish("interrupted" if interrupt.received() else "failed")

    def add(self, cell: dict) -> None:
        self.data["cells"].append(cell)
        self.write()

    def scenario_error(self, scenario: str, error: str) -> None:
        self.data["scenarios"][scenario]["error"] = error
        self.write()

    def finish(self, status: str) -> None:
        with interrupt.shielded():
            self.data["status"] = status
            self.data["finished"] = now_iso()
            self.write()

    def write(self) -> None:
        cells = self.data["cells"]
        self.data["summary"] = {
            "planned": self.planned,
            "cells": len(cells),
            "judged": sum(1 for c in cells if c["match"] is not None),
            "matched": sum(1 for c in cells if c["match"] is True),
            "mismatched": sum(1 for c in cells if c["match"] is False),
            "not_judged": sum(1 for c in cells if c["match"] is None),
            "errors": sum(1 for c in cells if c["error"]),
        }
        with interrupt.shielded():
            write_json(self.path, self.data)  # readers never see half a file
            (self.run_dir / "results.md").write_text(markdown(self.data))


def grid(data: dict) -> tuple[list[str], list[tuple[str, list[dict | None]]]]:
    """The matrix as the tables show it: the scenarios (columns) and, per strategy in run order,
    its cell in each scenario (None where it did not run)."""
    scenarios = list(data["scenarios"])
    by = {(c["strategy"], c["scenario"]): c for c in data["cells"]}
    strategies = dict.fromkeys(c["strategy"] for c in data["cells"])
    return scenarios, [(s, [by.get((s, scenario)) for scenario in scenarios]) for s in strategies]


def summary_line(summary: dict) -> str:
    """'50 of 54 cells as expected, 0 differ, 4 not judged': a cell that is not judged is not matched."""
    line = (f"{summary.get('matched', 0)} of {summary.get('cells', 0)} cells as expected, "
            f"{summary.get('mismatched', 0)} differ")
    if summary.get("not_judged"):
        line += f", {summary['not_judged']} not judged"
    return line


def markdown(data: dict) -> str:
    scenarios, rows = grid(data)
    lines = [
        f"# worker-lab run {data['run_id']} ({data['status']})",
        "",
        f"Race window: `{data['settings'].get('race_window')}`; {data['settings'].get('requests')} requests per "
        f"cell at {data['settings'].get('users')} users; {summary_line(data['summary'])}.",
        "",
        "Each cell: observed verdict; `!!` marks a cell that differs from the expected one (shown after `≠`).",
        "",
        "| strategy | " + " | ".join(scenarios) + " |",
        "|---|" + "---|" * len(scenarios),
    ]
    for strategy, cells in rows:
        row = []
        for c in cells:
            if c is None:
                row.append("")
            elif c["match"] is None:
                row.append(f"{c['observed']['label']} (not judged)")
            elif c["match"]:
                row.append(c["observed"]["label"])
            else:
                row.append(f"!! {c['observed']['label']} ≠ {c['expected']['label']}")
        lines.append(f"| {strategy} | " + " | ".join(row) + " |")
    lines += ["", "## Throughput (requests/s through the stack; generator CPU share in brackets)", "",
              "| strategy | " + " | ".join(scenarios) + " |", "|---|" + "---|" * len(scenarios)]
    for strategy, cells in rows:
        row = []
        for c in cells:
            t = (c or {}).get("throughput") or {}
            if t.get("rps") is None:
                row.append("")
            else:
                mark = " gen-bound" if t.get("generator_bound") else ""
                row.append(f"{t['rps']:.0f} ({100 * (t.get('generator_cpu_share') or 0):.0f}%{mark})")
        lines.append(f"| {strategy} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def load(path: Path) -> dict:
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        sys.exit(f"{path}: not a worker-lab results file (schema {data.get('schema')!r})")
    return data


# -- reading a results file: the order and words the report and the charts show -----------------------
def scenario_order(data: dict) -> list[str]:
    names = list(data.get("scenarios") or {})
    for c in data["cells"]:
        if c["scenario"] not in names:
            names.append(c["scenario"])
    return names


def strategy_order(data: dict) -> list[str]:
    names = list(dict.fromkeys(c["strategy"] for c in data["cells"]))
    for name in (data.get("settings") or {}).get("strategies") or []:
        if name not in names:
            names.append(name)
    return names


def verdict_words(cell: dict | None, side: str = "observed") -> list[str]:
    if not cell:
        return []
    words = (cell.get(side) or {}).get("verdict") or []
    if ANY in words:
        return [ANY]
    return [w for w in MATRIX_WORDS if w in words] or list(words)
