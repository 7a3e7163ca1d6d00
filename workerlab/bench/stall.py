"""The stall: what coordinated omission hides. One gunicorn worker is stopped (SIGSTOP) for `pause_s` in the
middle of a cell's load, then continued; once under closed-loop load (users send as answers come) and once at
a fixed rate (every request has a scheduled start). The fixed-rate cell's corrected percentiles (from the
scheduled start) show the stall; the closed-loop figures hide most of it, because the blocked users simply
stop sending while it lasts.

A kind of the one run loop (workerlab/runner.py): one step, sync-x1's stack, two cells.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from loadtests.history import read_history
from loadtests.protocol import CellPlan, Plan

from ..driver import DriverSession
from ..latency import latency
from ..procs import StackError
from ..runner import Step, run_steps
from ..scenarios import Scenario, load_scenarios
from ..stacks.native import NativeStack

SCENARIO = "sync-x1"
# Few users, many requests: the users a stall blocks are under 1 % of the requests, so the closed-loop p99
# does not see them, while every request scheduled during the stall waits for it.
USERS, RATE, SECONDS, PAUSE_AT_S = 4, 80.0, 10.0, 2.0


class StallRun:
    def __init__(self, folder: Path, pause_s: float, scenario: Scenario | None = None):
        self.folder = folder
        self.pause_s = pause_s
        self.scenario = scenario or load_scenarios()[SCENARIO]
        self.result: dict = {"scenario": self.scenario.name, "pause_s": pause_s, "users": USERS, "rate": RATE,
                             "cells": {}, "error": None}
        self.timers: list[threading.Timer] = []

    def run(self) -> dict:
        run_steps(self)
        return self.result

    def steps(self):
        yield Step("stall", self.scenario, self.folder)

    def open_stack(self, step: Step) -> NativeStack:
        return NativeStack(step.scenario, step.folder)

    def stack_up(self, step: Step, stack, seconds: float) -> None:
        pass

    def plan(self, step: Step, stack) -> Plan:
        requests = int(RATE * SECONDS)
        cells = [CellPlan(id=name, file=name, strategy="hello", check="path", path="/hello", key=name,
                          requests=requests, time_limit=6 * SECONDS, users=USERS, rate=rate)
                 for name, rate in (("closed-loop", None), ("fixed-rate", RATE))]
        return Plan(host=stack.url, instances=stack.instance_urls, users=USERS, out=str(step.folder), cells=cells)

    def on_event(self, step: Step, stack, driver: DriverSession, event: dict) -> None:
        if event["event"] == "load-start":
            worker = stack.app_worker_pids(0)[0]
            stop = threading.Timer(PAUSE_AT_S, os.kill, (worker, signal.SIGSTOP))
            cont = threading.Timer(PAUSE_AT_S + self.pause_s, os.kill, (worker, signal.SIGCONT))
            self.timers += [stop, cont]
            stop.start()
            cont.start()
        elif event["event"] == "cell-done":
            load = [e for e in read_history(step.folder / "history" / f"{event['cell']}.jsonl")
                    if e.get("phase") == "load"]
            stats = event["stats"]
            self.result["cells"][event["cell"]] = {"latency": latency(load), "rps": stats.get("rps"),
                                                   "late": stats.get("late"), "dropped": stats.get("dropped")}
        elif event["event"] == "cell-error":
            self.result["cells"][event["cell"]] = {"error": event.get("error")}

    def events_ended(self, step: Step) -> None:
        for timer in self.timers:  # a worker is never left stopped
            timer.join()

    def unfinished(self, step: Step, cell: CellPlan, why: str) -> None:
        self.result["cells"][cell.id] = {"error": why}

    def stack_failed(self, step: Step, error: StackError) -> None:
        self.result["error"] = str(error).splitlines()[0]

    def step_done(self, step: Step) -> None:
        pass


def measure_stall(folder: Path, pause_s: float = 2.0) -> dict:
    """{"pause_s", "cells": {"closed-loop": {"latency": {"uncorrected", ...}}, "fixed-rate": {...}}}."""
    return StallRun(folder, pause_s).run()
