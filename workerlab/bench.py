"""``workerlab bench``: how far the lab's throughput figures can be trusted.

For every gunicorn scenario and three cells - ``/hello``, one correct strategy (``redis-incr``)
and one racy one (``naive-global``) - the bench measures, interleaved on one running stack:

- the lab's own measurement: ``loadtests.drive`` (locust as a library, FastHttpUser) recording
  every request as a history entry, its RPS computed by ``workerlab.results.throughput`` exactly
  as in results.json;
- the same cell with recording switched off (``"record": false``): the cost of recording;
- wrk (``-t1``, same connection count, same URL) as the reference generator.

Generator and server are pinned to separate cores by default (``--no-pin`` to compare). CPU is
measured with psutil on the process trees: the generator (driver process / wrk), the server
(app instances, nginx, sidecars) and everything else on the machine ("other"). Every figure is
the median over ``--repeat`` repetitions, with min and max.

It also measures ceilings (nginx answering by itself, redis INCR with redis-benchmark), the
checkers' speed on synthetic histories, and the matrix's wall time (estimated, or measured with
``--matrix-times``).

Schema ``worker-lab/bench/v1`` of ``results/<timestamp>/bench.json``::

    {
      "schema": "worker-lab/bench/v1", "run_id", "status": "running" | "complete" | "interrupted" | "failed",
      "started", "finished",
      "settings": {"scenarios", "repeat", "duration", "requests" (null: budget sized to `duration`), "users",
                   "pin", "server_cpus", "generator_cpus", "nice", "quick", "record_cost", "checker_entries"},
      "machine": {"cpu_count", "platform", "loadavg_start", "loadavg_end"},
      "versions": {"wrk", "redis-benchmark", "nginx", "locust", "python"},
      "scenarios": {name: {
        "error": null | text, "startup_seconds", "stop_seconds", "driver_startup_seconds", "url",
        "calibration_rps": {cell: wrk rps over 1 s}, # sizes the lab's request budget to about --duration
        "cells": {"hello" | "redis-incr" | "naive-global": {
          "path": "/hello" | "/s/<strategy>/incr?key=...",
          "measurements": [{
            "rep", "tool": "lab" | "wrk", "record": true | false | null (wrk),
            "rps",                         # successful (HTTP 200 / 2xx) responses per second
            "p50_ms", "p99_ms", "requests", "errors", "seconds",
            "generator_cpu",               # cores used by the load generator over the load
            "server_cpu", "server_cpu_by": {"app", "nginx", "sidecars"},   # cores
            "other_cpu",                   # cores used by every other process on the machine
            "server_wait", "generator_wait" (lab only),  # threads runnable but waiting for a CPU, on average
            "server_cores_busy", "generator_cores_busy",  # when pinned: how busy those cores were (any process)
            "driver_rps", "timed_out",     # lab only: load_ok / load_seconds as the driver saw it
            "error": null | text
          }],
          "summary": {
            "lab" | "lab_norec" | "wrk": {figure: {"median", "min", "max", "n"}},
            "ratio_lab_wrk": {"median", "min", "max", "n"},   # lab rps / wrk rps, per repetition
            "ratio_record": {"median", "min", "max", "n"}     # driver rps recording / not recording
          }}}}},
      "ceilings": {"hello_rps_wrk", "hello_rps_wrk_scenario", "nginx_rps_wrk", "redis_incr_ops",
                   "lab_rps_nginx", "lab_rps_nginx_not_recording",   # the lab's generator against nginx alone:
                                                                      # the most one generator core can send
                   "detail": {"nginx": {..., "lab": {..., "cpu_us_per_request_recording", ...}}, "redis": {...}}},
      "checker": {"entries", "generate_seconds", "check_counter_seconds", "check_isolation_seconds",
                  "check_counter_seconds_gc_off", "check_isolation_seconds_gc_off",   # garbage collector off
                  "realtime_violations_seconds", "realtime_violations_seconds_gc_off",  # its costliest part
                  "target_seconds", "met", "profile": {checker: [[function, cumulative seconds], ...]}},
      "matrix_times": {"default" | "quick": {"kind": "estimated" | "measured", "seconds", "cells",
                                             "breakdown": {part: seconds}, "per_cell_seconds" (estimated)},
                       "basis": text, "sources": [results.json paths] (estimated),
                       "observed_runs": [{"run", "status", "cells", "requests", "wall_seconds", "load_seconds"}]},
      "noise": {"threshold_cores", "measurements", "noisy", "other_cpu": spread},  # other processes' CPU
      "guard": {"threshold", "points": [[generator_cpu, ratio_lab_wrk, scenario, cell, generator_wait], ...],
                "share_rule" | "demand_rule": {"flagged", "short_of_wrk", "short_of_wrk_flagged",
                                               "flagged_but_faithful"}, "verdict": text},
      "targets": {"hello_lab_wrk_0.9": {...}, "record_ratio_0.95": {...}, "checker_5s": {...}}
    }
"""

from __future__ import annotations

import cProfile
import json
import os
import platform
import pstats
import queue
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import click
import psutil
from rich.console import Console
from rich.table import Table

from loadtests.history import read_history

from .matrix import CELL_TIME_LIMIT_S, new_run_dir
from .paths import RESULTS_DIR, ROOT
from .procs import Child, StackError, free_port
from .results import GENERATOR_BOUND_SHARE, now_iso, throughput
from .scenarios import Scenario, UnknownName, load_scenarios, pick
from .stack import NativeStack, find_binary, missing_binaries

SCHEMA = "worker-lab/bench/v1"
# name -> (kind of driver cell, strategy, path template); {key} is a fresh key per measurement.
CELLS = {
    "hello": ("path", "hello", "/hello"),
    "redis-incr": ("counter", "redis-incr", "/s/redis-incr/incr?key={key}"),
    "naive-global": ("counter", "naive-global", "/s/naive-global/incr?key={key}"),
}
DEFAULTS = {"repeat": 3, "duration": 3, "redis_requests": 100_000, "checker_entries": 1_000_000}
QUICK = {"repeat": 1, "duration": 2, "redis_requests": 20_000}
MIN_BUDGET = 200
NOISE_OTHER_CPU = 0.25  # cores used by unrelated processes above which a measurement is marked noisy
CHECKER_TARGET_S = 5.0
HELLO_TARGET = 0.9
RECORD_TARGET = 0.95
FIGURES = ("rps", "p50_ms", "p99_ms", "generator_cpu", "generator_wait", "server_cpu", "server_wait", "other_cpu")

# Wide enough for the summary table when stdout is a file or a pipe (rich would assume 80 columns).
console = Console(width=None if sys.stdout.isatty() else 190)


# -- parsing (unit-tested on captured outputs) -----------------------------------------------------
_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SCALE = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_S[match.group(2)] * 1000


