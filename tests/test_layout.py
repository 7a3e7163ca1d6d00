"""The layout's rules, checked on the source: who may import whom, and no module doing several jobs."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from labtools import ROOT

APP = ROOT / "services" / "app" / "labapp"
# Pure: judged and shared by the runner, the driver and the web UI; the standard library only.
PURE = ["loadtests/protocol.py", "loadtests/verdicts.py", "loadtests/history.py", "loadtests/checkers.py",
        "loadtests/counter_rules.py",
        "loadtests/fault_checkers.py", "loadtests/arrivals.py"]
MAX_LINES = 500


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (relative imports resolved to their package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            else:
                names.add(node.module)
    return names


def test_the_app_imports_nothing_of_the_runner_or_the_load_generator():
    for path in modules(APP):
        bad = {n for n in imported(path) if n.split(".")[0] in ("workerlab", "loadtests")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_the_standard_library_only(name):
    path = ROOT / name
    for module in imported(path):
        top = module.split(".")[0]
        if top == "loadtests":
            assert f"{module.replace('.', '/')}.py" in PURE, f"{name} imports {module}, which is not pure"
            continue
        assert top == "__future__" or top in sys.stdlib_module_names, f"{name} imports {module}"


def test_nothing_imports_the_command_line():
    for path in [*modules(ROOT / "workerlab"), *modules(ROOT / "loadtests")]:
        if path.name == "__main__.py":
            continue
        assert "workerlab.cli" not in imported(path), f"{path.relative_to(ROOT)} imports workerlab.cli"


def test_the_runner_never_imports_locust_or_the_driver():
    """Importing locust monkey-patches the process with gevent: the runner names the driver's facts through
    loadtests/protocol.py and starts the driver as a process of its own."""
    for path in modules(ROOT / "workerlab"):
        bad = {n for n in imported(path) if n.split(".")[0] in ("locust", "gevent")
               or n in ("loadtests.driver", "loadtests.locustfile", "loadtests.webui", "loadtests.final_reads")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_module_is_over_500_lines():
    long = [f"{p.relative_to(ROOT)} ({n})" for p in [*modules(ROOT / "workerlab"), *modules(ROOT / "loadtests"),
                                                      *modules(APP)]
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, long


# The runs (the one loop and its kinds) report to a listener; present/ draws what they wrote.
RUNS = ["workerlab/runner.py", "workerlab/driver.py", "workerlab/matrix.py", "workerlab/stability.py",
        "workerlab/faults/run.py", "workerlab/bench/run.py", "workerlab/mutants/run.py", "workerlab/userapp/run.py"]
# What present/ may read besides itself: the run files and the facts they are drawn with.
PRESENT_READS = {"workerlab.results", "workerlab.runfile", "workerlab.cpu"}


@pytest.mark.parametrize("name", RUNS)
def test_runs_never_import_the_presentation(name):
    bad = {n for n in imported(ROOT / name) if n.startswith("workerlab.present")}
    assert not bad, f"{name} imports {bad}"


def test_the_presentation_reads_only_run_files():
    """present/ starts nothing and runs nothing: it draws results.json (and its siblings) and nothing else."""
    for path in modules(ROOT / "workerlab" / "present"):
        ours = {n for n in imported(path) if n.startswith("workerlab")}
        bad = {n for n in ours if not n.startswith("workerlab.present") and n not in PRESENT_READS}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_the_locust_image_pins_what_the_host_generator_pins():
    """The containers' generator runs the same loadtests/ as the host's: the same locust and HTTP client."""
    def pins(path):
        return dict(re.findall(r"^([A-Za-z][\w.-]*)==(\S+)", path.read_text(), re.M))

    image = pins(ROOT / "compose" / "locust" / "requirements.txt")
    assert set(image) == {"locust", "httptools"}
    assert image.items() <= pins(ROOT / "requirements.txt").items()
