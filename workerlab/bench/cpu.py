"""CPU accounting for the bench: psutil and /proc on process trees, CpuWindow, pinning and renicing."""

from __future__ import annotations

import os
import time

import psutil


def tree(pids) -> list[psutil.Process]:
    procs = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs.append(root)
            procs.extend(root.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return procs


def cpu_seconds(pids) -> float:
    total = 0.0
    for p in tree(pids):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def runqueue_seconds(pids) -> float:
    """Time the trees' threads spent runnable but waiting for a CPU (/proc/<pid>/task/<tid>/schedstat).

    CPU share says what a process got; this says what it wanted and did not get: a generator that
    waits for its core is the bottleneck even at a low CPU share.
    """
    total = 0
    for p in tree(pids):
        try:
            tids = os.listdir(f"/proc/{p.pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p.pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")


def machine_busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in _BUSY_FIELDS)


def cpus_busy_seconds() -> list[float]:
    """Busy time of each CPU (all processes): with pinning, how full the server's and generator's cores were."""
    return [sum(getattr(t, f, 0.0) for f in _BUSY_FIELDS) for t in psutil.cpu_times(percpu=True)]


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
