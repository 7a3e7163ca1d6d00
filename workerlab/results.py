"""results.json: the run's one output, from which every table and picture is made.

Schema ``worker-lab/results/v1``::

    {
      "schema": "worker-lab/results/v1",
      "run_id": "20261127-131500", "status": "running" | "complete" | "interrupted" | "failed",
      "started": ISO time, "finished": ISO time | null,
      "settings": {"requests", "users", "race_window", "direct", "quick", "sidecars", "engine": "native" | "compose",
                   "scenarios", "strategies"},
      "versions": {"python", "flask", "gunicorn", "gevent", "redis-py", "pymemcache", "flask-session",
                   "flask-caching", "psycopg", "locust", "redis-server", "memcached", "nginx", "postgres"},
                                            # each a string or null
                                            # THIS HOST's: the load generator's, and in a native run what served;
                                            # a compose run's servers are in scenarios[name].served_versions
      "machine": {
        "cpu_count",                        # os.cpu_count(): the machine's CPUs
        "cpu_affinity": [0, 1] | null,      # os.sched_getaffinity(0): the CPUs the lab's process may run on
        "cpu_quota": null | {               # its cgroup's CPU bandwidth limit, the tightest of it and its parents;
          "cgroup": "v1" | "v2", "path",    #   null: no cgroup CPU controller found
          "quota_us": int | null, "period_us": int,   # v1 cpu.cfs_quota_us / cpu.cfs_period_us, v2 cpu.max
          "cpus": float | null},            #   quota / period; null: no limit
        "platform"},
      "scenarios": {name: {"description", "error" | null,
                           "served_versions": {...}}},   # compose runs only: asked of the scenario's running
                                            # containers (compose exec: the app's python and packages, redis-server,
                                            # memcached, nginx, postgres), the keys of "versions" but locust;
                                            # null = no answer
      "cells": [{
        "scenario", "strategy", "check", "question",
        "expected": {"verdict": [...], "label", "reason", "maybe": [...], "cause": regex | null},
        "observed": {"verdict": [...], "label"} ,
        "match": bool | null,                # observed matches expected (expected.Expectation.judge);
                                             # null: not judged (an "any" expectation) - never counted as matched
        "not_the_cause": {text: n},          # failures that are not the expected error's named cause
                                             # (Expectation.not_the_cause): why an expected error did not match
        "counts": {...}, "examples": [...], "notes": [...],   # from the checker
        "throughput": {"rps", "rps_spread": [min, max] | null,   # over 5 equal slices of the load window
                       "p50_ms", "p95_ms", "p99_ms", "achieved_concurrency",
                       "latency": {"uncorrected": {"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"} | null,
                                   "corrected": {...} | null},   # HdrHistogram; corrected: from the scheduled
                                                                 # start, fixed-rate runs only (workerlab/latency.py)
                       "rate", "arrivals", "late", "dropped",    # fixed-rate runs only (--rate)
                       "generator_cpu_share", "generator_bound", "load_seconds",
                       # native runs (workerlab/cpu.py): the server's CPU over the load window - the app's
                       # processes, nginx, the strategy's store - per answered request, whoever generated the load
                       "cpu_us_per_request", "cpu_us_grain", "cpu_us_by": {"app", "nginx", "store"}, "server_cores",
                       "server_wait_cores",             # runnable but without a CPU (other work had it)
                       "server_cpus", "capacity_rps",   # server_cpus / CPU per request
                       "limit": one of workerlab.cpu.LIMITS | null,
                       "served_by": {"processes", "threads", "greenlets"}},   # distinct server processes,
                                             # OS threads (pid, tid) and greenlets (pid, greenlet id) that
                                             # answered under load: the concurrency the server really served
                                             # (greenlet ids are reused once one ends: a lower bound)
        "history": "history/<scenario>/<strategy>.jsonl",   # relative to the run folder
        "error": null | "text"                # the cell could not run at all, e.g. a same-user set-up that got
                                              # no session cookie ("driver: NoSessionCookie: ..."): no verdict
                                              # from its history, observed "error"
      }],
      "summary": {"planned",                # cells the run set out to run (null in files from before it)
                  "cells", "judged", "matched", "mismatched", "not_judged", "errors"}
                                            # cells < planned: an interrupted or failed run
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
from pathlib import Path

from loadtests.checkers import CheckResult
from loadtests.history import ok as answered_ok
from loadtests.history import process_of
from loadtests.verdicts import ANY, ERROR, MATRIX_WORDS, format_verdict

from . import interrupt, procs
from .expected import Expectation
from .latency import latency
from .runfile import RESULTS_SCHEMA, RunFile, now_iso, write_json

SCHEMA = RESULTS_SCHEMA
GENERATOR_BOUND_SHARE = 0.85  # of the one core a locust process can use


# The app's Python packages, by (label in results.json, distribution name); the host has them too.
APP_PACKAGES = (("flask", "flask"), ("gunicorn", "gunicorn"), ("gevent", "gevent"), ("redis-py", "redis"),
                ("pymemcache", "pymemcache"), ("flask-session", "flask-session"), ("flask-caching", "flask-caching"),
                ("psycopg", "psycopg"))
# The servers beside the app: (label, compose service, how to ask its version, where the version is in the answer).
SERVERS = (("redis-server", "redis", ["redis-server", "--version"], r"v=(\S+)"),
           ("memcached", "memcached", ["memcached", "-V"], r"memcached (\S+)"),
           ("nginx", "nginx", ["nginx", "-v"], r"nginx/(\S+)"),
           ("postgres", "postgres", ["postgres", "--version"], r"\(PostgreSQL\) (\S+)"))
# Run by the app container's python: its own version and its packages', as one JSON line.
_APP_PROBE = ("import importlib.metadata as m, json, platform\n"
              "def version(dist):\n"
              "    try:\n        return m.version(dist)\n"
              "    except m.PackageNotFoundError:\n        return None\n"
              f"print(json.dumps({{'python': platform.python_version(), "
              f"**{{label: version(dist) for label, dist in {APP_PACKAGES!r}}}}}))")


def _version_in(run, argv: list[str], pattern: str) -> str | None:
    """The version `pattern` finds in what `run(argv)` (a CompletedProcess with text) printed; None if nothing."""
    try:
        out = run(argv)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(pattern, (out.stdout or "") + (out.stderr or ""))
    return match.group(1) if match else None


def versions() -> dict:
    """The host's versions: the load generator's, and in a native run those of every server that answered."""
    from .stacks.native import find_binary

    found = {"python": platform.python_version()}
    for label, dist in (*APP_PACKAGES, ("locust", "locust")):
        try:
            found[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[label] = None
    for label, _service, (binary, *args), pattern in SERVERS:
        try:
            found[label] = _version_in(lambda argv: procs.run(argv, text=True, timeout=5),
                                       [find_binary(binary), *args], pattern)
        except Exception:
            found[label] = None
    return found


def served_versions(exec_in) -> dict:
    """What a compose stack's containers run, asked of them: ``exec_in(service, argv)`` runs argv in the
    service's first container and returns a CompletedProcess with text (ComposeStack.exec_in)."""
    app = _version_in(lambda argv: exec_in("app", argv), ["python", "-c", _APP_PROBE], r"(\{.*\})")
    found = dict.fromkeys(["python", *(label for label, _dist in APP_PACKAGES)])
    if app:
        found.update(json.loads(app))
    for label, service, argv, pattern in SERVERS:
        found[label] = _version_in(lambda argv, service=service: exec_in(service, argv), argv, pattern)
    return found


