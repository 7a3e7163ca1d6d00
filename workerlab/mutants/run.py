"""The mutants run: every mutant's cell run once clean (its control, in results.json) and once with the
mutant armed (in mutants.json), through the one run loop (workerlab/runner.py) as a kind of matrix run;
then each fault mutant's fault cell, clean and with its injector replaced, as two fault runs
(workerlab/faults/, their faults.json under clean/faults/ and mutants/<name>/).

A mutant is *caught* when its clean control matched its expected verdict, and its mutated cell did not:
the mutant's rule (table.py: a verdict word, and a count above 0) says no there; a fault mutant's cell must
be an error for want of its fault's evidence. A mutant "caught" in a cell that also fails clean proves
nothing: it is recorded as not caught, with the control's verdict.

Schema ``worker-lab/mutants/v1`` (``mutants.json`` beside the controls' ``results.json``)::

    {"schema", "run_id", "status": "running" | "complete" | "interrupted" | "failed", "started", "finished",
     "settings": {"requests", "users", "time_limit", "race_window", "fault_load": {...}},
     "mutants": [{"mutant", "breaks", "cell": "<scenario>/<strategy>", "scenario", "strategy",
                  "fault": null | "<fault>",                  # a fault mutant: cell "<scenario>/<fault>/<strategy>"
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
from ..faults import FAULTS, Fault, FaultRun, every
from ..faults.run import UNPROVEN
from ..matrix import Matrix
from ..procs import StackError
from ..runfile import MUTANTS_SCHEMA, RunFile, now_iso, write_json
from ..runner import Step
from ..scenarios import load_scenarios
from ..stacks.native import NativeStack, http_json
from ..strategies import MUTANT_ENV, STRATEGIES
from .table import FAULT_SHAPE, SETTINGS, FaultMutant, Mutant

SCHEMA = MUTANTS_SCHEMA


def _control_failed(control: dict | None, expected: dict) -> str | None:
    if control is None or control["match"] is not True:
        got = "did not run" if control is None else f"gave {(control['observed'] or {}).get('label', 'nothing')}"
        return f"its clean control {got}, expected {expected['label']}: a catch there proves nothing"
    return None


def verdict_of(mutant: Mutant, cell: dict, control: dict | None) -> tuple[bool, str]:
    """(caught?, why): the control must match, and the mutated cell must show the mutant's rule saying no."""
    failed = _control_failed(control, cell["expected"])
    if failed:
        return False, failed
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


def fault_verdict_of(cell: dict | None, control: dict | None) -> tuple[bool, str]:
    """(caught?, why) for a fault mutant: the control must match, and the mutated cell be an error for want of
    its fault's evidence - whatever its history alone gives."""
    if cell is None:
        return False, "the mutated fault cell did not run"
    failed = _control_failed(control, cell["expected"])
    if failed:
        return False, failed
    observed = (cell["observed"] or {}).get("label", "nothing")
    if cell["match"] is False and (cell["error"] or "").startswith(UNPROVEN):
        return True, f"an error, not {observed}: {cell['error']}"
    return False, f"observed {observed} ({'error: ' + cell['error'] if cell['error'] else 'no error'}): " \
                  "the fault's evidence did not stop it"


