"""The bench as a kind of the one run loop (workerlab/runner.py): each gunicorn scenario's stack, then nginx
alone, is a step; the driver runs the lab's cells one at a time (plan.step) and wrk takes its turns between
them, so lab and wrk measure the same running stack alternately.

The kind says what to plan (the lab's cells, sized by a second of wrk per URL) and what each driver event
means (start the CPU window and let the cell go, stop the window when the load ends, read the figures when
the cell is done); it starts no stack, no driver and reads no event line itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.history import read_history
from loadtests.protocol import CellPlan, Plan

from ..driver import DriverSession
from ..matrix import CELL_TIME_LIMIT_S
from ..procs import StackError
from ..progress import phase
from ..runner import Step, run_steps
from ..scenarios import Scenario
from ..stacks.native import NativeStack
from .ceilings import NginxAlone, lab_ceiling_summary
from .cpu import CpuWindow, pin
from .measure import CELLS, MIN_BUDGET, run_wrk, summarize, wrk_once
from .parse import lab_figures, parse_wrk
from .present import _fmt, console

NGINX_ALONE = "nginx-alone"  # the step that measures the lab's generator against nginx by itself


@dataclass
class LabTurns:
    """One step's driver cells and what runs between them: `before[cell id]` (wrk turns) runs when the
    cell waits for its go; `done(cell, figures)` gets each cell's figures; `after` runs after the last."""

    groups: dict[str, list[int]]
    history_dir: Path
    done: Callable[[CellPlan, dict], None]
    before: dict[str, list[Callable[[], None]]] = field(default_factory=dict)
    after: list[Callable[[], None]] = field(default_factory=list)
    window: CpuWindow | None = None

    def on_event(self, driver: DriverSession, event: dict) -> None:
        cell = driver.plan.cell(event["cell"])
        kind = event["event"]
        if kind == "cell-wait":
            for turn in self.before.pop(cell.id, []):
                turn()
            self.window = CpuWindow(self.groups, driver.proc.pid).start()
            driver.go()
        elif kind == "cell-loaded":
            self.window.stop()  # the load phase is over: final reads and the history write are not load
        elif kind in ("cell-done", "cell-error"):
            figures = self.figures(cell, event["stats"]) if kind == "cell-done" else {"error": event.get("error")}
            self.window = None
            self.done(cell, figures)
            if not driver.pending:
                for turn in self.after:
                    turn()

    def figures(self, cell: CellPlan, stats: dict) -> dict:
        cpu = self.window.figures(stats.get("generator_cpu_seconds") or 0.0)
        if stats.get("generator_wait_share") is not None:  # the driver's own, over exactly its load phase
            cpu["generator_wait"] = stats["generator_wait_share"]
        history = None
        history_file = self.history_dir / f"{cell.file}.jsonl"
        if cell.record and history_file.exists():
            history = read_history(history_file)
            history_file.unlink()  # thousands of entries per measurement; the figures are what matters
        return {**lab_figures(stats, history), "generator_cpu": stats.get("generator_cpu_share"), **cpu,
                "driver_rps": stats.get("rps"), "timed_out": stats.get("timed_out"),
                "after_load_seconds": stats.get("final_reads_and_write_seconds"), "error": None}


def server_groups(stack: NativeStack) -> dict[str, list[int]]:
    pids = stack.pids
    return {
        "app": [pid for name, pid in pids.items() if name.startswith("app-")],
        "nginx": [pid for name, pid in pids.items() if name == "nginx"],
        "sidecars": [pid for name, pid in pids.items() if name in ("redis", "memcached", "manager")],
    }