def cpu_quota(proc_cgroup: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> dict | None:
    """The CPU bandwidth limit of this process's cgroup: the tightest of its own and its parents'.

    ``{"cgroup": "v1" | "v2", "path", "quota_us", "period_us", "cpus"}`` (``quota_us`` and ``cpus`` None when
    it sets no limit) from cgroup v1's cpu.cfs_quota_us and cpu.cfs_period_us or cgroup v2's cpu.max;
    None when no cgroup CPU controller is found.
    """
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        v2 = controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        mount = Path(root) if v2 else next((m for m in (Path(root) / controllers, Path(root) / "cpu") if m.is_dir()),
                                           Path(root) / "cpu")
        own = mount / path.lstrip("/")
        # Inside a container the process's cgroup path may not be visible: then the mount's top is its own.
        chain = [own, *(p for p in own.parents if mount in p.parents or p == mount)] if own.is_dir() else [mount]
        limits = [limit for directory in chain if (limit := _cgroup_limit(directory, v2))]
        if limits:
            return min(limits, key=lambda limit: float("inf") if limit["cpus"] is None else limit["cpus"])
    return None


def _cgroup_limit(directory: Path, v2: bool) -> dict | None:
    try:
        if v2:
            quota, period = (directory / "cpu.max").read_text().split()
        else:
            quota = (directory / "cpu.cfs_quota_us").read_text().strip()
            period = (directory / "cpu.cfs_period_us").read_text().strip()
        period_us = int(period)
        quota_us = None if quota in ("max", "-1") else int(quota)
    except (OSError, ValueError):
        return None
    return {"cgroup": "v2" if v2 else "v1", "path": str(directory), "quota_us": quota_us, "period_us": period_us,
            "cpus": round(quota_us / period_us, 2) if quota_us and period_us else None}


def machine() -> dict:
    """The CPUs: how many the machine has, which this process may run on, and its cgroup's CPU quota."""
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = None
    return {"cpu_count": os.cpu_count(), "cpu_affinity": affinity, "cpu_quota": cpu_quota(),
            "platform": platform.platform()}


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


SPREAD_SLICES = 5  # the load window cut in this many equal parts: the rps of each says how steady it was


def rps_spread(ok: list[dict], start: float, wall: float) -> list[float] | None:
    """[min, max] of the rps over SPREAD_SLICES equal slices of the load window: a cell's own noise, against
    which a change between two runs is measured (workerlab report A B)."""
    if wall <= 0 or len(ok) < 10 * SPREAD_SLICES:
        return None
    width = wall / SPREAD_SLICES
    counts = [0] * SPREAD_SLICES
    for e in ok:
        counts[min(SPREAD_SLICES - 1, int((e["complete"] - start) / width))] += 1
    return [round(min(counts) / width, 1), round(max(counts) / width, 1)]


def throughput(history: list[dict], driver_stats: dict) -> dict:
    load = [e for e in history if e.get("phase", "load") == "load"]
    ok = [e for e in load if answered_ok(e)]  # 2xx: a user's app may answer 201
    latencies = sorted((e["complete"] - e["invoke"]) * 1000 for e in load)
    wall = (max(e["complete"] for e in load) - min(e["invoke"] for e in load)) if load else 0
    share = driver_stats.get("generator_cpu_share")
    # What the generator got plus what it waited for: on a shared machine a starved generator is the
    # bottleneck at a low CPU share (measured by workerlab bench: CPU share alone flagged 0 of 52).
    demand = None if share is None else share + (driver_stats.get("generator_wait_share") or 0)
    return {
        "rps": round(len(ok) / wall, 1) if wall else None,
        "rps_spread": rps_spread(ok, min(e["invoke"] for e in load), wall) if load else None,
        "p50_ms": _round(percentile(latencies, 0.50)),
        "p95_ms": _round(percentile(latencies, 0.95)),
        "p99_ms": _round(percentile(latencies, 0.99)),
        "achieved_concurrency": round(sum(latencies) / 1000 / wall, 1) if wall else None,
        "generator_cpu_share": share,
        "generator_wait_share": driver_stats.get("generator_wait_share"),
        "generator_bound": bool(demand is not None and demand >= GENERATOR_BOUND_SHARE),
        "load_seconds": round(wall, 3),
        "latency": latency(load),
        **{k: driver_stats.get(k) for k in ("rate", "arrivals", "late", "dropped") if driver_stats.get("rate")},
        "served_by": served_by(ok),
    }


def served_by(answered: list[dict]) -> dict:
    """Who served the answered requests: processes, OS threads, greenlets (see the schema above)."""
    return {
        "processes": len({process_of(e) for e in answered}),
        "threads": len({(process_of(e), e.get("tid")) for e in answered}),
        "greenlets": len({(process_of(e), e["greenlet"]) for e in answered if e.get("greenlet") is not None}),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def cell_record(scenario: str, strategy, expectation: Expectation, check: CheckResult | None, *,
                history_path: str | None, throughput_: dict | None, error: str | None = None) -> dict:
    observed = check.verdict if check else frozenset({ERROR})
    error_texts = check.error_texts if check else {}
    match = expectation.judge(observed, error_texts)
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
        "not_the_cause": {text[:200]: n for text, n in expectation.not_the_cause(observed, error_texts).items()},
        "counts": check.counts if check else {},
        "examples": check.examples if check else [],
        "notes": check.notes if check else [],
        "throughput": throughput_,
        "history": history_path,
        "error": error,
    }


class ResultsFile(RunFile):
    """results.json, rewritten after every cell so an interrupted run stays readable."""

    def __init__(self, run_dir: Path, settings: dict, scenarios: dict, planned: int | None = None):
        self.run_dir = run_dir
        self.planned = planned
        super().__init__(run_dir / "results.json", {
            "schema": SCHEMA,
            "run_id": run_dir.name,
            "status": "running",
            "started": now_iso(),
            "finished": None,
            "settings": settings,
            "versions": {},  # probe_versions() fills them in
            "machine": machine(),
            "scenarios": {name: {"description": s.description, "error": None} for name, s in scenarios.items()},
            "cells": [],
            "summary": {},
        })

    def probe_versions(self) -> None:
        self.data["versions"] = versions()
        self.write()

    def probe_served_versions(self, scenario: str, exec_in) -> None:
        """A compose run: what the scenario's containers run (the host's versions did not serve it)."""
        self.data["scenarios"][scenario]["served_versions"] = served_versions(exec_in)
        self.write()

    def scenario_error(self, scenario: str, error: str) -> None:
        self.data["scenarios"][scenario]["error"] = error
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


def of_planned(data: dict) -> str | None:
    """"N of M planned cells run" for a run that did not run every cell it planned (interrupted, failed, still
    running); None when it ran them all or did not say how many it planned."""
    summary = data.get("summary") or {}
    planned, ran = summary.get("planned"), summary.get("cells", len(data.get("cells") or []))
    if not planned or (ran >= planned and data.get("status") in ("complete", None)):
        return None
    return f"{ran} of {planned} planned cells run"


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
        *(["", f"**{data['status']}: {of_planned(data)}.**"] if of_planned(data) else []),
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
