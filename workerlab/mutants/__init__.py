"""Mutants: can the judge say no? Deliberately broken variants of the app, each run in a cell whose verdict
it must flip, beside the same cell run clean.

The app declares each broken twin once (services/app/labapp/mutants.py: inert unless ``LAB_MUTANT`` names
one, which only this runner sets when it starts a stack); table.py declares the cell each must flip and
the rule of the judge that must say no there. The run is a kind of matrix run (workerlab/runner.py):
the clean controls go to results.json (so report.html shows them), the mutants to mutants.json, and the
report gets a Mutants section.

    python -m workerlab mutants [--mutant NAME ...]     # make mutants
    python -m workerlab mutants --list                  # the table only, nothing runs

    table.py     the declarations: MUTANTS (the app's), FAULT_MUTANTS (an injector's), the runs' budgets
    run.py       the run (MutantRun, on top of the matrix), caught or not, mutants.json (schema)
    present.py   the terminal tables
    command.py   the click command
"""

from .command import mutants
from .run import SCHEMA, MutantRun, fault_verdict_of, verdict_of
from .table import ALL, FAULT_MUTANTS, MUTANTS, SETTINGS, FaultMutant, Mutant

__all__ = ["ALL", "FAULT_MUTANTS", "MUTANTS", "SCHEMA", "SETTINGS", "FaultMutant", "Mutant", "MutantRun",
           "fault_verdict_of", "mutants", "verdict_of"]
