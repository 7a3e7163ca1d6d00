"""Run files (results.json, faults.json, bench.json, report.html) written so a reader never sees half a file.

Each is rewritten while its run goes on (after every cell); a reader - the HTML report, a test, a
second terminal - must find either the previous complete file or the new one. So the text goes to a
temporary file in the same folder first, which then replaces the old one in one step (os.replace is
atomic within a file system).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from . import interrupt

# The schema of each run file, declared once: its writer and every reader (present/, bench's estimate) use these.
RESULTS_SCHEMA = "worker-lab/results/v1"
FAULTS_SCHEMA = "worker-lab/faults/v2"
MUTANTS_SCHEMA = "worker-lab/mutants/v1"
BENCH_SCHEMA = "worker-lab/bench/v1"
STABILITY_SCHEMA = "worker-lab/stability/v1"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=1))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunFile:
    """A run's JSON file (``data``), readable at every moment of the run: written as soon as it exists,
    rewritten after every entry added to ``data[entries]``, and finished at the lab's exit however it ends
    (a run still "running" then was interrupted, or failed)."""

    entries = "cells"

    def __init__(self, path: Path, data: dict):
        self.path = path
        self.data = data
        with interrupt.shielded():  # a run folder always holds a readable file, and it is finished
            self.write()
            interrupt.on_exit(self.finish_if_running)

    def write(self) -> None:
        """Count the summary, write the file (atomically, shielded)."""
        raise NotImplementedError

    def add(self, entry: dict) -> None:
        self.data[self.entries].append(entry)
        self.write()

    def finish(self, status: str) -> None:
        with interrupt.shielded():
            self.data["status"] = status
            self.data["finished"] = now_iso()
            self.write()

    def finish_if_running(self) -> None:
        if self.data["status"] == "running":
            self.finish("interrupted" if interrupt.received() else "failed")
