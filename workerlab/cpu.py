"""CPU time of process trees, from /proc (psutil): what the server spent, whoever generated the load.

A process's figure is its own user+system time plus that of its children it has reaped (a worker a
gunicorn master replaced, a process a dev server forked per request): summed over a live tree, every CPU
second is counted once - by the process while it lives, by its parent once it is reaped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

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
            total += t.user + t.system + t.children_user + t.children_system
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
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


def server_cpus(pids) -> int:
    """How many CPUs the server's processes may run on (their affinity), at least 1."""
    cpus: set[int] = set()
    for p in tree(pids):
        try:
            cpus |= set(p.cpu_affinity())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return max(1, len(cpus))


@dataclass
class ServerCpu:
    """The CPU seconds each group of server processes (app, nginx, the strategy's store) spent between
    start() and stop(): one cell's load window."""

    groups: dict[str, list[int]]
    before: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)
    waited: float = 0.0  # seconds the server's threads were runnable but got no CPU (other work had it)

    def _all(self) -> list[int]:
        return [pid for pids in self.groups.values() for pid in pids]

    def start(self) -> ServerCpu:
        self.before = {name: cpu_seconds(pids) for name, pids in self.groups.items()}
        self.wait0 = runqueue_seconds(self._all())
        return self

    def stop(self) -> ServerCpu:
        self.spent = {name: max(0.0, cpu_seconds(pids) - self.before[name]) for name, pids in self.groups.items()}
        self.waited = max(0.0, runqueue_seconds(self._all()) - self.wait0)
        return self


TICK_S = 1 / os.sysconf("SC_CLK_TCK")
# A server answering at this share of what its CPUs allow is CPU-bound.
CPU_BOUND_SHARE = 0.85
# A server whose threads waited this many CPUs' worth of time for a CPU was held back by other work on the
# machine (the generator, other runs): its throughput says more about the machine than about the server.
SHARED_CPU_WAIT_CORES = 0.25
LIMITS = {  # name: (short, for a narrow table; what it means)
    "server-cpu": ("cpu", "the server used the CPUs it may use: rps is its capacity at this CPU per request"),
    "generator": ("gen", "the load generator was busy while the server was below its capacity: rps is the "
                         "generator's"),
    "shared-cpu": ("shared", "the server's threads waited for a CPU other work held: rps is the machine's, not the "
                             "server's"),
    "server-wait": ("wait", "neither CPU nor generator: the server waited on locks, I/O, a store, or too few "
                            "workers"),
}


def cost(spent: dict[str, float], waited: float, answered: int, load_seconds: float, cpus: int, rps: float | None,
         generator_busy: bool) -> dict:
    """CPU per request (µs, by group and in all), what the server's CPUs could answer at that cost, and what
    limited this cell's throughput (one of LIMITS)."""
    total = sum(spent.values())
    if not answered or not load_seconds or total <= 0:
        return {"cpu_us_per_request": None, "cpu_us_grain": None, "cpu_us_by": None, "server_cores": None,
                "server_wait_cores": None, "server_cpus": cpus, "capacity_rps": None, "limit": None}
    per_request = total / answered
    capacity = cpus / per_request
    wait_cores = waited / load_seconds
    if rps is not None and rps >= CPU_BOUND_SHARE * capacity:
        limit = "server-cpu"
    elif generator_busy:
        limit = "generator"
    elif wait_cores >= SHARED_CPU_WAIT_CORES:
        limit = "shared-cpu"
    else:
        limit = "server-wait"
    return {"cpu_us_per_request": round(1e6 * per_request, 1),
            # psutil reads CPU time in the kernel's clock ticks: each group's figure is off by up to one
            "cpu_us_grain": round(1e6 * TICK_S * len(spent) / answered, 1),
            "cpu_us_by": {name: round(1e6 * s / answered, 1) for name, s in spent.items()},
            "server_cores": round(total / load_seconds, 3), "server_wait_cores": round(wait_cores, 3),
            "server_cpus": cpus, "capacity_rps": round(capacity, 1), "limit": limit}
