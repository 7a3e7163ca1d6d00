"""What the measurements say: the saturation guard, noise from other processes, the targets."""

from __future__ import annotations

from ..results import GENERATOR_BOUND_SHARE
from .parse import spread, us_per_request

NOISE_OTHER_CPU = 0.25  # cores used by unrelated processes above which a measurement is marked noisy
HELLO_TARGET = 0.9
RECORD_TARGET = 0.95


def guard_analysis(scenarios: dict) -> dict:
    """Does results.py's guard (generator_bound: generator CPU share >= GENERATOR_BOUND_SHARE) catch the
    lab measurements that fell short of wrk? Compared with a guard on demand = CPU share + run-queue wait."""
    points = []
    for name, r in scenarios.items():
        for cell, c in r.get("cells", {}).items():
            by_rep = {}
            for m in c["measurements"]:
                if not m.get("error"):
                    by_rep.setdefault(m["rep"], {})["wrk" if m["tool"] == "wrk" else
                                                     ("lab" if m["record"] else "norec")] = m
            for rep in by_rep.values():
                if "lab" in rep and "wrk" in rep and rep["wrk"].get("rps") and rep["lab"].get("rps"):
                    lab = rep["lab"]
                    points.append([lab["generator_cpu"], round(lab["rps"] / rep["wrk"]["rps"], 3), name, cell,
                                   lab.get("generator_wait")])
    threshold = GENERATOR_BOUND_SHARE

    def rule(share_only: bool) -> dict:
        def bound(p):
            return (p[0] or 0) + (0 if share_only else (p[4] or 0)) >= threshold
        low = [p for p in points if p[1] < HELLO_TARGET]
        return {"flagged": sum(1 for p in points if bound(p)),
                "short_of_wrk": len(low), "short_of_wrk_flagged": sum(1 for p in low if bound(p)),
                "flagged_but_faithful": sum(1 for p in points if bound(p) and p[1] >= HELLO_TARGET)}

    share, demand = rule(True), rule(False)
    return {
        "threshold": threshold,
        "points": points,
        "share_rule": share,
        "demand_rule": demand,
        "max_generator_cpu": max((p[0] for p in points if p[0] is not None), default=None),
        "verdict": (f"{len(points)} lab measurements, {share['short_of_wrk']} under {HELLO_TARGET} of wrk; "
                    f"the CPU-share guard (>= {threshold}) flags {share['flagged']} and catches "
                    f"{share['short_of_wrk_flagged']} of those short ones; share + run-queue wait >= {threshold} "
                    f"flags {demand['flagged']} and catches {demand['short_of_wrk_flagged']}"),
    }


def noise(scenarios: dict) -> dict:
    ms = [m for r in scenarios.values() for c in r.get("cells", {}).values() for m in c["measurements"]
          if m.get("other_cpu") is not None]
    noisy = [m for m in ms if m["other_cpu"] > NOISE_OTHER_CPU]
    return {"threshold_cores": NOISE_OTHER_CPU, "measurements": len(ms), "noisy": len(noisy),
            "other_cpu": spread(m["other_cpu"] for m in ms)}


def targets(scenarios: dict, checker: dict | None) -> dict:
    hello = {n: (r["cells"].get("hello", {}).get("summary") or {}).get("ratio_lab_wrk") for n, r in scenarios.items()
             if r.get("cells")}
    record = [(n, cell, (c.get("summary") or {}).get("ratio_record")) for n, r in scenarios.items()
              for cell, c in r.get("cells", {}).items()]
    out = {
        f"hello_lab_wrk_{HELLO_TARGET}": {
            "per_scenario": {n: s["median"] if s else None for n, s in hello.items()},
            "met": all(s and s["median"] >= HELLO_TARGET for s in hello.values()) if hello else None},
        f"record_ratio_{RECORD_TARGET}": {
            "per_cell": {f"{n}/{cell}": s["median"] if s else None for n, cell, s in record},
            "median": spread(s["median"] for _, _, s in record if s),
            "met": (all(s["median"] >= RECORD_TARGET for _, _, s in record if s) if any(s for *_, s in record)
                    else None)},
    }
    if checker:
        out["checker_5s"] = {"seconds": max(checker["check_counter_seconds"], checker["check_isolation_seconds"]),
                             "met": checker["met"]}
    return out


def _us_per_request(figures: dict, cores: str) -> float | None:
    """Median cores over median rps, in µs of CPU per answered request."""
    return us_per_request((figures.get(cores) or {}).get("median"), (figures.get("rps") or {}).get("median"))


def cpu_split(scenarios: dict) -> dict:
    """Where each request's CPU goes, lab against wrk, per scenario and cell (µs per answered request).

    When generator and server share the machine's cores and the cores are the limit, each request costs the
    generator's µs plus the server's, so the best lab/wrk can be is (server_wrk + gen_wrk) / (server_lab +
    gen_lab) - the ``bound``. A measured ratio near the bound is explained by CPU alone: the generator's own
    µs per request (``gen_lab`` against ``gen_wrk``) and any extra the server spends on the lab's traffic
    (``server_lab`` against ``server_wrk``)."""
    out: dict = {}
    for name, r in scenarios.items():
        for cell, c in (r.get("cells") or {}).items():
            s = c.get("summary") or {}
            lab, wrk = s.get("lab") or {}, s.get("wrk") or {}
            row = {"gen_lab": _us_per_request(lab, "generator_cpu"), "gen_wrk": _us_per_request(wrk, "generator_cpu"),
                   "server_lab": _us_per_request(lab, "server_cpu"),
                   "server_wrk": _us_per_request(wrk, "server_cpu"),
                   "ratio": (s.get("ratio_lab_wrk") or {}).get("median")}
            parts = [row[k] for k in ("gen_lab", "gen_wrk", "server_lab", "server_wrk")]
            row["bound"] = (round((row["server_wrk"] + row["gen_wrk"]) / (row["server_lab"] + row["gen_lab"]), 3)
                            if None not in parts and row["server_lab"] + row["gen_lab"] else None)
            out.setdefault(name, {})[cell] = row
    return out
