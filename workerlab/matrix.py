"""Run a matrix of (scenario, strategy) cells natively and judge every one."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from loadtests.checkers import check, every_process_loaded
from loadtests.history import exited_entries, read_history, write_history
from loadtests.protocol import DEFAULT_MASTER_BIND, READ_AT_REST, CellPlan, Plan

from . import interrupt
from .cpu import ServerCpu, cost, server_cpus
from .driver import DriverSession
from .expected import expectation_for
from .procs import StackError
from .progress import phase
from .results import ResultsFile, cell_record, throughput
from .runner import Step, run_steps
from .scenarios import Scenario
from .stacks.compose import ComposeStack
from .stacks.native import SIDECARS, NativeStack, sidecars_for
from .stacks.swarm import SwarmStack

CELL_TIME_LIMIT_S = 30.0
SESSION_MIN_PER_USER = 12  # a session user needs a real sequence (the growing cookie passes 4 KB at the 3rd)
QUICK_REQUESTS = 300  # --quick: requests and users per cell
QUICK_USERS = 20
QUICK_CELL_TIME_LIMIT_S = 6.0  # a cell that cannot reach its budget (a deadlock-prone lock) shows its verdict by then


@dataclass
class RunSettings:
    requests: int = 2000
    users: int = 50
    race_window: str = "yield"
    direct: bool = False
    quick: bool = False
    sidecars: tuple[str, ...] = SIDECARS  # the ones a stack may start (run --without takes some away)
    engine: str = "native"  # native | compose | swarm
    rate: float | None = None  # fixed-rate load: scheduled starts a second per cell (loadtests/arrivals.py)
    arrivals: str = "constant"  # with rate: constant | poisson
    workers: int = 0  # > 0: the load comes from this many locust workers (loadtests/distributed.py)
    master_bind: str = DEFAULT_MASTER_BIND  # with workers: where the driver, their master, listens
    local_workers: bool = False  # with workers: the lab starts them on this machine

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
        self.server_cpu: ServerCpu | None = None  # the cell under load's
        self.left_unanswered = 0  # by the step's last cell: restart_if_stuck
        self.next_cell_notes: list[str] = []
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
        stack_class = {"compose": ComposeStack, "swarm": SwarmStack}.get(self.settings.engine, NativeStack)
        return stack_class(step.scenario, step.folder, race_window=self.settings.race_window,
                           direct=self.settings.direct,
                           sidecars=sidecars_for(self.strategies.values(), self.settings.sidecars))

    def stack_up(self, step: Step, stack, seconds: float) -> None:
        self.report.stack_up(step.scenario, stack, seconds)
        if self.settings.engine != "native":  # the containers' versions, not the host's
            phase("probe-versions", step.label)
            self.results.probe_served_versions(step.scenario.name, stack.exec_in)

    def step_strategies(self, step: Step) -> list:
        """The strategies a step runs: every one of the run's, in each scenario."""
        return list(self.strategies.values())

    def plan(self, step: Step, stack) -> Plan:
        scenario = step.scenario
        run_key = f"{self.run_dir.name}-{step.label.replace('/', '-')}"
        requests = self.cell_requests(scenario)
        rate = self.settings.rate
        # At a fixed rate a cell lasts requests / rate: its time limit leaves it twice that.
        time_limit = max(self.time_limit, 2 * requests / rate) if rate else self.time_limit
        cells = [CellPlan(id=f"{scenario.name}/{s.name}", strategy=s.name, check=s.check,
                          key=f"{run_key}-{s.name}",  # a fresh key per measurement
                          requests=requests, time_limit=time_limit, users=self.cell_users(s.check, requests),
                          rate=rate, arrivals=self.settings.arrivals)
                 for s in self.step_strategies(step)]
        self.left_unanswered = 0
        return Plan(host=stack.url, instances=stack.instance_urls, users=self.settings.users, out=str(step.folder),
                    cells=cells, local_pids=self.settings.engine == "native", step=True, **self.load_from(step))

    def load_from(self, step: Step) -> dict:
        """The plan's fields that say where the load comes from: the driver, or workers (who wait for the next
        scenario's driver, their next master, unless this is the last)."""
        s = self.settings
        return {"workers": s.workers, "master_bind": s.master_bind, "local_workers": s.local_workers,
                "more_plans": step.scenario.name != list(self.scenarios)[-1]}

    def on_event(self, step: Step, stack, driver: DriverSession, event: dict) -> None:
        cell = driver.plan.cell(event["cell"])
        strategy = self.strategies[cell.strategy]
        if event["event"] == "cell-wait":
            self.restart_if_stuck(step, stack)
            driver.go()
        elif event["event"] == "cell-start":
            phase("cell", cell.id)
            self.report.cell_start(step.scenario, strategy)
        elif event["event"] == "load-start":
            self.server_cpu = self.cpu_window(stack, strategy)
        elif event["event"] == "cell-loaded":
            if self.server_cpu is not None:
                self.server_cpu.stop()
        elif event["event"] == "cell-done":
            self.judge(step, strategy, event["stats"], stack)
        elif event["event"] == "cell-error":
            self.add_cell(step, strategy, None, None, f"driver: {event['error']}")

    def restart_if_stuck(self, step: Step, stack) -> None:
        """A cell that left requests unanswered may leave workers stuck on them (a reply on a shared socket that
        never comes, a deadlock) until gunicorn's timeout kills them: the next cell would find fewer workers
        serving. So the app instances start again before it, where the stack can (native)."""
        stuck, self.left_unanswered = self.left_unanswered, 0
        if not stuck or not hasattr(stack, "restart_apps"):
            return
        phase("restart-apps", step.label)
        seconds = stack.restart_apps()
        self.next_cell_notes.append(f"the app was started again before this cell ({seconds:.1f}s): the cell before "
                                    f"left {stuck} requests unanswered, and workers stuck on them serve nothing")

    def events_ended(self, step: Step) -> None:
        pass

    def unfinished(self, step: Step, cell: CellPlan, why: str) -> None:
        self.add_cell(step, self.strategies[cell.strategy], None, None, why)

    def step_done(self, step: Step) -> None:
        pass

    def stack_failed(self, step: Step, error: StackError) -> None:
        self.results.scenario_error(step.scenario.name, str(error))
        self.report.scenario_error(step.scenario, str(error))
        done = {c["strategy"] for c in self.results.data["cells"] if c["scenario"] == step.scenario.name}
        for strategy in self.step_strategies(step):
            if strategy.name not in done:
                self.add_cell(step, strategy, None, None, f"stack did not start: {str(error).splitlines()[0]}")

    @staticmethod
    def cpu_window(stack, strategy) -> ServerCpu | None:
        """The server's CPU over one cell's load: the app's processes, nginx, and the store the strategy
        uses. Native stacks only (a compose stack's processes are the containers')."""
        pids = getattr(stack, "pids", None)
        if pids is None:
            return None
        groups = {"app": [pid for name, pid in pids.items() if name.startswith("app-")],
                  "nginx": [pid for name, pid in pids.items() if name == "nginx"],
                  "store": [pids[need] for need in strategy.needs if need in pids]}
        return ServerCpu({k: v for k, v in groups.items() if v}).start()

    def judge(self, step: Step, strategy, stats: dict, stack=None) -> None:
        phase("judge", f"{step.label}/{strategy.name}")
        history_file = step.folder / "history" / f"{strategy.name}.jsonl"
        history = read_history(history_file)
        if hasattr(stack, "live_processes") and strategy.check in READ_AT_REST:
            history = self.note_exited(stack, history, history_file)
        result = check(strategy.check, history)
        result = every_process_loaded(result, step.scenario.processes)
        rel = str(history_file.relative_to(self.run_dir))
        figures = throughput(history, stats)
        window, self.server_cpu = self.server_cpu, None
        if window is not None and window.spent:
            figures.update(cost(window.spent, window.waited, stats.get("answered") or 0, figures["load_seconds"],
                                server_cpus([pid for pids in window.groups.values() for pid in pids]),
                                figures["rps"], figures["generator_bound"]))
        self.add_cell(step, strategy, result, rel, None, figures, stats)

    def note_exited(self, stack, history: list[dict], history_file: Path) -> list[dict]:
        """In containers the driver cannot see which processes exited (a fork per request, a recycled
        worker): ask the containers which are alive, and add the others' exited entries to the history
        file - as the driver does natively - so the checkers need not take them for unread."""
        live = stack.live_processes()
        if live is None:
            return history
        last = max((e.get("req", 0) for e in history), default=0)
        exited = exited_entries(history, live.__contains__, max((e["complete"] for e in history), default=0.0),
                                itertools.count(last + 1))
        if exited:
            history = history + exited
            write_history(history_file, history)
        return history

    def expectation(self, strategy, scenario: Scenario):
        return expectation_for(strategy.name, scenario, self.settings.race_window)

    def finish_record(self, record: dict, scenario: Scenario, strategy) -> None:
        """A kind's last word on a cell's record before it is kept and shown (the matrix adds nothing)."""

    def add_cell(self, step: Step, strategy, result, history_path, error, throughput_=None, stats=None) -> None:
        scenario = step.scenario
        expectation = self.expectation(strategy, scenario)
        record = cell_record(scenario.name, strategy, expectation, result, history_path=history_path,
                             throughput_=throughput_, error=error)
        record["notes"][:0], self.next_cell_notes = self.next_cell_notes, []
        if stats:
            # Every request is accounted for: sent = answered (any status) + unanswered (cut off at the end).
            record["counts"].update({k: stats.get(k) for k in ("sent", "answered", "unanswered")})
            self.left_unanswered = stats.get("unanswered") or 0
            if stats.get("stalled_s"):
                record["notes"].append(f"the server answered nothing for {stats['stalled_s']:.0f}s while requests "
                                       "waited: the cell ended then, as at its time limit")
            elif stats.get("timed_out"):
                record["notes"].append(f"cell hit its {self.time_limit:.0f}s time limit")
            for name, part in (stats.get("workers") or {}).items():
                record["notes"].append(f"worker {name}: {part['users']} users, {part['load_entries']} requests"
                                       + ("" if part["complete"] else ", its entries incomplete (the rest unanswered)"))
            if stats.get("unanswered"):
                record["notes"].append(f"{stats['unanswered']} requests were still in flight when the cell ended "
                                       "(recorded as errors)")
        self.finish_record(record, scenario, strategy)
        self.keep(step, record)

    def keep(self, step: Step, record: dict) -> None:
        """A judged cell goes to results.json and the terminal."""
        self.results.add(record)
        self.report.cell_done(record)

