"""The mutants run: every mutant's cell run once clean (its control, in results.json) and once with the
mutant armed (in mutants.json), through the one run loop (workerlab/runner.py) as a kind of matrix run.

A mutant is *caught* when its clean control matched its expected verdict, and its mutated cell did not:
the mutant's rule (table.py: a verdict word, and a count above 0) says no there. A mutant "caught" in a
cell that also fails clean proves nothing: it is recorded as not caught, with the control's verdict.

Schema ``worker-lab/mutants/v1`` (``mutants.json`` beside the controls' ``results.json``)::

    {"schema", "run_id", "status": "running" | "complete" | "interrupted" | "failed", "started", "finished",
     "settings": {"requests", "users", "time_limit", "race_window"},
     "mutants": [{"mutant", "breaks", "cell": "<scenario>/<strategy>", "scenario", "strategy",
                  "rule": "<word> (<count> > 0)",             # what must say no
                  "caught": true | false, "why": "...",
                  "expected": {"verdict", "label", ...}, "observed": {"verdict", "label"},
                  "control": {"observed": {...}, "match": bool | null, "error"} | null,
                  "counts", "notes", "examples", "history", "error"}],
     "summary": {"planned", "mutants", "caught", "not_caught", "controls_failed"}}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import interrupt
from ..matrix import Matrix
from ..procs import StackError
from ..results import now_iso
from ..runfile import write_json
from ..runner import Step
from ..scenarios import load_scenarios
from ..stack import NativeStack, http_json
from ..strategies import MUTANT_ENV, STRATEGIES
from .table import SETTINGS, Mutant

SCHEMA = "worker-lab/mutants/v1"


def verdict_of(mutant: Mutant, cell: dict, control: dict | None) -> tuple[bool, str]:
    """(caught?, why): the control must match, and the mutated cell must show the mutant's rule saying no."""
    if control is None or control["match"] is not True:
        got = "did not run" if control is None else f"gave {control['observed']['label']}"
        return False, f"its clean control {got}, expected {cell['expected']['label']}: a catch there proves nothing"
    if cell["error"]:
        return False, f"the mutated cell could not run: {cell['error']}"
    observed = set(cell["observed"]["verdict"])
    n = (cell["counts"] or {}).get(mutant.count) if mutant.count else None
    if cell["match"] is not False:
        return False, f"observed {cell['observed']['label']} as expected: the judge did not see it"
    if mutant.word not in observed or (mutant.count and not n):
        return False, (f"observed {cell['observed']['label']} ≠ {cell['expected']['label']}, but not by its rule "
                       f"{mutant.rule}")
    return True, (f"observed {cell['observed']['label']} ≠ {cell['expected']['label']}"
                  + (f" ({mutant.count}={n})" if mutant.count else ""))


class MutantsFile:
    """mutants.json, rewritten after every mutant so an interrupted run stays readable."""

    def __init__(self, run_dir: Path, planned: int, time_limit: float):
        self.path = run_dir / "mutants.json"
        self.data = {
            "schema": SCHEMA, "run_id": run_dir.name, "status": "running", "started": now_iso(), "finished": None,
            "settings": {"requests": SETTINGS.requests, "users": SETTINGS.users, "race_window": SETTINGS.race_window,
                         "time_limit": time_limit},
            "mutants": [], "summary": {"planned": planned},
        }
        with interrupt.shielded():
            self.write()
            interrupt.on_exit(self.finish_if_running)

    def add(self, record: dict) -> None:
        self.data["mutants"].append(record)
        self.write()

    def finish(self, status: str) -> None:
        with interrupt.shielded():
            self.data["status"] = status
            self.data["finished"] = now_iso()
            self.write()

    def finish_if_running(self) -> None:
        if self.data["status"] == "running":
            self.finish("interrupted" if interrupt.received() else "failed")

    def write(self) -> None:
        records = self.data["mutants"]
        self.data["summary"] = {
            "planned": self.data["summary"].get("planned"),
            "mutants": len(records),
            "caught": sum(1 for r in records if r["caught"]),
            "not_caught": sum(1 for r in records if not r["caught"]),
            "controls_failed": sum(1 for r in records if not (r["control"] or {}).get("match")),
        }
        with interrupt.shielded():
            write_json(self.path, self.data)


