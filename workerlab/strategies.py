"""The app's strategy registry, seen from the runner (the app package is the one source)."""

from __future__ import annotations

import sys

from .paths import APP_DIR

if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from labapp.strategies import REGISTRY  # noqa: E402

STRATEGIES = REGISTRY
