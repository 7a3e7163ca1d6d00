"""Run a matrix of (scenario, strategy) cells natively and judge every one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from loadtests.checkers import check
from loadtests.history import read_history
from loadtests.protocol import CellPlan, Plan

from . import interrupt
from .compose_stack import ComposeStack
from .driver import DriverSession
from .expected import expectation_for
from .procs import StackError
from .progress import phase
from .results import ResultsFile, cell_record, throughput
from .runner import Step, run_steps
from .scenarios import Scenario
from .stack import SIDECARS, NativeStack, sidecars_for

CELL_TIME_LIMIT_S = 30.0
SESSION_MIN_PER_USER = 12  # a session user needs a real sequence (the growing cookie passes 4 KB after 8)
QUICK_CELL_TIME_LIMIT_S = 6.0  # a cell that cannot reach its budget (a deadlock-prone lock) shows its verdict by then


@dataclass
class RunSettings:
    requests: int = 2000
    users: int = 50
    race_window: str = "yield"
    direct: bool = False
    quick: bool = False
    sidecars: tuple[str, ...] = SIDECARS  # the ones a stack may start (run --without takes some away)
    engine: str = "native"  # native | compose

    def as_dict(self) -> dict:
        return {**self.__dict__, "sidecars": list(self.sidecars)}


def new_run_dir(base: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        run_dir = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            run_dir.mkdir(parents=True)
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder under {base}")


class Matrix:
    """Drives the cells; `report` gets callbacks for progress and rows."""

    def __init__(self, scenarios: dict[str, Scenario], strategies: dict, settings: RunSettings, run_dir: Path,
                 report):
        self.scenarios = scenarios
        self.strategies = strategies
        self.settings = settings
        self.run_dir = run_dir
        self.report = report
        self.results = ResultsFile(run_dir, {**settings.as_dict(), "scenarios": list(scenarios),
                                             "strategies": list(strategies)}, scenarios, planned=self.total_cells)

    @property
    def time_limit(self) -> float:
        return QUICK_CELL_TIME_LIMIT_S if self.settings.quick else CELL_TIME_LIMIT_S

    def cell_requests(self, scenario: Scenario) -> int:
        """The run's budget, or less where the scenario caps it (a third of the cap in --quick)."""
        cap = scenario.cell_requests_max
        if cap is None:
            return self.settings.requests
        return min(self.settings.requests, cap // 3 if self.settings.quick else cap)

    def cell_users(self, check: str, requests: int) -> int:
        """The run's users; a session cell has fewer, with more requests each, for the same budget."""
        if check == "session":
            return max(1, min(self.settings.users, requests // SESSION_MIN_PER_USER))
        return self.settings.users

    @property
    def total_cells(self) -> int:
        return len(self.scenarios) * len(self.strategies)

    def run(self) -> dict:
        status = "failed"
        try:
            phase("probe-versions")
            self.results.probe_versions()
            run_steps(self)
            status = "complete"
        finally:
            self.results.finish("interrupted" if interrupt.received() else status)
        return self.results.data

    # -- the matrix as a kind of run (workerlab/runner.py) -----------------------------------------------
    def steps(self):
        for scenario in self.scenarios.values():
            self.report.scenario_start(scenario)
            yield Step(scenario.name, scenario, self.run_dir / scenario.name)

    def open_stack(self, step: Step):
        stack_class = ComposeStack if self.settings.engine == "compose" else NativeStack
        return stack_class(step.scenario, step.folder, race_window=self.settings.race_window,
                           direct=self.settings.direct,
                           sidecars=sidecars_for(self.strategies.values(), self.settings.sidecars))

    def stack_up(self, step: Step, stack, seconds: float) -> None:
        self.report.stack_up(step.scenario, stack, seconds)
        if self.settings.engine == "compose":  # the containers' versions, not the host's
            phase("probe-versions", step.label)
            self.results.probe_served_versions(step.scenario.name, stack.exec_in)

    def plan(self, step: Step, stack) -> Plan:
        scenario = step.scenario
        run_key = f"{self.run_dir.name}-{scenario.name}"
        requests = self.cell_requests(scenario)
        cells = [CellPlan(id=f"{scenario.name}/{s.name}", strategy=s.name, check=s.check,
                          key=f"{run_key}-{s.name}",  # a fresh key per measurement
                          requests=requests, time_limit=self.time_limit, users=self.cell_users(s.check, requests))
                 for s in self.strategies.values()]
        return Plan(host=stack.url, instances=stack.instance_urls, users=self.settings.users, out=str(step.folder),
                    cells=cells, local_pids=self.settings.engine == "native")

    def on_event(self, step: Step, stack, driver: DriverSession, event: dict) -> None:
        cell = driver.plan.cell(event["cell"])
        strategy = self.strategies[cell.strategy]
        if event["event"] == "cell-start":
            phase("cell", cell.id)
            self.report.cell_start(step.scenario, strategy)
        elif event["event"] == "cell-done":
            self.judge(step.scenario, strategy, step.folder, event["stats"])
        elif event["event"] == "cell-error":
            self.add_cell(step.scenario, strategy, None, None, f"driver: {event['error']}")

    def events_ended(self, step: Step) -> None:
        pass

    def unfinished(self, step: Step, cell: CellPlan, why: str) -> None:
        self.add_cell(step.scenario, self.strategies[cell.strategy], None, None, why)

    def stack_failed(self, step: Step, error: StackError) -> None:
        self.results.scenario_error(step.scenario.name, str(error))
        self.report.scenario_error(step.scenario, str(error))
        done = {c["strategy"] for c in self.results.data["cells"] if c["scenario"] == step.scenario.name}
        for strategy in self.strategies.values():
            if strategy.name not in done:
                self.add_cell(step.scenario, strategy, None, None,
                              f"stack did not start: {str(error).splitlines()[0]}")

    def judge(self, scenario: Scenario, strategy, scenario_dir: Path, stats: dict) -> None:
        phase("judge", f"{scenario.name}/{strategy.name}")
        history_file = scenario_dir / "history" / f"{strategy.name}.jsonl"
        history = read_history(history_file)
        result = check(strategy.check, history)
        rel = str(history_file.relative_to(self.run_dir))
        self.add_cell(scenario, strategy, result, rel, None, throughput(history, stats), stats)

    def add_cell(self, scenario, strategy, result, history_path, error, throughput_=None, stats=None) -> None:
        expectation = expectation_for(strategy.name, scenario, self.settings.race_window)
        record = cell_record(scenario.name, strategy, expectation, result, history_path=history_path,
                             throughput_=throughput_, error=error)
        if stats:
            # Every request is accounted for: sent = answered (any status) + unanswered (cut off at the end).
            record["counts"].update({k: stats.get(k) for k in ("sent", "answered", "unanswered")})
            if stats.get("timed_out"):
                record["notes"].append(f"cell hit its {self.time_limit:.0f}s time limit")
            if stats.get("unanswered"):
                record["notes"].append(f"{stats['unanswered']} requests were still in flight when the cell ended "
                                       "(recorded as errors)")
        self.results.add(record)
        self.report.cell_done(record)