class MutantRun(Matrix):
    """The controls: one clean stack per scenario running its mutants' cells; then one stack per mutant,
    started with ``LAB_MUTANT`` naming it, running its one cell."""

    def __init__(self, mutants: list[Mutant], run_dir: Path, report, say: Callable[[str], None] = lambda _: None):
        self.mutants = mutants
        self.say = say
        scenarios = load_scenarios()
        self.controls = {name: list(dict.fromkeys(m.strategy for m in mutants if m.scenario == name))
                         for name in dict.fromkeys(m.scenario for m in mutants)}
        super().__init__({name: scenarios[name] for name in self.controls},
                         {m.strategy: STRATEGIES[m.strategy] for m in mutants}, SETTINGS, run_dir, report)
        self.file = MutantsFile(run_dir, len(mutants), self.time_limit)

    @property
    def total_cells(self) -> int:
        return sum(len(strategies) for strategies in self.controls.values())

    def run(self) -> dict:
        try:
            return super().run()
        finally:
            self.file.finish(self.results.data["status"])

    def control(self, mutant: Mutant) -> dict | None:
        return next((c for c in self.results.data["cells"]
                     if c["scenario"] == mutant.scenario and c["strategy"] == mutant.strategy), None)

    # -- the kind of run (workerlab/runner.py), on top of the matrix's --------------------------------------
    def steps(self):
        for name, strategies in self.controls.items():
            self.report.scenario_start(self.scenarios[name])
            yield Step(f"clean/{name}", self.scenarios[name], self.run_dir / "clean" / name, strategies)
        for mutant in self.mutants:
            self.say(f"\n[bold magenta]mutant {mutant.name}[/] in {mutant.cell} - {mutant.breaks}")
            yield Step(f"mutant/{mutant.name}", self.scenarios[mutant.scenario],
                       self.run_dir / "mutants" / mutant.name, mutant)

    def step_strategies(self, step: Step) -> list:
        names = [step.context.strategy] if isinstance(step.context, Mutant) else step.context
        return [self.strategies[name] for name in names]

    def open_stack(self, step: Step) -> NativeStack:
        armed = {MUTANT_ENV: step.context.name} if isinstance(step.context, Mutant) else None
        return NativeStack(step.scenario, step.folder, race_window=self.settings.race_window, app_extra_env=armed)

    def stack_up(self, step: Step, stack, seconds: float) -> None:
        super().stack_up(step, stack, seconds)
        want = step.context.name if isinstance(step.context, Mutant) else None
        for url in stack.instance_urls:  # the app says what it armed: no mutant runs unarmed, no control armed
            armed = (http_json(f"{url}/health") or {}).get("mutant")
            if armed != want:
                raise StackError(f"{url} armed mutant {armed!r}, not {want!r}")

    def stack_failed(self, step: Step, error: StackError) -> None:
        if not isinstance(step.context, Mutant):
            super().stack_failed(step, error)
            return
        self.report.scenario_error(step.scenario, str(error))
        self.add_cell(step, self.strategies[step.context.strategy], None, None,
                      f"stack did not start: {str(error).splitlines()[0]}")

    def keep(self, step: Step, record: dict) -> None:
        mutant = step.context
        if not isinstance(mutant, Mutant):
            super().keep(step, record)  # a control: results.json and the terminal
            return
        control = self.control(mutant)
        caught, why = verdict_of(mutant, record, control)
        self.file.add({
            "mutant": mutant.name, "breaks": mutant.breaks, "cell": mutant.cell, "scenario": mutant.scenario,
            "strategy": mutant.strategy, "rule": mutant.rule, "caught": caught, "why": why,
            "expected": record["expected"], "observed": record["observed"],
            "control": {k: control[k] for k in ("observed", "match", "error")} if control else None,
            "counts": record["counts"], "notes": record["notes"], "examples": record["examples"][:3],
            "history": record["history"], "error": record["error"],
        })
        self.report.advance()
        mark = "[green]caught[/]" if caught else "[bold red on white] NOT CAUGHT [/]"
        self.say(f"  {mark} {mutant.name:<26} {why}")
