"""CPU accounting for the bench: CpuWindow over named process groups, pinning and renicing (the process-tree
figures themselves are workerlab/cpu.py's, shared with the matrix)."""

from __future__ import annotations

import os
import time

from ..cpu import cpu_seconds, cpus_busy_seconds, machine_busy_seconds, runqueue_seconds, tree

__all__ = ["CpuWindow", "cpu_seconds", "cpus_busy_seconds", "machine_busy_seconds", "pin", "preexec",
           "runqueue_seconds", "tree"]


def pin(pids, cpus: set[int] | None, nice: int = 0) -> None:
    """Pin (and renice) every thread of every process in the trees: both are per thread on Linux."""
    if not cpus and not nice:
        return
    for p in tree(pids):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p.pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                if cpus:
                    os.sched_setaffinity(tid, cpus)
                if nice:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
            except OSError:
                pass


def preexec(cpus: set[int] | None, nice: int = 0):
    """For Popen: pin and renice the child before it runs (its threads inherit both)."""
    if not cpus and not nice:
        return None

    def apply():
        if cpus:
            os.sched_setaffinity(0, cpus)
        if nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)

    return apply


class CpuWindow:
    """CPU used by named process groups and by the whole machine between start() and stop()."""

    # Set by the bench when it pins: which CPUs to report as the server's and the generator's cores.
    layout: tuple[set[int] | None, set[int] | None] = (None, None)

    def __init__(self, groups: dict[str, list[int]], generator: int | None = None):
        self.groups = groups
        self.generator = [generator] if generator else []

    def _waits(self) -> tuple[float, float]:
        return runqueue_seconds(p for pids in self.groups.values() for p in pids), runqueue_seconds(self.generator)

    def start(self) -> CpuWindow:
        self.t0 = time.monotonic()
        self.c0 = {name: cpu_seconds(pids) for name, pids in self.groups.items()}
        self.m0 = machine_busy_seconds()
        self.p0 = cpus_busy_seconds()
        self.w0 = self._waits()
        return self

    def stop(self) -> CpuWindow:
        self.wall = time.monotonic() - self.t0
        self.used = {name: cpu_seconds(pids) - self.c0[name] for name, pids in self.groups.items()}
        self.machine = machine_busy_seconds() - self.m0
        self.percpu = [b - a for a, b in zip(self.p0, cpus_busy_seconds(), strict=False)]
        self.waits = [b - a for a, b in zip(self.w0, self._waits(), strict=True)]
        return self

    def figures(self, generator_seconds: float) -> dict:
        """Cores used over the window; 'other' is the machine's busy time less server and generator."""
        wall, used, machine = self.wall, self.used, self.machine
        server = sum(used.values())
        return {
            "server_cpu": round(server / wall, 3),
            "server_cpu_by": {name: round(v / wall, 3) for name, v in used.items()},
            "other_cpu": round(max(0.0, machine - server - generator_seconds) / wall, 3),
            "server_wait": round(self.waits[0] / wall, 3),
            **({"generator_wait": round(self.waits[1] / wall, 3)} if self.generator else {}),
            **{f"{who}_cores_busy": round(sum(self.percpu[c] for c in cpus if c < len(self.percpu)) / wall, 3)
               for who, cpus in zip(("server", "generator"), self.layout, strict=True) if cpus},
            "window_seconds": round(wall, 3),
        }


def _cpu_layout(do_pin: bool) -> tuple[set[int] | None, set[int] | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if not do_pin or len(cpus) < 2:
        return None, None
    return set(cpus[:-1]), {cpus[-1]}
