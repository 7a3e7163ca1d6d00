"""Mutants: can the judge say no? Deliberately broken variants of the app, each run in a cell whose verdict
it must flip, beside the same cell run clean.

The app declares each broken twin once (services/app/labapp/mutants.py: inert unless ``LAB_MUTANT`` names
one, which only this runner sets when it starts a stack); table.py declares the cell each must flip and
the rule of the judge that must say no there. The run is a kind of matrix run (workerlab/runner.py):
the clean controls go to results.json (so report.html shows them), the mutants to mutants.json, and the
report gets a Mutants section.

    python -m workerlab mutants [--mutant NAME ...]     # make mutants
    python -m workerlab mutants --list                  # the table only, nothing runs

    table.py     the declarations: MUTANTS, and the run's budget (SETTINGS)
    run.py       the run (MutantRun, on top of the matrix), caught or not, mutants.json (schema)
    present.py   the terminal tables
    command.py   the click command
"""

from .command import mutants
from .run import SCHEMA, MutantRun, verdict_of
from .table import MUTANTS, SETTINGS, Mutant

__all__ = ["MUTANTS", "SCHEMA", "SETTINGS", "Mutant", "MutantRun", "mutants", "verdict_of"]