def _count(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)([kMG]?)", text.strip())
    if not match:
        raise ValueError(f"not a wrk count: {text!r}")
    return float(match.group(1)) * _SCALE[match.group(2)]


def parse_wrk(text: str) -> dict:
    """Figures from wrk's output (run with ``--latency``); raises ValueError when it has none."""
    out: dict = {"non_2xx": 0, "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    match = re.search(r"(\d+) threads and (\d+) connections", text)
    if match:
        out["threads"], out["connections"] = int(match.group(1)), int(match.group(2))
    match = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w*B) read", text)
    if not match:
        raise ValueError("no 'N requests in T' line in wrk output")
    out["requests"] = int(match.group(1))
    out["seconds"] = _duration_ms(match.group(2)) / 1000
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not match:
        raise ValueError("no 'Requests/sec' line in wrk output")
    out["rps_all"] = float(match.group(1))
    match = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if match:
        out["latency_avg_ms"] = _duration_ms(match.group(1))
        out["latency_max_ms"] = _duration_ms(match.group(3))
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", text, re.M):
        out[f"p{pct}_ms"] = _duration_ms(value)
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if match:
        out["non_2xx"] = int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if match:
        out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, match.groups()),
                                        strict=True))
    ok = out["requests"] - out["non_2xx"]
    out["errors"] = out["non_2xx"] + sum(out["socket_errors"].values())
    out["rps"] = out["rps_all"] * ok / out["requests"] if out["requests"] else 0.0
    return out


def parse_redis_benchmark(text: str) -> dict:
    """``redis-benchmark -t incr -q`` output: 'INCR: 98039.22 requests per second, p50=0.263 msec'."""
    # -q rewrites its progress line with carriage returns; the last segment holds the result.
    lines = [seg for line in text.splitlines() for seg in line.split("\r")]
    for line in reversed(lines):
        match = re.search(r"INCR:\s+([\d.]+) requests per second(?:, p50=([\d.]+) msec)?", line)
        if match:
            return {"ops": float(match.group(1)), "p50_ms": float(match.group(2)) if match.group(2) else None}
    raise ValueError("no 'INCR: N requests per second' line in redis-benchmark output")


def parse_driver_line(line: str) -> dict | None:
    """One of the driver's JSON event lines, or None for anything else (a warning on stdout)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def parse_driver_events(lines) -> list[dict]:
    return [e for e in map(parse_driver_line, lines) if e is not None]


def lab_figures(stats: dict, history: list[dict] | None) -> dict:
    """The lab's figures for one measurement: from its history (as results.json computes them) or,
    when nothing was recorded, from the driver's own counts and locust's percentiles."""
    errors = max(0, (stats.get("attempted") or 0) - (stats.get("load_ok") or 0))
    if history:
        t = throughput(history, stats)
        load = [e for e in history if e.get("phase", "load") == "load"]
        return {"rps": t["rps"], "p50_ms": t["p50_ms"], "p99_ms": t["p99_ms"],
                "requests": sum(1 for e in load if e.get("status") == 200),
                "errors": sum(1 for e in load if e.get("status") != 200), "seconds": t["load_seconds"]}
    return {"rps": stats.get("rps"), "p50_ms": stats.get("locust_p50_ms"), "p99_ms": stats.get("locust_p99_ms"),
            "requests": stats.get("load_ok"), "errors": errors, "seconds": stats.get("load_seconds")}


def spread(values) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "n": len(values)}


# -- processes and CPU -----------------------------------------------------------------------------
def tree(pids) -> list[psutil.Process]:
    procs = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs.append(root)
            procs.extend(root.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return procs


def cpu_seconds(pids) -> float:
    total = 0.0
    for p in tree(pids):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def runqueue_seconds(pids) -> float:
    """Time the trees' threads spent runnable but waiting for a CPU (/proc/<pid>/task/<tid>/schedstat).

    CPU share says what a process got; this says what it wanted and did not get: a generator that
    waits for its core is the bottleneck even at a low CPU share.
    """
    total = 0
    for p in tree(pids):
        try:
            tids = os.listdir(f"/proc/{p.pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p.pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")


def machine_busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in _BUSY_FIELDS)


def cpus_busy_seconds() -> list[float]:
    """Busy time of each CPU (all processes): with pinning, how full the server's and generator's cores were."""
    return [sum(getattr(t, f, 0.0) for f in _BUSY_FIELDS) for t in psutil.cpu_times(percpu=True)]


def pin(pids, cpus: set[int] | None, nice: int = 0) -> None:
    """Pin (and renice) every thread of every process in the trees: both are per thread on Linux."""
    if not cpus and not nice:
        return
    for p in tree(pids):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p.pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                if cpus:
                    os.sched_setaffinity(tid, cpus)
                if nice:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
            except OSError:
                pass


def preexec(cpus: set[int] | None, nice: int = 0):
    """For Popen: pin and renice the child before it runs (its threads inherit both)."""
    if not cpus and not nice:
        return None

    def apply():
        if cpus:
            os.sched_setaffinity(0, cpus)
        if nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)

    return apply


class CpuWindow:
    """CPU used by named process groups and by the whole machine between start() and stop()."""

    # Set by the bench when it pins: which CPUs to report as the server's and the generator's cores.
    layout: tuple[set[int] | None, set[int] | None] = (None, None)

    def __init__(self, groups: dict[str, list[int]], generator: int | None = None):
        self.groups = groups
        self.generator = [generator] if generator else []

    def _waits(self) -> tuple[float, float]:
        return runqueue_seconds(p for pids in self.groups.values() for p in pids), runqueue_seconds(self.generator)

    def start(self) -> CpuWindow:
        self.t0 = time.monotonic()
        self.c0 = {name: cpu_seconds(pids) for name, pids in self.groups.items()}
        self.m0 = machine_busy_seconds()
        self.p0 = cpus_busy_seconds()
        self.w0 = self._waits()
        return self

    def stop(self) -> CpuWindow:
        self.wall = time.monotonic() - self.t0
        self.used = {name: cpu_seconds(pids) - self.c0[name] for name, pids in self.groups.items()}
        self.machine = machine_busy_seconds() - self.m0
        self.percpu = [b - a for a, b in zip(self.p0, cpus_busy_seconds(), strict=False)]
        self.waits = [b - a for a, b in zip(self.w0, self._waits(), strict=True)]
        return self

    def figures(self, generator_seconds: float) -> dict:
        """Cores used over the window; 'other' is the machine's busy time less server and generator."""
        wall, used, machine = self.wall, self.used, self.machine
        server = sum(used.values())
        return {
            "server_cpu": round(server / wall, 3),
            "server_cpu_by": {name: round(v / wall, 3) for name, v in used.items()},
            "other_cpu": round(max(0.0, machine - server - generator_seconds) / wall, 3),
            "server_wait": round(self.waits[0] / wall, 3),
            **({"generator_wait": round(self.waits[1] / wall, 3)} if self.generator else {}),
            **{f"{who}_cores_busy": round(sum(self.percpu[c] for c in cpus if c < len(self.percpu)) / wall, 3)
               for who, cpus in zip(("server", "generator"), self.layout, strict=True) if cpus},
            "window_seconds": round(wall, 3),
        }


