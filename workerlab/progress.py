"""Phase markers: what the lab is doing now.

People see the phase on the progress line; scripts and tests that need to act at a given moment (the
interruption tests) set LAB_PHASES=1 and read one `phase: NAME DETAIL` line per phase on stderr, written
unbuffered the moment the phase begins - so they wait for what the lab says, never for a timing.
"""

from __future__ import annotations

import os

PHASES = {
    "start": "the command line is read",
    "probe-versions": "asking the servers for their versions",
    "stack-start": "starting a scenario's services",
    "stack-up": "every service of the scenario answers",
    "cell": "load on one (scenario, strategy) cell",
    "judge": "checking a cell's history",
    "restart-apps": "starting the app instances again: the cell before left workers stuck on unanswered requests",
    "stack-stop": "stopping a scenario's services",
    "fault": "one (fault, strategy) cell of the fault runner",
    "bench": "one measurement of the bench",
    "stability-run": "one of the matrix runs of `stability`",
    "hold": "a stack is up until Ctrl-C (serve, ui)",
    "report": "writing the report",
    "done": "the command has finished its work",
}
ENV = "LAB_PHASES"

_current = "start"


def phase(name: str, detail: str = "") -> None:
    global _current
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}")
    _current = f"{name} {detail}".strip()
    if os.environ.get(ENV) == "1":
        os.write(2, f"phase: {_current}\n".encode())


def current() -> str:
    return _current
