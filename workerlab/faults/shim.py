"""The host-crash shim: an LD_PRELOAD library under which a kill -9 of redis loses its unsynced AOF tail."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import procs
from ..procs import StackError

SHIM_SOURCE = Path(__file__).resolve().parent.parent / "shim" / "unsynced_aof.c"


def c_compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def build_shim(folder: Path) -> Path:
    """Compile workerlab/shim/unsynced_aof.c (redis loses its unsynced AOF tail on kill -9, as on a host crash)."""
    compiler = c_compiler()
    if compiler is None:
        raise StackError("the host-crash faults need a C compiler: apt-get install gcc")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "unsynced_aof.so"
    proc = procs.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE), "-ldl", "-lpthread"],
                     text=True, timeout=120)
    if proc.returncode != 0:
        raise StackError(f"building {SHIM_SOURCE.name} failed:\n{proc.stderr[-2000:]}")
    return out
