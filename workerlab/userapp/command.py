"""What `run --app` does from the command line: read the declaration, build the venv, probe, run, show."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console

from .. import interrupt
from ..matrix import RunSettings, new_run_dir
from ..present.terminal import TerminalReport, throughput_table
from ..procs import StackError
from ..results import of_planned, summary_line
from ..scenarios import Scenario, load_scenarios
from ..stacks.docker_cli import EngineMissing, engine_env
from .declaration import DeclarationError, load
from .image import ImageError, build_image
from .present import matrix_table, plain_line
from .probe import ProbeError
from .run import PROBE_SCENARIO, UserAppMatrix, probe_app
from .target import MAX_TARGET_REQUESTS, TargetRefused, check_target, target_scenario
from .venv import VenvError, ensure_venv


def run_app(app: Path, scenarios: dict[str, Scenario], settings: RunSettings, output: Path, mode: str,
            target: str | None, i_own_this_target: bool, console: Console) -> None:
    try:
        declaration = load(app, list(load_scenarios()) + ["target"])
        if target:
            target = check_target(target, i_own_this_target)
    except (DeclarationError, TargetRefused) as exc:
        raise click.UsageError(str(exc)) from None
    started = time.monotonic()
    venv = image = None
    with interrupt.shielded():
        run_dir = new_run_dir(output)
    try:
        if target:
            scenarios = {"target": target_scenario(target)}
            settings.requests = min(settings.requests, MAX_TARGET_REQUESTS)
        elif settings.engine == "compose":
            console.print(f"[dim]building the app's image (log: {run_dir / 'image-build.log'})...[/]")
            image = build_image(declaration, run_dir / "image", engine_env())
            console.print(f"[dim]checking every declared endpoint once under {PROBE_SCENARIO} in compose...[/]")
            probe_app(declaration, image, load_scenarios()[PROBE_SCENARIO], run_dir / "probe")
        else:
            venv = ensure_venv(declaration.requirements, say=lambda text: console.print(f"[dim]{text}[/]"))
            (run_dir / "venv").symlink_to(venv)
            console.print(f"[dim]checking every declared endpoint once under {PROBE_SCENARIO}...[/]")
            probe_app(declaration, venv, load_scenarios()[PROBE_SCENARIO], run_dir / "probe")
    except EngineMissing as exc:
        raise click.ClickException(f"--engine compose needs a Docker engine:\n{exc}") from None
    except (VenvError, ImageError, ProbeError) as exc:
        raise click.ClickException(str(exc)) from None
    except StackError as exc:
        raise click.ClickException(f"the app did not start under {PROBE_SCENARIO}: {exc}") from None
    matrix = UserAppMatrix(declaration, venv, scenarios, settings, run_dir, None, target=target, image=image)
    report_ = TerminalReport(matrix.total_cells, mode=mode)
    matrix.report = report_
    try:
        with report_:
            matrix.run()
    except KeyboardInterrupt:
        pass
    except ProbeError as exc:
        raise click.ClickException(str(exc)) from None
    data = matrix.results.data
    # One plain sentence per endpoint, kept in results.json for the report (which reads nothing else).
    data["endpoints"] = {name: plain_line(name, [c for c in data["cells"] if c["strategy"] == name], scenarios)
                         for name in dict.fromkeys(c["strategy"] for c in data["cells"])}
    matrix.results.write()
    report_path = None
    if data["cells"]:
        with interrupt.shielded():  # it imports matplotlib: never interrupt a C extension's import
            from ..present.html import render_report

            report_path = render_report(run_dir)
    if mode != "json":
        console.print(matrix_table(data))
        console.print(throughput_table(data))
        for line in data["endpoints"].values():
            console.print(line, highlight=False)
        partial = of_planned(data)
        console.print((f"[bold yellow]{data['status']}: {partial}.[/] " if partial else "")
                      + f"{summary_line(data['summary'])} ({time.monotonic() - started:.0f}s). "
                      f"Results: {run_dir / 'results.json'}")
        if report_path:
            console.print(f"HTML report: {report_path}")
    sys.exit(0 if data["summary"]["mismatched"] == 0 else 1)
