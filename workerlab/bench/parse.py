"""Turning the tools' outputs into figures: wrk, redis-benchmark, the lab's driver (pure functions,
unit-tested on captured outputs in tests/fixtures/bench/)."""

from __future__ import annotations

import json
import re
import statistics

from ..results import throughput

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SCALE = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_S[match.group(2)] * 1000


def _count(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)([kMG]?)", text.strip())
    if not match:
        raise ValueError(f"not a wrk count: {text!r}")
    return float(match.group(1)) * _SCALE[match.group(2)]


def parse_wrk(text: str) -> dict:
    """Figures from wrk's output (run with ``--latency``); raises ValueError when it has none."""
    out: dict = {"non_2xx": 0, "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}}
    match = re.search(r"(\d+) threads and (\d+) connections", text)
    if match:
        out["threads"], out["connections"] = int(match.group(1)), int(match.group(2))
    match = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w*B) read", text)
    if not match:
        raise ValueError("no 'N requests in T' line in wrk output")
    out["requests"] = int(match.group(1))
    out["seconds"] = _duration_ms(match.group(2)) / 1000
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not match:
        raise ValueError("no 'Requests/sec' line in wrk output")
    out["rps_all"] = float(match.group(1))
    match = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if match:
        out["latency_avg_ms"] = _duration_ms(match.group(1))
        out["latency_max_ms"] = _duration_ms(match.group(3))
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", text, re.M):
        out[f"p{pct}_ms"] = _duration_ms(value)
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if match:
        out["non_2xx"] = int(match.group(1))
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if match:
        out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, match.groups()),
                                        strict=True))
    ok = out["requests"] - out["non_2xx"]
    out["errors"] = out["non_2xx"] + sum(out["socket_errors"].values())
    out["rps"] = out["rps_all"] * ok / out["requests"] if out["requests"] else 0.0
    return out


def parse_redis_benchmark(text: str) -> dict:
    """``redis-benchmark -t incr -q`` output: 'INCR: 98039.22 requests per second, p50=0.263 msec'."""
    # -q rewrites its progress line with carriage returns; the last segment holds the result.
    lines = [seg for line in text.splitlines() for seg in line.split("\r")]
    for line in reversed(lines):
        match = re.search(r"INCR:\s+([\d.]+) requests per second(?:, p50=([\d.]+) msec)?", line)
        if match:
            return {"ops": float(match.group(1)), "p50_ms": float(match.group(2)) if match.group(2) else None}
    raise ValueError("no 'INCR: N requests per second' line in redis-benchmark output")


def parse_driver_line(line: str) -> dict | None:
    """One of the driver's JSON event lines, or None for anything else (a warning on stdout)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def parse_driver_events(lines) -> list[dict]:
    return [e for e in map(parse_driver_line, lines) if e is not None]


def lab_figures(stats: dict, history: list[dict] | None) -> dict:
    """The lab's figures for one measurement: from its history (as results.json computes them) or,
    when nothing was recorded, from the driver's own counts and locust's percentiles."""
    errors = max(0, (stats.get("attempted") or 0) - (stats.get("load_ok") or 0))
    if history:
        t = throughput(history, stats)
        load = [e for e in history if e.get("phase", "load") == "load"]
        return {"rps": t["rps"], "p50_ms": t["p50_ms"], "p99_ms": t["p99_ms"],
                "requests": sum(1 for e in load if e.get("status") == 200),
                "errors": sum(1 for e in load if e.get("status") != 200), "seconds": t["load_seconds"]}
    return {"rps": stats.get("rps"), "p50_ms": stats.get("locust_p50_ms"), "p99_ms": stats.get("locust_p99_ms"),
            "requests": stats.get("load_ok"), "errors": errors, "seconds": stats.get("load_seconds")}


def us_per_request(cores: float | None, rps: float | None) -> float | None:
    """Cores busy over requests per second: µs of CPU per request (None when either is missing)."""
    return round(1e6 * cores / rps, 1) if cores is not None and rps else None


def spread(values) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4), "n": len(values)}
