"""Run files (results.json, faults.json, bench.json, report.html) written so a reader never sees half a file.

Each is rewritten while its run goes on (after every cell); a reader - the HTML report, a test, a
second terminal - must find either the previous complete file or the new one. So the text goes to a
temporary file in the same folder first, which then replaces the old one in one step (os.replace is
atomic within a file system).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=1))
