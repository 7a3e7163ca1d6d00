"""`python -m workerlab run --app worker-lab.toml [--target URL]`: a user's app through the matrix - a kind of
the one run loop (workerlab/runner.py), the matrix's own with the app's endpoints as its rows.

Natively, each runtime model starts the app from its own venv (venv.py) behind the lab's nginx with the
sidecars it declares; with --engine compose, from its image (image.py) in the lab's compose stack
(compose.py); with --target, one column: the deployment at the URL, started by no one here.
Before any load, every declared request is sent once (probe.py) on a one-process stack (or the target):
a path that does not answer or a value not where declared is an error that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadtests.protocol import CellPlan, Plan
from loadtests.verdicts import ANY

from ..expected import Expectation
from ..matrix import Matrix, RunSettings
from ..runner import Step
from ..scenarios import Scenario
from . import present
from .compose import UserAppComposeStack
from .declaration import Declaration, Endpoint
from .image import AppImage
from .probe import probe
from .stack import UserAppStack
from .target import MAX_TARGET_CELL_SECONDS, TargetStack

PROBE_SCENARIO = "sync-x1"  # one process, one request at a time: the probe's answers disturb no cell


@dataclass(frozen=True)
class Row:
    """A declared endpoint as the matrix's row (what the lab's strategies are to its own matrix)."""

    endpoint: Endpoint
    needs: tuple[str, ...] = ()
    question: str | None = None

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def check(self) -> str:
        return self.endpoint.check

    @property
    def summary(self) -> str:
        return f"{self.endpoint.method} {self.endpoint.path}"


def rows(declaration: Declaration) -> dict[str, Row]:
    return {e.name: Row(e, needs=declaration.services) for e in declaration.endpoints}


def probe_app(declaration: Declaration, built: Path | AppImage, scenario: Scenario, folder: Path) -> dict:
    """Start the app once under `scenario` - from its venv, or its image in compose - and send every declared
    request: ProbeError names what failed."""
    stack = (UserAppComposeStack(scenario, folder, declaration, built) if isinstance(built, AppImage)
             else UserAppStack(scenario, folder, declaration, built))
    with stack:
        return probe(stack.url, declaration)


class UserAppMatrix(Matrix):
    def __init__(self, declaration: Declaration, venv: Path | None, scenarios: dict[str, Scenario],
                 settings: RunSettings, run_dir: Path, report, target: str | None = None,
                 image: AppImage | None = None):
        self.declaration = declaration
        self.venv = venv
        self.target = target
        self.image = image
        super().__init__(scenarios, rows(declaration), settings, run_dir, report)
        self.results.data["settings"].update({"app": str(declaration.path), "target": target,
                                              "venv": str(venv) if venv else None,
                                              "image": image.tag if image else None})

    @property
    def time_limit(self) -> float:
        return min(super().time_limit, MAX_TARGET_CELL_SECONDS) if self.target else super().time_limit

    def open_stack(self, step: Step):
        if self.target:
            return TargetStack(self.target, self.declaration.health, step.folder)
        if self.image:
            return UserAppComposeStack(step.scenario, step.folder, self.declaration, self.image,
                                       direct=self.settings.direct)
        return UserAppStack(step.scenario, step.folder, self.declaration, self.venv,
                            direct=self.settings.direct)

    def stack_up(self, step: Step, stack, seconds: float) -> None:
        self.report.stack_up(step.scenario, stack, seconds)
        if self.target:  # nothing the lab started: check the declaration against it before any load
            probe(stack.url, self.declaration, counters=False)

    def plan(self, step: Step, stack) -> Plan:
        requests = self.cell_requests(step.scenario)
        cells = [CellPlan(id=f"{step.scenario.name}/{row.name}", strategy=row.name, check=row.check,
                          key=f"{self.run_dir.name}-{row.name}", requests=requests, time_limit=self.time_limit,
                          users=self.cell_users(row.check, requests), rate=self.settings.rate,
                          arrivals=self.settings.arrivals, request=row.endpoint.request(), read=row.endpoint.read)
                 for row in self.strategies.values()]
        return Plan(host=stack.url, instances=stack.instance_urls, users=self.settings.users, out=str(step.folder),
                    cells=cells, local_pids=False, served_by_header=self.declaration.served_by_header,
                    **self.load_from(step))

    def expectation(self, strategy: Row, scenario: Scenario) -> Expectation:
        label = strategy.endpoint.expect.get(scenario.name)
        if label is None:
            return Expectation(frozenset({ANY}), "no expectation declared in worker-lab.toml")
        return Expectation(frozenset(label.split("+")), f"declared in {self.declaration.path.name}")

    def finish_record(self, record: dict, scenario: Scenario, strategy: Row) -> None:
        present.finish(record, scenario, self.cell_users(strategy.check, self.cell_requests(scenario)))
