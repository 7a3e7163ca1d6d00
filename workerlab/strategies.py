"""The app's strategy registry, race windows and mutants, seen from the runner (the app package is the one source)."""

from __future__ import annotations

import sys

from .paths import APP_DIR

if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from labapp.mutants import MUTANT_ENV, MUTATIONS  # noqa: E402
from labapp.race import RACE_WINDOWS  # noqa: E402
from labapp.strategies import REGISTRY  # noqa: E402

__all__ = ["MUTANT_ENV", "MUTATIONS", "RACE_WINDOWS", "STRATEGIES"]

STRATEGIES = REGISTRY
