"""The checkers' speed: check_counter and check_isolation timed on synthetic, correct histories."""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path

CHECKER_TARGET_S = 5.0


def synthetic_counter(n: int, processes: int = 4) -> list[dict]:
    """n acknowledged increments of one shared, correct counter, 50 clients, plus final reads."""
    history = []
    for i in range(n):
        t = i * 0.0005
        history.append({"client": f"u{i % 50}", "req": i, "op": "incr", "phase": "load", "invoke": t,
                        "complete": t + 0.02, "status": 200, "value": i + 1, "pid": 1000 + i % processes,
                        "tid": 1, "instance": "i1", "worker_class": "sync"})
    end = n * 0.0005 + 1
    for j in range(processes * 4):
        history.append({"client": f"final{j}", "req": n + j, "op": "read", "phase": "final", "invoke": end,
                        "complete": end + 0.001, "status": 200, "value": n, "pid": 1000 + j % processes,
                        "tid": 1, "instance": "i1", "worker_class": "sync"})
    return history


def synthetic_isolation(n: int) -> list[dict]:
    history = []
    for i in range(n):
        token = f"u{i % 50}-{i:012x}"
        history.append({"client": f"u{i % 50}", "req": i, "op": "echo", "phase": "load", "invoke": i * 0.0005,
                        "complete": i * 0.0005 + 0.02, "status": 200, "sent": token, "value": token,
                        "pid": 1000 + i % 4, "tid": 1, "instance": "i1", "worker_class": "sync"})
    return history


def _profile(fn, history) -> list[list]:
    profiler = cProfile.Profile()
    profiler.runcall(fn, history)
    stats = pstats.Stats(profiler)
    rows = []
    for (file, line, name), (_, _, _, cumulative, _) in stats.stats.items():
        if "checkers.py" in file or "history.py" in file:
            rows.append([f"{Path(file).name}:{line} {name}", round(cumulative, 3)])
    return sorted(rows, key=lambda r: -r[1])[:8]


def _timed(fn, *args, gc_enabled: bool = True) -> tuple[float, object]:
    import gc

    was = gc.isenabled()
    if not gc_enabled:
        gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn(*args)
        return round(time.perf_counter() - t0, 3), result
    finally:
        if was:
            gc.enable()


def checker_speed(entries: int) -> dict:
    """Time check_counter / check_isolation on `entries` synthetic entries, as the matrix runs them (garbage
    collector on), and again with the collector off plus realtime_violations alone, to say where time goes."""
    from loadtests.checkers import check_counter, check_isolation, realtime_violations

    out: dict = {"entries": entries, "target_seconds": CHECKER_TARGET_S, "profile": {}}
    t0 = time.perf_counter()
    history = synthetic_counter(entries)
    out["generate_seconds"] = round(time.perf_counter() - t0, 3)
    out["check_counter_seconds"], result = _timed(check_counter, history)
    out["check_counter_verdict"] = sorted(result.verdict)
    out["check_counter_seconds_gc_off"], _ = _timed(check_counter, history, gc_enabled=False)
    acks = [e for e in history if e["phase"] == "load"]
    out["realtime_violations_seconds"], _ = _timed(realtime_violations, acks)
    out["realtime_violations_seconds_gc_off"], _ = _timed(realtime_violations, acks, gc_enabled=False)
    if out["check_counter_seconds"] > CHECKER_TARGET_S:
        out["profile"]["check_counter"] = _profile(check_counter, history)
    del history, result, acks
    history = synthetic_isolation(entries)
    out["check_isolation_seconds"], result = _timed(check_isolation, history)
    out["check_isolation_verdict"] = sorted(result.verdict)
    out["check_isolation_seconds_gc_off"], _ = _timed(check_isolation, history, gc_enabled=False)
    if out["check_isolation_seconds"] > CHECKER_TARGET_S:
        out["profile"]["check_isolation"] = _profile(check_isolation, history)
    del history, result
    out["met"] = max(out["check_counter_seconds"], out["check_isolation_seconds"]) <= CHECKER_TARGET_S
    return out
