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

    python -m workerlab faults [--scenario sync-x4] [--fault NAME ...] [--strategy NAME ...] [--quick]
    python -m workerlab faults --expected        # the table only, nothing runs

Output: results/<timestamp>/faults.json (schema ``worker-lab/faults/v1``, in run.py) and faults.md.

One job per module; a fault is a declaration plus an injector:

    shape.py      the paced load (LoadShape, FULL, QUICK)
    injectors.py  what each fault does to the running stack (Injection, inject_*), and what it saw
    evidence.py   what in that record proves the fault happened (a cell without its proof is an error)
    shim.py       the LD_PRELOAD shim that turns a kill -9 of redis into a host crash
    table.py      the declarations: FAULTS, and the strategies they cover (SCOPES, WHERE)
    expected.py   the expected verdict of each (strategy x fault) cell, with its reason
    run.py        the run loop (FaultRun), judging a cell, faults.json
    present.py    faults.md, the terminal grid, the expected table
    command.py    the click command
"""

from .command import faults
from .expected import PROCESS_RESET, FaultExpectation, expect_fault, fault_label
from .injectors import Injection
from .run import SCHEMA, FaultRun, judge, run_faults
from .shape import FULL, QUICK, LoadShape
from .shim import build_shim, c_compiler
from .table import FAULT_STRATEGIES, FAULTS, SCOPES, WHERE, Fault

__all__ = [
    "FAULTS", "FAULT_STRATEGIES", "FULL", "PROCESS_RESET", "QUICK", "SCHEMA", "SCOPES", "WHERE",
    "Fault", "FaultExpectation", "FaultRun", "Injection", "LoadShape",
    "build_shim", "c_compiler", "expect_fault", "fault_label", "faults", "judge", "run_faults",
]
