"""The run loop: bring up each (scenario, fault) stack, drive its strategies under the paced load
(loadtests/driver.py, paced cells), inject the fault on a thread at the driver's recorded moment, judge
each cell's history (loadtests/fault_checkers.py) and keep faults.json and faults.md up to date.

Schema ``worker-lab/faults/v2``::

    {"schema", "run_id", "status", "started", "finished", "versions": {...},
     "settings": {"scenarios", "faults", "strategies", "routes", "users", ...,
                  "blocks": [{"scenario", "route", "label", "faults", "strategies"}]},  # what ran (coverage.py)
     "faults": {name: {"summary", "at_s", "stack": {...}}},
     "cells": [{"scenario", "route", "fault", "strategy", "scope",
                "expected": {"verdict", "label", "reason"}, "observed": {"verdict", "label"} | null,
                "match": bool | null,                  # null: not judged ("any") or skipped
                "counts": {lost, acknowledged, attempted, failed_during_fault (= dropped_during_fault
                           + errored_during_fault), recover_s, ...},
                "injected": {"at_s", "pid", "restart_s", ...},  # what was done, when (seconds since load start),
                                                        # and the evidence it happened (faults/evidence.py)
                "examples", "notes", "history",
                "error",                               # also: the fault is not proven to have happened
                "skipped",
                "control"}],                           # the fault hits a store the strategy does not use
     "summary": {"cells", "judged", "matched", "mismatched",   # judged: neither a control nor skipped
                 "controls", "controls_differ", "errors", "skipped", "dropped", "errored"}}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from loadtests.fault_checkers import check_counter_fault, check_sessions_fault
from loadtests.history import process_of, read_history
from loadtests.protocol import CellPlan, Plan
from loadtests.verdicts import ANY

from .. import interrupt
from ..driver import DriverSession
from ..matrix import new_run_dir
from ..procs import StackError
from ..progress import phase
from ..results import now_iso, versions
from ..runfile import FAULTS_SCHEMA, write_json
from ..runner import Step, run_steps
from ..stacks.native import NativeStack
from .coverage import Block, restarts_gunicorn
from .expected import FaultExpectation, expect_fault, fault_label
from .injectors import Injection
from .present import describe_cell, markdown
from .shape import LoadShape
from .shim import build_shim
from .table import SCOPES, Fault

SCHEMA = FAULTS_SCHEMA
UNPROVEN = "the fault is not proven to have happened"  # the start of a cell's error when its evidence is missing
CELL_TIME_LIMIT_S = 30.0
# nginx's requests a kept-alive upstream connection (the matrix's 10 is NativeStack's default). A request that
# fails on a reused connection is retried by nginx, on a new one it is a 502: the over-count expected when a
# worker is killed holding a written request rests on that retry, and a turnover every 10 requests would put
# about 1 killed request in 10 on a new connection.
FAULT_KEEPALIVE_REQUESTS = 100
INJECT_JOIN_S = 30.0


def _dead_processes(history: list[dict]) -> set[str]:
    dead = set()
    for e in history:
        pid = e.get("pid")
        if not isinstance(pid, int):
            continue
        try:
            gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            gone = True
        if gone:
            dead.add(process_of(e))
    return dead


def judge(strategy: str, fault: Fault, history: list[dict], fault_at: float):
    scope, _ = SCOPES[strategy]
    if scope == "session":
        return check_sessions_fault(history, fault_at=fault_at)
    dead = _dead_processes(history) if scope == "process" else set()
    return check_counter_fault(history, scope=scope, fault_at=fault_at, moment=fault.moment, dead=dead)


@dataclass
class FaultStep:
    """One fault under one scenario and route: its judged cells, and the injection under way."""

    block: Block
    fault: Fault
    expectations: dict[str, FaultExpectation]
    injection: Injection | None = None
    thread: threading.Thread | None = None


class FaultRun:
    """Runs the (scenario, route) x fault x strategy cells of its blocks and keeps faults.json up to date."""

    def __init__(self, blocks: list[Block], shape: LoadShape, run_dir: Path,
                 say: Callable[[str], None] = lambda _: None):
        self.blocks = blocks
        faults = list({f.name: f for b in blocks for f in b.faults}.values())
        self.shape = shape
        self.run_dir = run_dir
        self.say = say
        self.path = run_dir / "faults.json"
        self.data = {
            "schema": SCHEMA, "run_id": run_dir.name, "status": "running", "started": now_iso(), "finished": None,
            "settings": {"scenarios": list(dict.fromkeys(b.scenario.name for b in blocks)),
                         "faults": [f.name for f in faults],
                         "strategies": list(dict.fromkeys(s for b in blocks for s in b.strategies)),
                         "routes": list(dict.fromkeys(b.route.name for b in blocks)),
                         "blocks": [b.as_dict() for b in blocks], **shape.as_dict()},
            "versions": {},  # probed once faults.json exists
            "faults": {f.name: {"summary": f.summary, "at_s": shape.at_s if f.moment else 0.0,
                                "restarts_gunicorn": restarts_gunicorn(f), "stack": f.stack_settings()}
                       for f in faults},
            "cells": [], "summary": {},
        }
        with interrupt.shielded():  # a run folder always holds a readable faults.json, finished at exit
            self.write()
            interrupt.on_exit(self.finish_if_running)
        self.data["versions"] = versions()
        self.write()

    def run(self) -> dict:
        status = "failed"
        try:
            run_steps(self)
            status = "complete"
        finally:
            with interrupt.shielded():
                self.data["status"] = "interrupted" if interrupt.received() else status
                self.data["finished"] = now_iso()
                self.write()
        return self.data

    def finish_if_running(self) -> None:
        if self.data["status"] == "running":
            self.data["status"] = "interrupted" if interrupt.received() else "failed"
            self.data["finished"] = now_iso()
            self.write()

    def add(self, cell: dict) -> None:
        self.data["cells"].append(cell)
        self.write()
        self.say(describe_cell(cell))

    def record(self, block: Block, fault: Fault, strategy: str, expectation: FaultExpectation, *,
               result=None, info: dict | None = None, history: str | None = None, error: str | None = None) -> None:
        judged = expectation.verdict is not None and ANY not in expectation.verdict
        observed = result.verdict if result is not None else None
        match = (observed == expectation.verdict) if (judged and observed is not None and not error) else None
        if judged and error:
            match = False
        self.add({
            "scenario": block.scenario.name, "route": block.route.name, "fault": fault.name, "strategy": strategy,
            "scope": SCOPES[strategy][0],
            "expected": {"verdict": sorted(expectation.verdict or []), "label": expectation.label,
                         "reason": expectation.reason},
            "observed": {"verdict": sorted(observed), "label": fault_label(observed)} if observed else None,
            "match": match,
            "counts": result.counts if result else {},
            "examples": result.examples if result else [],
            "notes": result.notes if result else [],
            "injected": info or {},
            "history": history,
            "error": error,
            "skipped": expectation.verdict is None,
            "control": expectation.control,
        })

    # -- the faults as a kind of run (workerlab/runner.py) -----------------------------------------------
    def steps(self):
        for block in self.blocks:
            folder = self.run_dir / block.scenario.name / ("" if not block.route.direct else block.route.name)
            for fault in block.faults:
                self.say(f"[bold cyan]{block.label} / {fault.name}[/] - {fault.summary}")
                cells = []
                for strategy in block.strategies:
                    e = expect_fault(strategy, fault, block.scenario, block.route)
                    if e.verdict is None:
                        self.record(block, fault, strategy, e)
                    else:
                        cells.append((strategy, e))
                if cells:
                    yield Step(f"{block.label}/{fault.name}", block.scenario, folder / fault.name,
                               FaultStep(block, fault, dict(cells)))

    def open_stack(self, step: Step) -> NativeStack:
        fault: Fault = step.context.fault
        env = {**dict(fault.app_env), "LAB_FAULT_POINTS": str(step.folder / "faultpoints")}
        (step.folder / "faultpoints").mkdir(parents=True, exist_ok=True)
        redis_env = {"LD_PRELOAD": str(build_shim(step.folder / "shim"))} if fault.host_crash else None
        return NativeStack(step.scenario, step.folder, direct=step.context.block.route.direct,
                           redis_persistence=fault.redis_persistence,
                           memcached_mb=fault.memcached_mb, memcached_item_max=fault.memcached_item_max,
                           app_extra_env=env, redis_env=redis_env, keepalive_requests=FAULT_KEEPALIVE_REQUESTS)

    def stack_up(self, step: Step, stack, seconds: float) -> None:
        pass

    def plan(self, step: Step, stack) -> Plan:
        shape = self.shape
        run_key = f"{self.run_dir.name}-{step.scenario.name}-{step.context.block.route.name}-{step.context.fault.name}"
        holds = {}
        if step.context.fault.holds_load:  # made before the driver starts: no cell's load can end before its fault
            for strategy in step.context.expectations:
                holds[strategy] = step.folder / "holds" / strategy
                holds[strategy].parent.mkdir(parents=True, exist_ok=True)
                holds[strategy].touch()
        return Plan(host=stack.url, instances=stack.instance_urls, users=shape.users, out=str(step.folder),
                    hold_after_load=True,  # the final reads wait until the fault has run its course
                    cells=[CellPlan(id=strategy, strategy=strategy, scope=SCOPES[strategy][0],
                                    check="session" if SCOPES[strategy][0] == "session" else "counter",
                                    key=f"{run_key}-{strategy}", requests=shape.requests,
                                    per_user_rps=shape.per_user_rps, time_limit=CELL_TIME_LIMIT_S,
                                    hold_load=str(holds[strategy]) if strategy in holds else None)
                           for strategy in step.context.expectations])

    def on_event(self, step: Step, stack, driver: DriverSession, event: dict) -> None:
        fs: FaultStep = step.context
        strategy, kind = event["cell"], event["event"]
        if kind == "load-start":
            phase("fault", f"{step.label}/{strategy}")
            hold = step.folder / "holds" / strategy if fs.fault.holds_load else None
            fs.injection = Injection(stack, event["t0"], threading.Event(), hold=hold,
                                     store_unused=not fs.fault.used_by(strategy))
            fs.thread = threading.Thread(target=self._inject, args=(fs.fault, fs.injection), daemon=True)
            fs.thread.start()
        elif kind == "cell-loaded":
            if fs.injection is not None:
                fs.injection.stop.set()
                fs.thread.join(INJECT_JOIN_S)
                if fs.thread.is_alive():
                    fs.injection.error = f"the fault was still running {INJECT_JOIN_S:.0f}s after the load"
            driver.go()
        elif kind == "cell-done":
            self.judge_cell(fs.block, fs.fault, strategy, fs.expectations[strategy], step.folder, fs.injection)
            fs.injection = fs.thread = None
        elif kind == "cell-error":
            if fs.injection is not None:
                fs.injection.stop.set()
            _release(step.folder / "holds" / strategy)
            self.record(fs.block, fs.fault, strategy, fs.expectations[strategy], error=f"driver: {event['error']}")
            fs.injection = fs.thread = None

    def events_ended(self, step: Step) -> None:
        fs: FaultStep = step.context
        for strategy in fs.expectations:  # the driver is gone: no hold may outlive it
            _release(step.folder / "holds" / strategy)
        if fs.injection is not None:
            fs.injection.stop.set()
        if fs.thread is not None:
            fs.thread.join(INJECT_JOIN_S)  # a restart in progress must finish before the stack stops

    def unfinished(self, step: Step, cell: CellPlan, why: str) -> None:
        fs: FaultStep = step.context
        self.record(fs.block, fs.fault, cell.strategy, fs.expectations[cell.strategy], error=why)

    def step_done(self, step: Step) -> None:
        pass

    def stack_failed(self, step: Step, error: StackError) -> None:
        fs: FaultStep = step.context
        done = {c["strategy"] for c in self.data["cells"] if c["scenario"] == step.scenario.name
                and c["route"] == fs.block.route.name and c["fault"] == fs.fault.name}
        for strategy, e in fs.expectations.items():
            if strategy not in done:
                self.record(fs.block, fs.fault, strategy, e, error=f"stack: {str(error).splitlines()[0]}")

    def _inject(self, fault: Fault, inj: Injection) -> None:
        try:
            if fault.moment:
                delay = inj.t0 + self.shape.at_s - time.monotonic()
                if delay > 0 and inj.stop.wait(delay):
                    inj.error = "the load ended before the fault was due"
                    return
            fault.inject(inj)
        except Exception as exc:  # the cell is recorded with the error, the run goes on
            inj.error = f"{type(exc).__name__}: {exc}"
        finally:
            _release(inj.hold)  # the fault has run its course: the load may end

    def judge_cell(self, block, fault, strategy, expectation, fault_dir, inj: Injection | None) -> None:
        history_file = fault_dir / "history" / f"{strategy}.jsonl"
        rel = str(history_file.relative_to(self.run_dir))
        if inj is None or inj.at is None:
            error = (inj.error if inj else None) or "the fault was not injected"
            self.record(block, fault, strategy, expectation, info=inj.info if inj else None, history=rel,
                        error=error)
            return
        unproven = fault.proof(inj.info)
        if unproven and not inj.error:
            inj.error = f"{UNPROVEN}: {unproven}"
        history = read_history(history_file)
        result = judge(strategy, fault, history, inj.at - inj.t0)
        self.record(block, fault, strategy, expectation, result=result, info=inj.info, history=rel,
                    error=inj.error)

    def write(self) -> None:
        cells = self.data["cells"]
        judged = [c for c in cells if c["match"] is not None and not c["control"]]
        controls = [c for c in cells if c["control"] and not c["skipped"]]
        self.data["summary"] = {
            "cells": len(cells),
            "judged": len(judged),
            "matched": sum(1 for c in judged if c["match"]),
            "mismatched": sum(1 for c in judged if not c["match"]),
            "controls": len(controls),
            "controls_differ": sum(1 for c in controls if c["match"] is False),
            "errors": sum(1 for c in cells if c["error"]),
            "skipped": sum(1 for c in cells if c["skipped"]),
            # requests failed during a fault: dropped without an answer, or answered with an HTTP error
            "dropped": sum(c["counts"].get("dropped_during_fault", 0) for c in cells),
            "errored": sum(c["counts"].get("errored_during_fault", 0) for c in cells),
        }
        write_json(self.path, self.data)
        (self.run_dir / "faults.md").write_text(markdown(self.data))


def _release(hold: Path | None) -> None:
    """Let a held load end (CellPlan.hold_load)."""
    if hold is not None:
        hold.unlink(missing_ok=True)


def run_faults(blocks: list[Block], shape: LoadShape, output: Path,
               say: Callable[[str], None] = lambda _: None) -> tuple[FaultRun, bool]:
    """Run and return (the run, interrupted?)."""
    with interrupt.shielded():  # the folder and its first faults.json come together
        run_dir = new_run_dir(output)
        run = FaultRun(blocks, shape, run_dir, say)
    try:
        run.run()
    except KeyboardInterrupt:
        return run, True
    return run, False