def run_wrk(url: str, connections: int, duration: int, cpus: set[int] | None,
            nice: int = 0) -> tuple[str, float, float, int]:
    """wrk -t1 for `duration` (whole) seconds; returns (output, wall, its CPU seconds from wait4, exit code)."""
    argv = [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
            "--timeout", "10s", url]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=preexec(cpus, nice), text=True)
    killer = threading.Timer(duration + 30, proc.kill)
    killer.start()
    try:
        output = proc.stdout.read()
        _, status, rusage = os.wait4(proc.pid, 0)  # rusage of the exited child: its own CPU time
    finally:
        killer.cancel()
        proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return output, time.monotonic() - t0, rusage.ru_utime + rusage.ru_stime, proc.returncode


# -- the lab's driver, step by step ------------------------------------------------------------------
class Driver:
    """loadtests.drive in step mode: it waits for a line on stdin before each cell."""

    def __init__(self, plan_path: Path, log_path: Path, nice: int = 0):
        self.log = open(log_path, "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.drive", str(plan_path)], cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, start_new_session=True, text=True, bufsize=1,
            preexec_fn=preexec(None, nice),  # the plan's cpu_affinity pins it
        )
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            event = parse_driver_line(line)
            if event is not None:
                self.events.put(event)
        self.events.put({"event": "exit"})

    def wait_for(self, kind: str, cell: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StackError(f"driver: no '{kind}' for {cell} within {timeout:.0f}s")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event["event"] == "exit":
                raise StackError(f"driver exited (code {self.proc.wait()}) before '{kind}' for {cell}")
            if event.get("cell") != cell:
                continue
            if event["event"] == kind:
                return event
            if event["event"] == "cell-error":
                return event

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.log.close()


def lab_once(driver: Driver, cell: dict, groups: dict, history_dir: Path, waited: bool = False) -> dict:
    """Release one driver cell, sample the server's CPU over its load, and read its figures."""
    if not waited:
        driver.wait_for("cell-wait", cell["id"], 60)
    window = CpuWindow(groups, driver.proc.pid).start()
    driver.go()
    driver.wait_for("cell-start", cell["id"], 30)
    loaded = driver.wait_for("cell-loaded", cell["id"], cell["time_limit"] + 60)
    window.stop()  # the load phase is over: final reads and the history write are not load
    if loaded["event"] == "cell-error":
        return {"error": loaded.get("error")}
    done = driver.wait_for("cell-done", cell["id"], 120)
    if done["event"] == "cell-error":
        return {"error": done.get("error")}
    stats = done["stats"]
    cpu = window.figures(stats.get("generator_cpu_seconds") or 0.0)
    if stats.get("generator_wait_share") is not None:  # the driver's own, over exactly its load phase
        cpu["generator_wait"] = stats["generator_wait_share"]
    history = None
    history_file = history_dir / f"{cell['file']}.jsonl"
    if cell["record"] and history_file.exists():
        history = read_history(history_file)
        history_file.unlink()  # thousands of entries per measurement; the figures are what matters
    return {**lab_figures(stats, history), "generator_cpu": stats.get("generator_cpu_share"), **cpu,
            "driver_rps": stats.get("rps"), "timed_out": stats.get("timed_out"),
            "after_load_seconds": stats.get("final_reads_and_write_seconds"), "error": None}


# -- one scenario ------------------------------------------------------------------------------------
class ScenarioBench:
    def __init__(self, scenario: Scenario, run_dir: Path, opts: dict):
        self.scenario = scenario
        self.dir = run_dir / scenario.name
        self.opts = opts
        self.record = {"error": None, "cells": {}}

    def server_groups(self, stack: NativeStack) -> dict[str, list[int]]:
        pids = stack.pids
        return {
            "app": [pid for name, pid in pids.items() if name.startswith("app-")],
            "nginx": [pid for name, pid in pids.items() if name == "nginx"],
            "sidecars": [pid for name, pid in pids.items() if name in ("redis", "memcached", "manager")],
        }

    def sequence(self) -> list[tuple[int, str, str, bool | None]]:
        """(rep, cell, tool, record): lab and wrk alternate; the order flips every repetition."""
        seq = []
        for rep in range(self.opts["repeat"]):
            for cell in CELLS:
                steps = [("lab", True), ("wrk", None)]
                if self.opts["record_cost"]:
                    steps.append(("lab", False))
                if rep % 2:
                    steps.reverse()
                seq += [(rep, cell, tool, rec) for tool, rec in steps]
        return seq

    def lab_cell(self, rep: int, cell: str, record: bool | None, key: str, budget: int) -> dict:
        """A driver cell with a request budget, as the matrix runs them (a time-limited cell would
        end in the driver's post-timeout drain and is not how the lab measures)."""
        kind, strategy, path = CELLS[cell]
        variant = "warmup" if record is None else ("rec" if record else "norec")
        return {
            "id": f"{cell}/r{rep}/{variant}", "file": f"{cell}-r{rep}-{variant}", "strategy": strategy,
            "check": kind, "path": path.format(key=key), "key": key, "requests": budget,
            "time_limit": max(CELL_TIME_LIMIT_S, 10 * self.opts["duration"]), "record": record is not False,
        }

    def run(self) -> dict:
        s = self.scenario
        started = time.monotonic()
        try:
            with NativeStack(s, self.dir) as stack:
                self.record["startup_seconds"] = round(time.monotonic() - started, 3)
                self.record["url"] = stack.url
                self.measure(stack)
                stopping = time.monotonic()
            self.record["stop_seconds"] = round(time.monotonic() - stopping, 3)
        except StackError as exc:
            self.record["error"] = str(exc).splitlines()[0]
            console.print(f"[bold red]{s.name}: {exc}[/]")
        for cell in self.record["cells"].values():
            cell["summary"] = summarize(cell["measurements"])
        return self.record

    def measure(self, stack: NativeStack) -> None:
        opts = self.opts
        groups = self.server_groups(stack)
        pin([pid for pids in groups.values() for pid in pids], opts["server_cpus"], opts["nice"])
        run_key = f"bench-{self.dir.parent.name}-{self.scenario.name}"
        seq = self.sequence()
        keys = {i: f"{run_key}-{cell}-r{rep}-{tool}{'' if rec is None else int(rec)}"
                for i, (rep, cell, tool, rec) in enumerate(seq)}
        # Warm-up and calibration: one second of wrk per URL; the lab's budget is then sized to run
        # about --duration seconds (unless --requests fixes it).
        calibration = {}
        for cell in CELLS:
            output, *_ = run_wrk(stack.url + CELLS[cell][2].format(key=f"{run_key}-warmup"), opts["users"], 1,
                                 opts["generator_cpus"], opts["nice"])
            try:
                calibration[cell] = parse_wrk(output)["rps"]
            except ValueError:
                calibration[cell] = 0.0
        self.record["calibration_rps"] = {c: round(v, 1) for c, v in calibration.items()}
        budgets = {c: opts["requests"] or max(MIN_BUDGET, round(v * opts["duration"])) for c, v in calibration.items()}
        plan_cells = [self.lab_cell(0, "hello", None, f"{run_key}-warmup", 300)]
        plan_cells += [self.lab_cell(rep, cell, rec, keys[i], budgets[cell])
                       for i, (rep, cell, tool, rec) in enumerate(seq) if tool == "lab"]
        plan = {"host": stack.url, "instances": stack.instance_urls, "users": opts["users"], "out": str(self.dir),
                "cells": plan_cells, "step": True,
                "cpu_affinity": sorted(opts["generator_cpus"]) if opts["generator_cpus"] else None}
        plan_path = self.dir / "bench-plan.json"
        plan_path.write_text(json.dumps(plan, indent=1))
        (self.dir / "wrk").mkdir(exist_ok=True)
        driver = Driver(plan_path, self.dir / "logs" / "driver.log", opts["nice"])
        try:
            driver.wait_for("cell-wait", plan_cells[0]["id"], 120)
            self.record["driver_startup_seconds"] = round(time.monotonic() - driver.started, 3)
            # warm-up: imports, pools, first connections
            lab_once(driver, plan_cells[0], groups, self.dir / "history", waited=True)
            lab_cells = iter(plan_cells[1:])
            for i, (rep, cell, tool, rec) in enumerate(seq):
                entry = self.record["cells"].setdefault(
                    cell, {"path": CELLS[cell][2], "measurements": []})
                if tool == "lab":
                    m = lab_once(driver, next(lab_cells), groups, self.dir / "history")
                else:
                    m = self.wrk_once(stack.url + CELLS[cell][2].format(key=keys[i]), groups,
                                      self.dir / "wrk" / f"{cell}-r{rep}.txt")
                m.update(rep=rep, tool=tool, record=rec)
                entry["measurements"].append(m)
                console.print(f"  {self.scenario.name:<17} {cell:<13} r{rep} {tool}"
                              f"{'' if rec is None else (' rec' if rec else ' norec'):<6} "
                              f"{_fmt(m.get('rps'), 0):>7} rps  gen {_fmt(m.get('generator_cpu'), 2)}  "
                              f"server {_fmt(m.get('server_cpu'), 2)}  other {_fmt(m.get('other_cpu'), 2)}"
                              + (f"  [red]{m['error']}[/]" if m.get("error") else ""), highlight=False)
        finally:
            driver.stop()

    def wrk_once(self, url: str, groups: dict, raw_path: Path) -> dict:
        window = CpuWindow(groups).start()
        output, wall, cpu, code = run_wrk(url, self.opts["users"], self.opts["duration"], self.opts["generator_cpus"],
                                          self.opts["nice"])
        cpu_window = window.stop().figures(cpu)
        raw_path.write_text(output)
        try:
            w = parse_wrk(output)
        except ValueError as exc:
            return {"error": f"wrk exit {code}: {exc}: {output[-300:]}"}
        return {"rps": round(w["rps"], 1), "p50_ms": w.get("p50_ms"), "p99_ms": w.get("p99_ms"),
                "requests": w["requests"] - w["non_2xx"], "errors": w["errors"], "seconds": w["seconds"],
                "generator_cpu": round(cpu / wall, 3), **cpu_window, "error": None}


def summarize(measurements: list[dict]) -> dict:
    ok = [m for m in measurements if not m.get("error")]
    groups = {"lab": [m for m in ok if m["tool"] == "lab" and m["record"]],
              "lab_norec": [m for m in ok if m["tool"] == "lab" and m["record"] is False],
              "wrk": [m for m in ok if m["tool"] == "wrk"]}
    out = {name: {f: spread(m.get(f) for m in ms) for f in FIGURES} for name, ms in groups.items() if ms}
    by_rep = {}
    for m in ok:
        key = "wrk" if m["tool"] == "wrk" else ("lab" if m["record"] else "lab_norec")
        by_rep.setdefault(m["rep"], {})[key] = m
    ratios = [r["lab"]["rps"] / r["wrk"]["rps"] for r in by_rep.values()
              if "lab" in r and "wrk" in r and r["lab"].get("rps") and r["wrk"].get("rps")]
    record = [r["lab"]["driver_rps"] / r["lab_norec"]["driver_rps"] for r in by_rep.values()
              if "lab" in r and "lab_norec" in r and r["lab"].get("driver_rps") and r["lab_norec"].get("driver_rps")]
    out["ratio_lab_wrk"] = spread(ratios)
    out["ratio_record"] = spread(record)
    return out


# -- ceilings ----------------------------------------------------------------------------------------
NGINX_ALONE = """# nginx answering by itself: the ceiling of anything behind it (rendered by workerlab bench).
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/client_body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        # A JSON body like the app's, so the lab's recording parses what it parses under /hello
        # (a body without a charset would send locust through charset detection instead).
        location / {{ default_type application/json; return 200 '{{"value":"hello"}}'; }}
    }}
}}
"""


def _wait_port(port: int, child: Child, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if not child.alive():
                raise child.failure("exited during start-up") from None
            time.sleep(0.05)
    raise child.failure(f"not listening after {timeout:.0f}s")


def nginx_ceiling(run_dir: Path, opts: dict) -> dict:
    folder = run_dir / "nginx-alone"
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_ALONE.format(dir=folder, port=port))
    child = Child("nginx-alone", [find_binary("nginx"), "-p", str(folder), "-c", str(conf), "-e",
                                  str(folder / "error.log")], folder / "nginx.log")
    child.start()
    runs = []
    try:
        _wait_port(port, child)
        pin([child.proc.pid], opts["server_cpus"], opts["nice"])
        run_wrk(f"http://127.0.0.1:{port}/", opts["users"], 1, opts["generator_cpus"], opts["nice"])  # warm-up
        for rep in range(opts["repeat"]):
            window = CpuWindow({"nginx": [child.proc.pid]}).start()
            output, wall, cpu, _ = run_wrk(f"http://127.0.0.1:{port}/", opts["users"], opts["duration"],
                                           opts["generator_cpus"], opts["nice"])
            (folder / f"wrk-r{rep}.txt").write_text(output)
            w = parse_wrk(output)
            runs.append({"rps": round(w["rps"], 1), "p50_ms": w.get("p50_ms"), "p99_ms": w.get("p99_ms"),
                         "generator_cpu": round(cpu / wall, 3), **window.stop().figures(cpu)})
        lab = lab_generator_ceiling(folder, f"http://127.0.0.1:{port}", {"nginx": [child.proc.pid]}, opts)
    finally:
        child.stop()
    return {"runs": runs, "rps": spread(r["rps"] for r in runs), "lab": lab}


def lab_generator_ceiling(folder: Path, url: str, groups: dict, opts: dict) -> dict:
    """The lab's driver against nginx alone: nginx answers far faster than one Python core can ask,
    so this is what the lab's generator can do at most, with and without recording."""
    budget = 4000 * opts["duration"]
    cells = [{"id": "lab/warmup", "file": "lab-warmup", "strategy": "nginx", "check": "path", "path": "/",
              "key": "k", "requests": 300, "time_limit": CELL_TIME_LIMIT_S, "record": True}]
    for rep in range(opts["repeat"]):
        for record in (True, False):
            cells.append({"id": f"lab/r{rep}/{int(record)}", "file": f"lab-r{rep}-{int(record)}", "strategy": "nginx",
                          "check": "path", "path": "/", "key": "k", "requests": budget,
                          "time_limit": max(CELL_TIME_LIMIT_S, 10 * opts["duration"]), "record": record})
    plan = {"host": url, "instances": [url], "users": opts["users"], "out": str(folder), "cells": cells, "step": True,
            "cpu_affinity": sorted(opts["generator_cpus"]) if opts["generator_cpus"] else None}
    (folder / "logs").mkdir(exist_ok=True)
    plan_path = folder / "lab-plan.json"
    plan_path.write_text(json.dumps(plan, indent=1))
    driver = Driver(plan_path, folder / "logs" / "driver.log", opts["nice"])
    runs = []
    try:
        for i, cell in enumerate(cells):
            m = lab_once(driver, cell, groups, folder / "history")
            if i:
                runs.append({"record": cell["record"], **m})
    finally:
        driver.stop()
    ok = [r for r in runs if not r.get("error")]

    def cost_us(r):  # generator CPU per request, in microseconds
        return round(1e6 * r["generator_cpu"] / r["driver_rps"], 1) if r.get("driver_rps") else None

    return {
        "runs": runs,
        "rps_recording": spread(r["driver_rps"] for r in ok if r["record"]),
        "rps_not_recording": spread(r["driver_rps"] for r in ok if not r["record"]),
        "generator_cpu": spread(r["generator_cpu"] for r in ok),
        "cpu_us_per_request_recording": spread(cost_us(r) for r in ok if r["record"]),
        "cpu_us_per_request_not_recording": spread(cost_us(r) for r in ok if not r["record"]),
    }


def redis_ceiling(run_dir: Path, opts: dict) -> dict:
    folder = run_dir / "redis-alone"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    child = Child("redis-alone", [find_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", str(folder), "--logfile", ""],
                  folder / "redis.log")
    child.start()
    runs = []
    bench_bin = shutil.which("redis-benchmark")
    if not bench_bin:
        child.stop()
        return {"error": "redis-benchmark not found (Debian package redis-tools)"}
    try:
        _wait_port(port, child)
        pin([child.proc.pid], opts["server_cpus"], opts["nice"])
        cpus = opts["generator_cpus"]
        for rep in range(opts["repeat"]):
            out = subprocess.run([bench_bin, "-h", "127.0.0.1", "-p", str(port), "-t", "incr", "-q",
                                  "-n", str(opts["redis_requests"]), "-c", str(opts["users"])],
                                 capture_output=True, text=True, timeout=120,
                                 preexec_fn=preexec(cpus, opts["nice"]))
            (folder / f"redis-benchmark-r{rep}.txt").write_text(out.stdout + out.stderr)
            runs.append(parse_redis_benchmark(out.stdout))
    finally:
        child.stop()
    return {"runs": runs, "ops": spread(r["ops"] for r in runs), "requests": opts["redis_requests"]}


# -- checker speed -----------------------------------------------------------------------------------
def synthetic_counter(n: int, processes: int = 4) -> list[dict]:
    """n acknowledged increments of one shared, correct counter, 50 clients, plus final reads."""
    history = []
    for i in range(n):
        t = i * 0.0005
        history.append({"client": f"u{i % 50}", "req": i, "op": "incr", "phase": "load", "invoke": t,
                        "complete": t + 0.02, "status": 200, "value": i + 1, "pid": 1000 + i % processes,
                        "tid": 1, "instance": "i1", "worker_class": "sync"})
    end = n * 0.0005 + 1
    for j in range(processes * 4):
        history.append({"client": f"final{j}", "req": n + j, "op": "read", "phase": "final", "invoke": end,
                        "complete": end + 0.001, "status": 200, "value": n, "pid": 1000 + j % processes,
                        "tid": 1, "instance": "i1", "worker_class": "sync"})
    return history


def synthetic_isolation(n: int) -> list[dict]:
    history = []
    for i in range(n):
        token = f"u{i % 50}-{i:012x}"
        history.append({"client": f"u{i % 50}", "req": i, "op": "echo", "phase": "load", "invoke": i * 0.0005,
                        "complete": i * 0.0005 + 0.02, "status": 200, "sent": token, "value": token,
                        "pid": 1000 + i % 4, "tid": 1, "instance": "i1", "worker_class": "sync"})
    return history


def _profile(fn, history) -> list[list]:
    profiler = cProfile.Profile()
    profiler.runcall(fn, history)
    stats = pstats.Stats(profiler)
    rows = []
    for (file, line, name), (_, _, _, cumulative, _) in stats.stats.items():
        if "checkers.py" in file or "history.py" in file:
            rows.append([f"{Path(file).name}:{line} {name}", round(cumulative, 3)])
    return sorted(rows, key=lambda r: -r[1])[:8]


def _timed(fn, *args, gc_enabled: bool = True) -> tuple[float, object]:
    import gc

    was = gc.isenabled()
    if not gc_enabled:
        gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn(*args)
        return round(time.perf_counter() - t0, 3), result
    finally:
        if was:
            gc.enable()


def checker_speed(entries: int) -> dict:
    """Time check_counter / check_isolation on `entries` synthetic entries, as the matrix runs them (garbage
    collector on), and again with the collector off plus realtime_violations alone, to say where time goes."""
    from loadtests.checkers import check_counter, check_isolation, realtime_violations

    out: dict = {"entries": entries, "target_seconds": CHECKER_TARGET_S, "profile": {}}
    t0 = time.perf_counter()
    history = synthetic_counter(entries)
    out["generate_seconds"] = round(time.perf_counter() - t0, 3)
    out["check_counter_seconds"], result = _timed(check_counter, history)
    out["check_counter_verdict"] = sorted(result.verdict)
    out["check_counter_seconds_gc_off"], _ = _timed(check_counter, history, gc_enabled=False)
    acks = [e for e in history if e["phase"] == "load"]
    out["realtime_violations_seconds"], _ = _timed(realtime_violations, acks)
    out["realtime_violations_seconds_gc_off"], _ = _timed(realtime_violations, acks, gc_enabled=False)
    if out["check_counter_seconds"] > CHECKER_TARGET_S:
        out["profile"]["check_counter"] = _profile(check_counter, history)
    del history, result, acks
    history = synthetic_isolation(entries)
    out["check_isolation_seconds"], result = _timed(check_isolation, history)
    out["check_isolation_verdict"] = sorted(result.verdict)
    out["check_isolation_seconds_gc_off"], _ = _timed(check_isolation, history, gc_enabled=False)
    if out["check_isolation_seconds"] > CHECKER_TARGET_S:
        out["profile"]["check_isolation"] = _profile(check_isolation, history)
    del history, result
    out["met"] = max(out["check_counter_seconds"], out["check_isolation_seconds"]) <= CHECKER_TARGET_S
    return out


# -- matrix time ---------------------------------------------------------------------------------------
def results_files(*results_dirs: Path) -> list[tuple[Path, dict]]:
    """Every readable worker-lab results.json with load times, oldest first."""
    found = []
    for path in {p for d in results_dirs for p in d.glob("*/results.json")}:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("schema") == "worker-lab/results/v1" and any(
                (c.get("throughput") or {}).get("load_seconds") for c in data.get("cells", [])):
            found.append((path.stat().st_mtime, path, data))
    return [(path, data) for _, path, data in sorted(found, key=lambda f: f[:2])]


def _drain_after_timeout() -> float:
    """loadtests.drive's pause after a cell that hit its time limit (read, not imported: it monkey-patches)."""
    match = re.search(r"^DRAIN_AFTER_TIMEOUT_S\s*=\s*([\d.]+)", (ROOT / "loadtests" / "drive.py").read_text(), re.M)
    return float(match.group(1)) if match else 0.0


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
        proc = subprocess.run([sys.executable, "-m", "workerlab", "run", "--quiet", "--output", str(folder), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=3600)
        wall = time.monotonic() - t0
        found = sorted(folder.glob("*/results.json"))
        data = json.loads(found[-1].read_text()) if found else {}
        cells = data.get("cells", [])
        load = sum((c.get("throughput") or {}).get("load_seconds") or 0 for c in cells)
        out[mode] = {"kind": "measured", "seconds": round(wall, 1), "cells": len(cells), "exit_code": proc.returncode,
                     "breakdown": {"load": round(load, 1),
                                   "start_up_driver_final_reads_checking": round(wall - load, 1)}}
    return out


# -- report ----------------------------------------------------------------------------------------------
def _fmt(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _med(s: dict | None, digits: int = 0, spread_: bool = True) -> str:
    if not s:
        return "-"
    if not spread_ or s["n"] == 1:
        return _fmt(s["median"], digits)
    return f"{_fmt(s['median'], digits)} [{_fmt(s['min'], digits)}–{_fmt(s['max'], digits)}]"


def guard_analysis(scenarios: dict) -> dict:
    """Does results.py's guard (generator_bound: generator CPU share >= GENERATOR_BOUND_SHARE) catch the
    lab measurements that fell short of wrk? Compared with a guard on demand = CPU share + run-queue wait."""
    points = []
    for name, r in scenarios.items():
        for cell, c in r.get("cells", {}).items():
            by_rep = {}
            for m in c["measurements"]:
                if not m.get("error"):
                    by_rep.setdefault(m["rep"], {})["wrk" if m["tool"] == "wrk" else
                                                     ("lab" if m["record"] else "norec")] = m
            for rep in by_rep.values():
                if "lab" in rep and "wrk" in rep and rep["wrk"].get("rps") and rep["lab"].get("rps"):
                    lab = rep["lab"]
                    points.append([lab["generator_cpu"], round(lab["rps"] / rep["wrk"]["rps"], 3), name, cell,
                                   lab.get("generator_wait")])
    threshold = GENERATOR_BOUND_SHARE

    def rule(share_only: bool) -> dict:
        def bound(p):
            return (p[0] or 0) + (0 if share_only else (p[4] or 0)) >= threshold
        low = [p for p in points if p[1] < HELLO_TARGET]
        return {"flagged": sum(1 for p in points if bound(p)),
                "short_of_wrk": len(low), "short_of_wrk_flagged": sum(1 for p in low if bound(p)),
                "flagged_but_faithful": sum(1 for p in points if bound(p) and p[1] >= HELLO_TARGET)}

    share, demand = rule(True), rule(False)
    return {
        "threshold": threshold,
        "points": points,
        "share_rule": share,
        "demand_rule": demand,
        "max_generator_cpu": max((p[0] for p in points if p[0] is not None), default=None),
        "verdict": (f"{len(points)} lab measurements, {share['short_of_wrk']} under {HELLO_TARGET} of wrk; "
                    f"the CPU-share guard (>= {threshold}) flags {share['flagged']} and catches "
                    f"{share['short_of_wrk_flagged']} of those short ones; share + run-queue wait >= {threshold} "
                    f"flags {demand['flagged']} and catches {demand['short_of_wrk_flagged']}"),
    }


def noise(scenarios: dict) -> dict:
    ms = [m for r in scenarios.values() for c in r.get("cells", {}).values() for m in c["measurements"]
          if m.get("other_cpu") is not None]
    noisy = [m for m in ms if m["other_cpu"] > NOISE_OTHER_CPU]
    return {"threshold_cores": NOISE_OTHER_CPU, "measurements": len(ms), "noisy": len(noisy),
            "other_cpu": spread(m["other_cpu"] for m in ms)}


def targets(scenarios: dict, checker: dict | None) -> dict:
    hello = {n: (r["cells"].get("hello", {}).get("summary") or {}).get("ratio_lab_wrk") for n, r in scenarios.items()
             if r.get("cells")}
    record = [(n, cell, (c.get("summary") or {}).get("ratio_record")) for n, r in scenarios.items()
              for cell, c in r.get("cells", {}).items()]
    out = {
        f"hello_lab_wrk_{HELLO_TARGET}": {
            "per_scenario": {n: s["median"] if s else None for n, s in hello.items()},
            "met": all(s and s["median"] >= HELLO_TARGET for s in hello.values()) if hello else None},
        f"record_ratio_{RECORD_TARGET}": {
            "per_cell": {f"{n}/{cell}": s["median"] if s else None for n, cell, s in record},
            "median": spread(s["median"] for _, _, s in record if s),
            "met": (all(s["median"] >= RECORD_TARGET for _, _, s in record if s) if any(s for *_, s in record)
                    else None)},
    }
    if checker:
        out["checker_5s"] = {"seconds": max(checker["check_counter_seconds"], checker["check_isolation_seconds"]),
                             "met": checker["met"]}
    return out


def print_report(data: dict) -> None:
    st = data["settings"]
    layout = (f"pinned: server on CPUs {st['server_cpus']}, generator on {st['generator_cpus']}" if st["pin"]
              else "not pinned")
    table = Table(title=f"lab (locust, recording) vs wrk: median [min–max] of {st['repeat']}; CPU in cores ({layout})")
    for col in ("scenario", "cell", "lab rps", "wrk rps", "lab/wrk", "lab p50/p99 ms", "wrk p50/p99 ms",
                "gen CPU lab/wrk", "lab gen wait", "server CPU lab/wrk", "other CPU", "rec/norec"):
        table.add_column(col)
    for name, r in data["scenarios"].items():
        if r.get("error"):
            table.add_row(name, "-", f"[red]{r['error']}[/]")
            continue
        for cell, c in r["cells"].items():
            s = c.get("summary") or {}
            lab, wrk = s.get("lab", {}), s.get("wrk", {})
            ratio = s.get("ratio_lab_wrk")
            color = "green" if ratio and ratio["median"] >= HELLO_TARGET else "yellow"
            table.add_row(
                name, cell, _med(lab.get("rps")), _med(wrk.get("rps")),
                f"[{color}]{_med(ratio, 2)}[/]",
                f"{_med(lab.get('p50_ms'), 1, False)}/{_med(lab.get('p99_ms'), 1, False)}",
                f"{_med(wrk.get('p50_ms'), 1, False)}/{_med(wrk.get('p99_ms'), 1, False)}",
                f"{_med(lab.get('generator_cpu'), 2, False)}/{_med(wrk.get('generator_cpu'), 2, False)}",
                _med(lab.get("generator_wait"), 2, False),
                f"{_med(lab.get('server_cpu'), 2, False)}/{_med(wrk.get('server_cpu'), 2, False)}",
                f"{_med(lab.get('other_cpu'), 2, False)}/{_med(wrk.get('other_cpu'), 2, False)}",
                _med(s.get("ratio_record"), 3),
            )
    console.print(table)
    c = data.get("ceilings") or {}
    if c:
        console.print(f"ceilings: nginx alone (wrk) {_fmt(c.get('nginx_rps_wrk'))} rps; redis INCR "
                      f"(redis-benchmark) {_fmt(c.get('redis_incr_ops'))} ops/s; best /hello through the stack (wrk) "
                      f"{_fmt(c.get('hello_rps_wrk'))} rps ({c.get('hello_rps_wrk_scenario')})")
        lab = (c.get("detail") or {}).get("nginx", {}).get("lab") or {}
        if lab.get("rps_recording"):
            console.print(f"the lab's generator against nginx alone (its own ceiling): "
                          f"{_med(lab['rps_recording'])} rps recording, {_med(lab.get('rps_not_recording'))} not; "
                          f"generator CPU "
                          f"{_med(lab.get('generator_cpu'), 2)} of a core = "
                          f"{_med(lab.get('cpu_us_per_request_recording'), 0, False)} µs/request recording, "
                          f"{_med(lab.get('cpu_us_per_request_not_recording'), 0, False)} not")
    ch = data.get("checker")
    if ch:
        mark = "[green]ok[/]" if ch["met"] else f"[red]over {CHECKER_TARGET_S:.0f}s[/]"
        console.print(f"checkers on {ch['entries']:,} synthetic entries: check_counter {ch['check_counter_seconds']}s, "
                      f"check_isolation {ch['check_isolation_seconds']}s ({mark}; generating them took "
                      f"{ch['generate_seconds']}s)")
        console.print(f"  with the garbage collector off: check_counter {ch.get('check_counter_seconds_gc_off')}s, "
                      f"check_isolation {ch.get('check_isolation_seconds_gc_off')}s; realtime_violations alone "
                      f"{ch.get('realtime_violations_seconds')}s ({ch.get('realtime_violations_seconds_gc_off')}s "
                      "collector off)")
        for name, rows in (ch.get("profile") or {}).items():
            console.print(f"  {name} slowest parts: " + "; ".join(f"{f} {s}s" for f, s in rows[:5]))
    n = data.get("noise")
    if n and n["noisy"]:
        console.print(f"[yellow]{n['noisy']} of {n['measurements']} measurements ran while other processes used more "
                      f"than {n['threshold_cores']} cores (median {_med(n['other_cpu'], 2)}): the machine was shared, "
                      "so absolute figures are low and ratios noisy[/]")
    g = data.get("guard")
    if g:
        console.print(f"saturation guard (generator_bound at >= {g['threshold']} of a core): {g['verdict']}")
    t = data.get("targets") or {}
    rec = t.get(f"record_ratio_{RECORD_TARGET}") or {}
    if rec.get("median"):
        console.print(f"recording cost: rps with recording / without, median over cells {_med(rec['median'], 3)} "
                      f"(target >= {RECORD_TARGET})")
    mt = data.get("matrix_times")
    if mt:
        for mode in ("default", "quick"):
            if mode in mt:
                m = mt[mode]
                console.print(f"matrix {mode}: {m['kind']} {m['seconds']:.0f}s for {m['cells']} cells - "
                              + ", ".join(f"{k} {v:.0f}s" for k, v in m["breakdown"].items()))
        console.print(f"  [dim]{mt.get('basis')}[/]")
        for o in mt.get("observed_runs") or []:
            console.print(f"  [dim]observed: run {o['run']} ({o['status']}) {o['cells']} cells at {o['requests']} "
                          f"requests in {o['wall_seconds']:.0f}s, of which load {o['load_seconds']:.0f}s[/]")


# -- the command -----------------------------------------------------------------------------------------
def _gunicorn_scenarios(names: list[str]) -> dict[str, Scenario]:
    scenarios = load_scenarios()
    gunicorn = {n: s for n, s in scenarios.items() if s.server == "gunicorn"}
    if not names:
        return gunicorn
    try:
        chosen = pick(names, scenarios, "scenario")
    except UnknownName as exc:
        raise click.UsageError(str(exc)) from None
    others = [n for n in chosen if n not in gunicorn]
    if others:
        raise click.UsageError(f"bench measures gunicorn scenarios only; not: {', '.join(others)}")
    return {n: gunicorn[n] for n in chosen}


def _versions() -> dict:
    import importlib.metadata

    def first_line(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return None

    return {"wrk": first_line(["wrk", "-v"]), "redis-benchmark": first_line(["redis-benchmark", "--version"]),
            "nginx": first_line([find_binary("nginx"), "-v"]), "locust": importlib.metadata.version("locust"),
            "python": platform.python_version()}


def _cpu_layout(do_pin: bool) -> tuple[set[int] | None, set[int] | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if not do_pin or len(cpus) < 2:
        return None, None
    return set(cpus[:-1]), {cpus[-1]}


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


@click.command()
@click.option("--scenario", "-s", multiple=True, help="gunicorn scenario(s), repeatable or comma-separated; "
                                                      "default every gunicorn scenario.")
@click.option("--repeat", "-r", type=click.IntRange(1, 20), default=None,
              help=f"Repetitions of every measurement [default {DEFAULTS['repeat']}, --quick {QUICK['repeat']}].")
@click.option("--duration", "-d", type=click.IntRange(1, 60), default=None,
              help=f"Seconds per measurement, lab and wrk [default {DEFAULTS['duration']}].")
@click.option("--requests", "-n", type=click.IntRange(50, 1_000_000), default=None,
              help="Give the lab a request budget instead of --duration (wrk still runs --duration).")
@click.option("--users", "-u", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Concurrent users (locust) = connections (wrk).")
@click.option("--quick", is_flag=True, help="One repetition of short measurements.")
@click.option("--pin/--no-pin", default=True, show_default=True,
              help="Pin the generator to the last CPU and the server to the others.")
@click.option("--nice", type=click.IntRange(-20, 19), default=0, show_default=True,
              help="Run server and generators at this nice value (negative needs root): on a shared machine, "
                   "keeps other work from starving the measurement.")
@click.option("--record-cost/--no-record-cost", default=True, show_default=True,
              help="Also measure every lab cell without recording.")
@click.option("--ceilings/--no-ceilings", default=True, show_default=True,
              help="Measure nginx alone and redis INCR alone.")
@click.option("--checker-entries", type=click.IntRange(0, 10_000_000), default=DEFAULTS["checker_entries"],
              show_default=True, help="Synthetic history entries for the checker timing (0 skips it).")
@click.option("--matrix-times", is_flag=True,
              help="Run the default matrix and --quick end to end and time them (~15 min) instead of estimating.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR, show_default=True,
              help="Folder for results/<timestamp>/bench.json.")
def bench(scenario, repeat, duration, requests, users, quick, pin, nice, record_cost, ceilings, checker_entries,
          matrix_times, output):
    """Measure the lab's own throughput against wrk, the cost of recording, ceilings, checker speed, matrix time."""
    from .strategies import STRATEGIES

    names = [v for value in scenario for v in value.split(",") if v]
    scenarios = _gunicorn_scenarios(names)
    missing = missing_binaries() + [b for b in ("wrk", "redis-benchmark") if not shutil.which(b)]
    if missing:
        raise click.ClickException(f"missing {', '.join(missing)}: apt-get install nginx redis-server memcached "
                                   "redis-tools wrk")
    server_cpus, generator_cpus = _cpu_layout(pin)
    CpuWindow.layout = (server_cpus, generator_cpus)
    base = QUICK if quick else DEFAULTS
    opts = {
        "repeat": repeat or base["repeat"], "duration": duration or base.get("duration", DEFAULTS["duration"]),
        "requests": requests, "users": users, "pin": bool(server_cpus), "server_cpus": server_cpus,
        "generator_cpus": generator_cpus, "quick": quick, "record_cost": record_cost, "nice": nice,
        "redis_requests": base.get("redis_requests", DEFAULTS["redis_requests"]), "checker_entries": checker_entries,
    }
    run_dir = new_run_dir(output)
    data = {
        "schema": SCHEMA, "run_id": run_dir.name, "status": "running", "started": now_iso(), "finished": None,
        "settings": {**{k: v for k, v in opts.items() if k not in ("server_cpus", "generator_cpus")},
                     "server_cpus": sorted(server_cpus) if server_cpus else None,
                     "generator_cpus": sorted(generator_cpus) if generator_cpus else None,
                     "scenarios": list(scenarios)},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
        "versions": _versions(),
        "scenarios": {}, "ceilings": {}, "checker": None, "matrix_times": None,
    }
    path = run_dir / "bench.json"
    write_json(path, data)
    console.print(f"bench: {len(scenarios)} scenario(s) x {len(CELLS)} cells x {opts['repeat']} repetition(s), "
                  f"{opts['duration']}s each, {users} users/connections, "
                  f"{'pinned' if opts['pin'] else 'not pinned'}; load average {os.getloadavg()[0]:.1f}")
    status = "failed"
    try:
        for s in scenarios.values():
            console.print(f"[bold cyan]{s.name}[/] - {s.description}")
            data["scenarios"][s.name] = ScenarioBench(s, run_dir, opts).run()
            write_json(path, data)
        hello = {n: (r.get("cells", {}).get("hello", {}).get("summary") or {}).get("wrk", {}).get("rps")
                 for n, r in data["scenarios"].items()}
        hello = {n: s["median"] for n, s in hello.items() if s}
        best = max(hello, key=hello.get) if hello else None
        data["ceilings"] = {"hello_rps_wrk": hello.get(best), "hello_rps_wrk_scenario": best,
                            "nginx_rps_wrk": None, "redis_incr_ops": None, "lab_rps_nginx": None,
                            "lab_rps_nginx_not_recording": None, "detail": {}}
        if ceilings:
            console.print("[bold cyan]ceilings[/]: nginx alone, redis INCR alone")
            nginx = nginx_ceiling(run_dir, opts)
            redis = redis_ceiling(run_dir, opts)
            lab = nginx.get("lab") or {}
            data["ceilings"].update(nginx_rps_wrk=(nginx.get("rps") or {}).get("median"),
                                    redis_incr_ops=(redis.get("ops") or {}).get("median"),
                                    lab_rps_nginx=(lab.get("rps_recording") or {}).get("median"),
                                    lab_rps_nginx_not_recording=(lab.get("rps_not_recording") or {}).get("median"),
                                    detail={"nginx": nginx, "redis": redis})
            write_json(path, data)
        if checker_entries:
            console.print(f"[bold cyan]checkers[/] on {checker_entries:,} synthetic entries")
            data["checker"] = checker_speed(checker_entries)
            write_json(path, data)
        if matrix_times:
            console.print("[bold cyan]matrix times[/]: running the default matrix and --quick (takes a while)")
            data["matrix_times"] = measure_matrix(run_dir)
        else:
            data["matrix_times"] = estimate_matrix([RESULTS_DIR, output], data["scenarios"], load_scenarios(),
                                                   STRATEGIES)
        data["guard"] = guard_analysis(data["scenarios"])
        data["noise"] = noise(data["scenarios"])
        data["targets"] = targets(data["scenarios"], data["checker"])
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        data["status"] = status
        data["finished"] = now_iso()
        data["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        write_json(path, data)
    print_report(data)
    console.print(f"bench.json: {path}")
    if status == "interrupted":
        sys.exit(130)
