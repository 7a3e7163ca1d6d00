"""wrk's turns of the bench (run_wrk, wrk_once), the bench's cells, and the summary of a cell's measurements."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from .. import procs
from .cpu import CpuWindow, preexec
from .parse import parse_wrk, spread

# name -> (kind of driver cell, strategy, path template); {key} is a fresh key per measurement.
CELLS = {
    "hello": ("path", "hello", "/hello"),
    "redis-incr": ("counter", "redis-incr", "/s/redis-incr/incr?key={key}"),
    "naive-global": ("counter", "naive-global", "/s/naive-global/incr?key={key}"),
}
MIN_BUDGET = 200
FIGURES = ("rps", "p50_ms", "p99_ms", "generator_cpu", "generator_wait", "server_cpu", "server_wait", "other_cpu")


def run_wrk(url: str, connections: int, duration: int, cpus: set[int] | None,
            nice: int = 0) -> tuple[str, float, float, int]:
    """wrk -t1 for `duration` (whole) seconds; returns (output, wall, its CPU seconds from wait4, exit code)."""
    argv = [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
            "--timeout", "10s", url]
    t0 = time.monotonic()
    proc = procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=preexec(cpus, nice),
                       text=True)
    killer = threading.Timer(duration + 30, proc.kill)
    killer.start()
    try:
        output = proc.stdout.read()
        _, status, rusage = os.wait4(proc.pid, 0)  # rusage of the exited child: its own CPU time
        procs.untrack(proc)
    except BaseException:
        procs.kill_session(proc)
        raise
    finally:
        killer.cancel()
        proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return output, time.monotonic() - t0, rusage.ru_utime + rusage.ru_stime, proc.returncode


def wrk_once(url: str, groups: dict, raw_path: Path, opts: dict) -> dict:
    """One wrk turn of --duration seconds against `url`, with the server's CPU over it."""
    window = CpuWindow(groups).start()
    output, wall, cpu, code = run_wrk(url, opts["users"], opts["duration"], opts["generator_cpus"], opts["nice"])
    cpu_window = window.stop().figures(cpu)
    raw_path.write_text(output)
    try:
        w = parse_wrk(output)
    except ValueError as exc:
        return {"error": f"wrk exit {code}: {exc}: {output[-300:]}"}
    return {"rps": round(w["rps"], 1), "p50_ms": w.get("p50_ms"), "p99_ms": w.get("p99_ms"),
            "requests": w["requests"] - w["non_2xx"], "errors": w["errors"], "seconds": w["seconds"],
            "generator_cpu": round(cpu / wall, 3), **cpu_window, "error": None}


def summarize(measurements: list[dict]) -> dict:
    ok = [m for m in measurements if not m.get("error")]
    groups = {"lab": [m for m in ok if m["tool"] == "lab" and m["record"]],
              "lab_norec": [m for m in ok if m["tool"] == "lab" and m["record"] is False],
              "wrk": [m for m in ok if m["tool"] == "wrk"]}
    out = {name: {f: spread(m.get(f) for m in ms) for f in FIGURES} for name, ms in groups.items() if ms}
    by_rep = {}
    for m in ok:
        key = "wrk" if m["tool"] == "wrk" else ("lab" if m["record"] else "lab_norec")
        by_rep.setdefault(m["rep"], {})[key] = m
    ratios = [r["lab"]["rps"] / r["wrk"]["rps"] for r in by_rep.values()
              if "lab" in r and "wrk" in r and r["lab"].get("rps") and r["wrk"].get("rps")]
    record = [r["lab"]["driver_rps"] / r["lab_norec"]["driver_rps"] for r in by_rep.values()
              if "lab" in r and "lab_norec" in r and r["lab"].get("driver_rps") and r["lab_norec"].get("driver_rps")]
    out["ratio_lab_wrk"] = spread(ratios)
    out["ratio_record"] = spread(record)
    return out