class MutantsFile(RunFile):
    """mutants.json, rewritten after every mutant so an interrupted run stays readable."""

    entries = "mutants"

    def __init__(self, run_dir: Path, planned: int, time_limit: float):
        super().__init__(run_dir / "mutants.json", {
            "schema": SCHEMA, "run_id": run_dir.name, "status": "running", "started": now_iso(), "finished": None,
            "settings": {"requests": SETTINGS.requests, "users": SETTINGS.users, "race_window": SETTINGS.race_window,
                         "time_limit": time_limit, "fault_load": FAULT_SHAPE.as_dict()},
            "mutants": [], "summary": {"planned": planned},
        })

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
    started with ``LAB_MUTANT`` naming it, running its one cell; then each fault mutant's two fault runs."""

    def __init__(self, mutants: list[Mutant | FaultMutant], run_dir: Path, report,
                 say: Callable[[str], None] = lambda _: None):
        self.mutants = [m for m in mutants if isinstance(m, Mutant)]
        self.fault_mutants = [m for m in mutants if isinstance(m, FaultMutant)]
        self.say = say
        self.all_scenarios = load_scenarios()
        self.controls = {name: list(dict.fromkeys(m.strategy for m in self.mutants if m.scenario == name))
                         for name in dict.fromkeys(m.scenario for m in self.mutants)}
        super().__init__({name: self.all_scenarios[name] for name in self.controls},
                         {m.strategy: STRATEGIES[m.strategy] for m in self.mutants}, SETTINGS, run_dir, report)
        self.file = MutantsFile(run_dir, len(mutants), self.time_limit)

    @property
    def total_cells(self) -> int:
        return sum(len(strategies) for strategies in self.controls.values())

    def run(self) -> dict:
        status = "failed"
        try:
            super().run()
            for mutant in self.fault_mutants:
                self.run_fault_mutant(mutant)
            status = "complete"
        finally:
            self.file.finish("interrupted" if interrupt.received() else status)
        return self.file.data

    def control(self, mutant: Mutant) -> dict | None:
        return next((c for c in self.results.data["cells"]
                     if c["scenario"] == mutant.scenario and c["strategy"] == mutant.strategy), None)

    def add(self, mutant: Mutant | FaultMutant, cell: dict, control: dict | None, caught: bool, why: str) -> None:
        """One mutant's line in mutants.json and on the terminal."""
        self.file.add({
            "mutant": mutant.name, "breaks": mutant.breaks, "cell": mutant.cell, "scenario": mutant.scenario,
            "strategy": mutant.strategy, "fault": getattr(mutant, "fault", None), "rule": mutant.rule,
            "caught": caught, "why": why, "expected": cell["expected"],
            "observed": cell["observed"] or {"verdict": [], "label": "-"},
            "control": {k: control[k] for k in ("observed", "match", "error")} if control else None,
            "counts": cell["counts"], "notes": cell["notes"], "examples": cell["examples"][:3],
            "history": cell["history"], "error": cell["error"],
        })
        self.report.advance()
        mark = "[green]caught[/]" if caught else "[bold red on white] NOT CAUGHT [/]"
        self.say(f"  {mark} {mutant.name:<26} {why}")

    def fault_cell(self, mutant: FaultMutant, fault: Fault, folder: Path) -> dict | None:
        """The mutant's fault cell under ``fault``, run as a fault run of its own (faults.json in ``folder``)."""
        folder.mkdir(parents=True, exist_ok=True)
        run = FaultRun(every({mutant.scenario: self.all_scenarios[mutant.scenario]}, [fault], [mutant.strategy]),
                       FAULT_SHAPE, folder, self.say)
        run.run()
        cell = next((c for c in run.data["cells"] if c["strategy"] == mutant.strategy), None)
        if cell and cell.get("history"):
            cell["history"] = str((folder / cell["history"]).relative_to(self.run_dir))
        return cell

    def run_fault_mutant(self, mutant: FaultMutant) -> None:
        """Its fault cell clean, then with the fault's injector replaced."""
        control = self.fault_cell(mutant, FAULTS[mutant.fault], self.run_dir / "clean" / "faults")
        self.say(f"\n[bold magenta]mutant {mutant.name}[/] in {mutant.cell} - {mutant.breaks}")
        cell = self.fault_cell(mutant, mutant.mutated(), self.run_dir / "mutants" / mutant.name)
        caught, why = fault_verdict_of(cell, control)
        if cell is None:
            cell = {"expected": (control or {}).get("expected") or {}, "observed": None, "counts": {}, "notes": [],
                    "examples": [], "history": None, "error": "did not run"}
        self.add(mutant, cell, control, caught, why)

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
        self.add(mutant, record, control, caught, why)
