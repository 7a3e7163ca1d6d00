"""Measuring one scenario: wrk and the lab's driver (step by step) taking turns on one running stack."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from loadtests.history import read_history
from loadtests.protocol import CellPlan, Plan

from .. import procs
from ..driver import DriverSession
from ..matrix import CELL_TIME_LIMIT_S
from ..procs import StackError
from ..scenarios import Scenario
from ..stack import NativeStack
from .cpu import CpuWindow, pin, preexec
from .parse import lab_figures, parse_wrk, spread
from .present import _fmt, console

# name -> (kind of driver cell, strategy, path template); {key} is a fresh key per measurement.
CELLS = {
    "hello": ("path", "hello", "/hello"),
    "redis-incr": ("counter", "redis-incr", "/s/redis-incr/incr?key={key}"),
    "naive-global": ("counter", "naive-global", "/s/naive-global/incr?key={key}"),
}
MIN_BUDGET = 200
FIGURES = ("rps", "p50_ms", "p99_ms", "generator_cpu", "generator_wait", "server_cpu", "server_wait", "other_cpu")


def run_wrk(url: str, connections: int, duration: int, cpus: set[int] | None,
            nice: int = 0) -> tuple[str, float, float, int]:
    """wrk -t1 for `duration` (whole) seconds; returns (output, wall, its CPU seconds from wait4, exit code)."""
    argv = [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
            "--timeout", "10s", url]
    t0 = time.monotonic()
    proc = procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=preexec(cpus, nice),
                       text=True)
    killer = threading.Timer(duration + 30, proc.kill)
    killer.start()
    try:
        output = proc.stdout.read()
        _, status, rusage = os.wait4(proc.pid, 0)  # rusage of the exited child: its own CPU time
        procs.untrack(proc)
    except BaseException:
        procs.kill_session(proc)
        raise
    finally:
        killer.cancel()
        proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return output, time.monotonic() - t0, rusage.ru_utime + rusage.ru_stime, proc.returncode


def lab_once(driver: DriverSession, cell: CellPlan, groups: dict, history_dir: Path, waited: bool = False) -> dict:
    """Release one driver cell, sample the server's CPU over its load, and read its figures."""
    if not waited:
        driver.wait_for("cell-wait", cell.id, 60)
    window = CpuWindow(groups, driver.proc.pid).start()
    driver.go()
    driver.wait_for("cell-start", cell.id, 30)
    loaded = driver.wait_for("cell-loaded", cell.id, cell.time_limit + 60)
    window.stop()  # the load phase is over: final reads and the history write are not load
    if loaded["event"] == "cell-error":
        return {"error": loaded.get("error")}
    done = driver.wait_for("cell-done", cell.id, 120)
    if done["event"] == "cell-error":
        return {"error": done.get("error")}
    stats = done["stats"]
    cpu = window.figures(stats.get("generator_cpu_seconds") or 0.0)
    if stats.get("generator_wait_share") is not None:  # the driver's own, over exactly its load phase
        cpu["generator_wait"] = stats["generator_wait_share"]
    history = None
    history_file = history_dir / f"{cell.file}.jsonl"
    if cell.record and history_file.exists():
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

    def lab_cell(self, rep: int, cell: str, record: bool | None, key: str, budget: int) -> CellPlan:
        """A driver cell with a request budget, as the matrix runs them (a time-limited cell would
        end in the driver's post-timeout drain and is not how the lab measures)."""
        kind, strategy, path = CELLS[cell]
        variant = "warmup" if record is None else ("rec" if record else "norec")
        return CellPlan(id=f"{cell}/r{rep}/{variant}", file=f"{cell}-r{rep}-{variant}", strategy=strategy,
                        check=kind, path=path.format(key=key), key=key, requests=budget,
                        time_limit=max(CELL_TIME_LIMIT_S, 10 * self.opts["duration"]), record=record is not False)

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
        plan = Plan(host=stack.url, instances=stack.instance_urls, users=opts["users"], out=str(self.dir),
                    cells=plan_cells, step=True,
                    cpu_affinity=sorted(opts["generator_cpus"]) if opts["generator_cpus"] else None)
        (self.dir / "wrk").mkdir(exist_ok=True)
        with DriverSession(plan, self.dir, preexec=preexec(None, opts["nice"])) as driver:  # affinity: the plan's
            driver.wait_for("cell-wait", plan_cells[0].id, 120)
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
