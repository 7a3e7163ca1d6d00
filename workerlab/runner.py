"""The one run loop - stack, plan, driver, judge - for every kind of run (the matrix, the faults, the bench).

A *kind* says, in the spirit of Jepsen's test map ({:db :client :nemesis :generator :checker}):
- `steps()`: the stacks to bring up, one `Step` each, and `open_stack(step)`: how;
- `plan(step, stack)`: what the driver runs against it;
- `on_event(step, stack, driver, event)`: what each driver event means - judge a cell, inject a fault;
- `events_ended(step)`, `unfinished(step, cell, why)`, `stack_failed(step, error)`: how a step ends,
  and `step_done(step)` once its stack has stopped.
No kind starts a stack or a driver, reads an event line or stops a process itself: `run_steps` does,
and reports the phases (workerlab/progress.py) on the way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loadtests.protocol import CellPlan, Plan

from .driver import DriverSession
from .procs import ManagedStack, StackError
from .progress import phase
from .scenarios import Scenario


@dataclass
class Step:
    label: str  # what phase markers and messages name: "sync-x4", "sync-x4/worker-kill"
    scenario: Scenario
    folder: Path
    context: Any = None  # what the kind keeps for the step (a fault and its cells)


class Kind(Protocol):
    def steps(self): ...
    def open_stack(self, step: Step) -> ManagedStack: ...
    def stack_up(self, step: Step, stack, seconds: float) -> None: ...
    def plan(self, step: Step, stack) -> Plan: ...
    def on_event(self, step: Step, stack, driver: DriverSession, event: dict) -> None: ...
    def events_ended(self, step: Step) -> None: ...
    def unfinished(self, step: Step, cell: CellPlan, why: str) -> None: ...
    def stack_failed(self, step: Step, error: StackError) -> None: ...
    def step_done(self, step: Step) -> None: ...


def run_steps(kind: Kind) -> None:
    for step in kind.steps():
        phase("stack-start", step.label)
        started = time.monotonic()
        try:
            with kind.open_stack(step) as stack:
                kind.stack_up(step, stack, time.monotonic() - started)
                phase("stack-up", step.label)
                with DriverSession(kind.plan(step, stack), step.folder) as driver:
                    try:
                        for event in driver.events():
                            kind.on_event(step, stack, driver, event)
                    finally:
                        kind.events_ended(step)
                for cell in list(driver.pending.values()):
                    kind.unfinished(step, cell, f"the load generator exited early (see {driver.log_path})")
                phase("stack-stop", step.label)
        except StackError as exc:
            kind.stack_failed(step, exc)
            continue
        kind.step_done(step)
