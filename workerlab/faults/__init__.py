"""Faults ("nemesis"): what survives a worker kill, a reload, a sidecar restart, an eviction.

Each fault is declared once (table.py) and runs with any scenario: the runner brings up the
scenario's stack with the fault's settings (redis persistence, a tiny memcached, gunicorn
max_requests), drives each strategy under a steady paced load (loadtests/driver.py, paced cells),
injects the fault at a recorded moment on the driver's own clock, waits until it is over,
then lets the driver read every counter at rest. loadtests/fault_checkers.py judges the
history by Jepsen's counter rule (every acknowledged increment must show in a later read)
or per user for sessions, and reports requests failed during the fault and the time to
recover.

The expected verdict of every (strategy x fault) cell is declared with a one-line reason in
expected.py, like workerlab/expected.py does for the matrix. A fault on a store the strategy does
not use is a control (expected to survive, shown apart from the judged cells); a fault whose
injector's record does not prove it happened (evidence.py) makes its cells errors.

    python -m workerlab faults [--scenario NAME ...] [--fault NAME ...] [--strategy NAME ...] [--route nginx|direct]
                               [--quick]      # default: every gunicorn scenario (coverage.py)
    python -m workerlab faults --expected        # the table only, nothing runs

Each cell also counts the requests the fault dropped (no answer) or errored (an HTTP error answer), shown per
worker class in faults.md and at the end of the run.

Output: results/<timestamp>/faults.json (schema ``worker-lab/faults/v2``, in run.py) and faults.md.

One job per module; a fault is a declaration plus an injector:

    shape.py      the paced load (LoadShape, FULL, QUICK)
    injectors.py  what each fault does to the running stack (Injection, inject_*), and what it saw
    evidence.py   what in that record proves the fault happened (a cell without its proof is an error)
    shim.py       the LD_PRELOAD shim that turns a kill -9 of redis into a host crash
    table.py      the declarations: FAULTS, and the strategies they cover (SCOPES, WHERE)
    coverage.py   what a run covers: blocks of (scenario, route) x faults x strategies; the default one
    expected.py   the expected verdict of each (strategy x fault) cell, with its reason
    run.py        the run loop (FaultRun), judging a cell, faults.json
    present.py    faults.md, the terminal grid, the expected table
    command.py    the click command
"""

from .command import faults
from .coverage import DIRECT, NGINX, REPRESENTATIVE, ROUTES, Block, Route, default_blocks, every
from .expected import PROCESS_RESET, FaultExpectation, expect_fault, fault_label
from .injectors import Injection
from .run import SCHEMA, FaultRun, judge, run_faults
from .shape import FULL, QUICK, LoadShape
from .shim import build_shim, c_compiler
from .table import FAULT_STRATEGIES, FAULTS, SCOPES, WHERE, Fault

__all__ = [
    "DIRECT", "FAULTS", "FAULT_STRATEGIES", "FULL", "NGINX", "PROCESS_RESET", "QUICK", "REPRESENTATIVE", "ROUTES",
    "SCHEMA", "SCOPES", "WHERE",
    "Block", "Fault", "FaultExpectation", "FaultRun", "Injection", "LoadShape", "Route",
    "build_shim", "c_compiler", "default_blocks", "every", "expect_fault", "fault_label", "faults", "judge",
    "run_faults",
]