class BenchRun:
    """The bench's measurements as steps of the run loop; `save()` is called whenever a record changed."""

    def __init__(self, scenarios: dict[str, Scenario], run_dir: Path, opts: dict, data: dict, save: Callable[[], None],
                 ceilings: bool):
        self.scenarios = scenarios
        self.run_dir = run_dir
        self.opts = opts
        self.data = data
        self.save = save
        self.ceilings = ceilings
        self.turns: dict[str, LabTurns] = {}
        self.plans: dict[str, Plan] = {}
        self.stopping: float | None = None  # when the step's last event came: its stack stops from then

    def run(self) -> None:
        run_steps(self)

    # -- the steps --------------------------------------------------------------------------------------
    def steps(self):
        for s in self.scenarios.values():
            phase("bench", s.name)
            console.print(f"[bold cyan]{s.name}[/] - {s.description}")
            self.data["scenarios"][s.name] = {"error": None, "cells": {}}
            yield Step(s.name, s, self.run_dir / s.name)
        if self.ceilings:
            phase("bench", NGINX_ALONE)
            console.print("[bold cyan]ceilings[/]: nginx alone, redis INCR alone")
            yield Step(NGINX_ALONE, next(iter(self.scenarios.values())), self.run_dir / NGINX_ALONE)

    def open_stack(self, step: Step):
        if step.label == NGINX_ALONE:
            return NginxAlone(step.folder)
        return NativeStack(step.scenario, step.folder)

    def stack_up(self, step: Step, stack, seconds: float) -> None:
        if step.label == NGINX_ALONE:
            self.nginx_alone_up(step, stack)
        else:
            self.scenario_up(step, stack, seconds)

    def plan(self, step: Step, stack) -> Plan:
        return self.plans[step.label]

    def on_event(self, step: Step, stack, driver: DriverSession, event: dict) -> None:
        if event["event"] == "cell-wait" and step.label != NGINX_ALONE and "driver_startup_seconds" not in \
                self.record(step):
            self.record(step)["driver_startup_seconds"] = round(time.monotonic() - driver.started, 3)
        self.turns[step.label].on_event(driver, event)

    def events_ended(self, step: Step) -> None:
        self.stopping = time.monotonic()

    def unfinished(self, step: Step, cell: CellPlan, why: str) -> None:
        self.turns[step.label].done(cell, {"error": why})

    def stack_failed(self, step: Step, error: StackError) -> None:
        if step.label == NGINX_ALONE:
            self.data["ceilings"]["detail"]["nginx"] = {"error": str(error).splitlines()[0]}
        else:
            self.record(step)["error"] = str(error).splitlines()[0]
        console.print(f"[bold red]{step.label}: {error}[/]")
        self.save()

    def step_done(self, step: Step) -> None:
        """After the stack of a scenario stopped: the stop time and the summaries."""
        if step.label == NGINX_ALONE:
            return
        record = self.record(step)
        if self.stopping is not None:
            record["stop_seconds"] = round(time.monotonic() - self.stopping, 3)
        for cell in record["cells"].values():
            cell["summary"] = summarize(cell["measurements"])
        self.save()

    # -- a gunicorn scenario ----------------------------------------------------------------------------
    def record(self, step: Step) -> dict:
        return self.data["scenarios"][step.label]

    def sequence(self) -> list[tuple[int, str, str, bool | None]]:
        """(rep, cell, tool, record): lab and wrk alternate; the order flips every repetition."""
        seq = []
        for rep in range(self.opts["repeat"]):
            for cell in CELLS:
                turns = [("lab", True), ("wrk", None)]
                if self.opts["record_cost"]:
                    turns.append(("lab", False))
                if rep % 2:
                    turns.reverse()
                seq += [(rep, cell, tool, rec) for tool, rec in turns]
        return seq

    def lab_cell(self, rep: int, cell: str, record: bool | None, key: str, budget: int) -> CellPlan:
        """A driver cell with a request budget, as the matrix runs them (a time-limited cell would
        end in the driver's post-timeout drain and is not how the lab measures)."""
        kind, strategy, path = CELLS[cell]
        variant = "warmup" if record is None else ("rec" if record else "norec")
        return CellPlan(id=f"{cell}/r{rep}/{variant}", file=f"{cell}-r{rep}-{variant}", strategy=strategy,
                        check=kind, path=path.format(key=key), key=key, requests=budget,
                        time_limit=max(CELL_TIME_LIMIT_S, 10 * self.opts["duration"]), record=record is not False)

    def scenario_up(self, step: Step, stack: NativeStack, seconds: float) -> None:
        opts, record, folder = self.opts, self.record(step), step.folder
        record["startup_seconds"] = round(seconds, 3)
        record["url"] = stack.url
        groups = server_groups(stack)
        pin([pid for pids in groups.values() for pid in pids], opts["server_cpus"], opts["nice"])
        run_key = f"bench-{self.run_dir.name}-{step.label}"
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
        record["calibration_rps"] = {c: round(v, 1) for c, v in calibration.items()}
        budgets = {c: opts["requests"] or max(MIN_BUDGET, round(v * opts["duration"])) for c, v in calibration.items()}
        (folder / "wrk").mkdir(parents=True, exist_ok=True)
        warmup = self.lab_cell(0, "hello", None, f"{run_key}-warmup", 300)  # imports, pools, first connections
        cells, wrk_turns, labels = [warmup], [], {warmup.id: None}
        turns = LabTurns(groups, folder / "history", lambda cell, m: self.measured(step, labels[cell.id], m))
        for rep, cell, tool, rec in self.sequence():
            key = f"{run_key}-{cell}-r{rep}-{tool}{'' if rec is None else int(rec)}"
            label = (rep, cell, tool, rec)
            record["cells"].setdefault(cell, {"path": CELLS[cell][2], "measurements": []})
            if tool == "wrk":
                url, raw = stack.url + CELLS[cell][2].format(key=key), folder / "wrk" / f"{cell}-r{rep}.txt"
                wrk_turns.append(lambda url=url, raw=raw, label=label:
                                 self.measured(step, label, wrk_once(url, groups, raw, opts)))
                continue
            lab = self.lab_cell(rep, cell, rec, key, budgets[cell])
            labels[lab.id] = label
            turns.before[lab.id], wrk_turns = wrk_turns, []
            cells.append(lab)
        turns.after = wrk_turns  # a wrk turn after the last lab cell
        self.turns[step.label] = turns
        self.plans[step.label] = Plan(host=stack.url, instances=stack.instance_urls, users=opts["users"],
                                      out=str(folder), cells=cells, step=True, nice=opts["nice"],
                                      cpu_affinity=sorted(opts["generator_cpus"]) if opts["generator_cpus"] else None)

    def measured(self, step: Step, label: tuple | None, m: dict) -> None:
        if label is None:  # the warm-up
            return
        rep, cell, tool, rec = label
        m.update(rep=rep, tool=tool, record=rec)
        self.record(step)["cells"][cell]["measurements"].append(m)
        console.print(f"  {step.label:<17} {cell:<13} r{rep} {tool}"
                      f"{'' if rec is None else (' rec' if rec else ' norec'):<6} "
                      f"{_fmt(m.get('rps'), 0):>7} rps  gen {_fmt(m.get('generator_cpu'), 2)}  "
                      f"server {_fmt(m.get('server_cpu'), 2)}  other {_fmt(m.get('other_cpu'), 2)}"
                      + (f"  [red]{m['error']}[/]" if m.get("error") else ""), highlight=False)
        self.save()

    # -- nginx alone: wrk's ceiling, then the lab's generator against it ---------------------------------
    def nginx_alone_up(self, step: Step, stack: NginxAlone) -> None:
        opts = self.opts
        pin([stack.pid], opts["server_cpus"], opts["nice"])
        nginx = self.data["ceilings"]["detail"]["nginx"] = stack.wrk_ceiling(opts)
        budget = 4000 * opts["duration"]
        cells = [CellPlan(id="lab/warmup", file="lab-warmup", strategy="nginx", check="path", path="/", key="k",
                          requests=300, time_limit=CELL_TIME_LIMIT_S)]
        for rep in range(opts["repeat"]):
            for rec in (True, False):
                cells.append(CellPlan(id=f"lab/r{rep}/{int(rec)}", file=f"lab-r{rep}-{int(rec)}", strategy="nginx",
                                      check="path", path="/", key="k", requests=budget,
                                      time_limit=max(CELL_TIME_LIMIT_S, 10 * opts["duration"]), record=rec))
        runs: list[dict] = []

        def done(cell: CellPlan, m: dict) -> None:
            if cell.id != "lab/warmup":
                runs.append({"record": cell.record, **m})
                nginx["lab"] = lab_ceiling_summary(runs)
                self.save()

        self.turns[step.label] = LabTurns({"nginx": [stack.pid]}, step.folder / "history", done)
        self.plans[step.label] = Plan(host=stack.url, instances=[stack.url], users=opts["users"], out=str(step.folder),
                                      cells=cells, step=True, nice=opts["nice"],
                                      cpu_affinity=sorted(opts["generator_cpus"]) if opts["generator_cpus"] else None)
