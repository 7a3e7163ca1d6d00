"""Where things are in the checkout."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_DIR = ROOT / "services" / "app"
NGINX_DIR = ROOT / "services" / "nginx"
SCENARIO_DIR = ROOT / "compose" / "scenarios"
RESULTS_DIR = ROOT / "results"
