"""The bench's terminal output: the console, number formatting and the final report."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from .analysis import HELLO_TARGET, RECORD_TARGET
from .checker_timing import CHECKER_TARGET_S

# Wide enough for the summary table when stdout is a file or a pipe (rich would assume 80 columns).
console = Console(width=None if sys.stdout.isatty() else 190)


def _fmt(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _med(s: dict | None, digits: int = 0, spread_: bool = True) -> str:
    if not s:
        return "-"
    if not spread_ or s["n"] == 1:
        return _fmt(s["median"], digits)
    return f"{_fmt(s['median'], digits)} [{_fmt(s['min'], digits)}–{_fmt(s['max'], digits)}]"


def print_report(data: dict) -> None:
    st = data["settings"]
    layout = (f"pinned: server on CPUs {st['server_cpus']}, generator on {st['generator_cpus']}" if st["pin"]
              else "not pinned")
    table = Table(title=f"lab (locust, recording) vs wrk: median [min–max] of {st['repeat']}; CPU in cores ({layout})")
    for col in ("scenario", "cell", "lab rps", "wrk rps", "lab/wrk", "lab p50/p99 ms", "wrk p50/p99 ms",
                "gen CPU lab/wrk", "lab gen wait", "server CPU lab/wrk", "other CPU", "rec/norec"):
        table.add_column(col)
    for name, r in data["scenarios"].items():
        if r.get("error"):
            table.add_row(name, "-", f"[red]{r['error']}[/]")
            continue
        for cell, c in r["cells"].items():
            s = c.get("summary") or {}
            lab, wrk = s.get("lab", {}), s.get("wrk", {})
            ratio = s.get("ratio_lab_wrk")
            color = "green" if ratio and ratio["median"] >= HELLO_TARGET else "yellow"
            table.add_row(
                name, cell, _med(lab.get("rps")), _med(wrk.get("rps")),
                f"[{color}]{_med(ratio, 2)}[/]",
                f"{_med(lab.get('p50_ms'), 1, False)}/{_med(lab.get('p99_ms'), 1, False)}",
                f"{_med(wrk.get('p50_ms'), 1, False)}/{_med(wrk.get('p99_ms'), 1, False)}",
                f"{_med(lab.get('generator_cpu'), 2, False)}/{_med(wrk.get('generator_cpu'), 2, False)}",
                _med(lab.get("generator_wait"), 2, False),
                f"{_med(lab.get('server_cpu'), 2, False)}/{_med(wrk.get('server_cpu'), 2, False)}",
                f"{_med(lab.get('other_cpu'), 2, False)}/{_med(wrk.get('other_cpu'), 2, False)}",
                _med(s.get("ratio_record"), 3),
            )
    console.print(table)
    print_cpu_split(data.get("cpu_split"))
    c = data.get("ceilings") or {}
    if c:
        console.print(f"ceilings: nginx alone (wrk) {_fmt(c.get('nginx_rps_wrk'))} rps; redis INCR "
                      f"(redis-benchmark) {_fmt(c.get('redis_incr_ops'))} ops/s; best /hello through the stack (wrk) "
                      f"{_fmt(c.get('hello_rps_wrk'))} rps ({c.get('hello_rps_wrk_scenario')})")
        lab = (c.get("detail") or {}).get("nginx", {}).get("lab") or {}
        if lab.get("rps_recording"):
            console.print(f"the lab's generator against nginx alone (its own ceiling): "
                          f"{_med(lab['rps_recording'])} rps recording, {_med(lab.get('rps_not_recording'))} not; "
                          f"generator CPU "
                          f"{_med(lab.get('generator_cpu'), 2)} of a core = "
                          f"{_med(lab.get('cpu_us_per_request_recording'), 0, False)} µs/request recording, "
                          f"{_med(lab.get('cpu_us_per_request_not_recording'), 0, False)} not")
    print_stall(data.get("stall"))
    ch = data.get("checker")
    if ch:
        mark = "[green]ok[/]" if ch["met"] else f"[red]over {CHECKER_TARGET_S:.0f}s[/]"
        console.print(f"checkers on {ch['entries']:,} synthetic entries: check_counter {ch['check_counter_seconds']}s, "
                      f"check_isolation {ch['check_isolation_seconds']}s ({mark}; generating them took "
                      f"{ch['generate_seconds']}s)")
        console.print(f"  with the garbage collector off: check_counter {ch.get('check_counter_seconds_gc_off')}s, "
                      f"check_isolation {ch.get('check_isolation_seconds_gc_off')}s; realtime_violations alone "
                      f"{ch.get('realtime_violations_seconds')}s ({ch.get('realtime_violations_seconds_gc_off')}s "
                      "collector off)")
        for name, rows in (ch.get("profile") or {}).items():
            console.print(f"  {name} slowest parts: " + "; ".join(f"{f} {s}s" for f, s in rows[:5]))
    n = data.get("noise")
    if n and n["noisy"]:
        console.print(f"[yellow]{n['noisy']} of {n['measurements']} measurements ran while other processes used more "
                      f"than {n['threshold_cores']} cores (median {_med(n['other_cpu'], 2)}): the machine was shared, "
                      "so absolute figures are low and ratios noisy[/]")
    g = data.get("guard")
    if g:
        console.print(f"saturation guard (generator_bound at >= {g['threshold']} of a core): {g['verdict']}")
    t = data.get("targets") or {}
    rec = t.get(f"record_ratio_{RECORD_TARGET}") or {}
    if rec.get("median"):
        console.print(f"recording cost: rps with recording / without, median over cells {_med(rec['median'], 3)} "
                      f"(target >= {RECORD_TARGET})")
    mt = data.get("matrix_times")
    if mt:
        for mode in ("default", "quick"):
            if mode in mt:
                m = mt[mode]
                console.print(f"matrix {mode}: {m['kind']} {m['seconds']:.0f}s for {m['cells']} cells - "
                              + ", ".join(f"{k} {v:.0f}s" for k, v in m["breakdown"].items()))
        console.print(f"  [dim]{mt.get('basis')}[/]")
        for o in mt.get("observed_runs") or []:
            console.print(f"  [dim]observed: run {o['run']} ({o['status']}) {o['cells']} cells at {o['requests']} "
                          f"requests in {o['wall_seconds']:.0f}s, of which load {o['load_seconds']:.0f}s[/]")


def print_cpu_split(split: dict | None) -> None:
    """analysis.cpu_split: µs of CPU per request, generator and server, lab and wrk, and the ratio they allow."""
    if not split:
        return
    table = Table(title="where a request's CPU goes, µs per answered request (medians): the best lab/wrk can be "
                        "when generator and server share the cores is (server + generator with wrk) / (with the lab)")
    for col in ("scenario", "cell", "generator lab", "generator wrk", "server lab", "server wrk", "bound", "lab/wrk"):
        table.add_column(col, justify="left" if col in ("scenario", "cell") else "right")
    for name, cells in split.items():
        for cell, row in cells.items():
            table.add_row(name, cell, *(_fmt(row[k]) for k in ("gen_lab", "gen_wrk", "server_lab", "server_wrk")),
                          _fmt(row["bound"], 2), _fmt(row["ratio"], 2))
    console.print(table)


def print_stall(stall: dict | None) -> None:
    """The stall (workerlab/bench/stall.py): closed-loop and corrected fixed-rate percentiles side by side."""
    if not stall:
        return
    if stall.get("error"):
        console.print(f"[red]stall: {stall['error']}[/]")
        return
    table = Table(title=f"a {stall['pause_s']:.0f} s stall of the only worker ({stall['scenario']}, {stall['users']} "
                        f"users): what each way of measuring shows, ms")
    for col in ("load", "p50", "p90", "p99", "p99.9", "max", "rps"):
        table.add_column(col, justify="left" if col == "load" else "right")
    cells = stall.get("cells") or {}
    rows = [("closed loop (as fast as answers come)", cells.get("closed-loop"), "uncorrected"),
            (f"fixed rate {stall['rate']:.0f}/s, from the send", cells.get("fixed-rate"), "uncorrected"),
            (f"fixed rate {stall['rate']:.0f}/s, from the scheduled start", cells.get("fixed-rate"), "corrected")]
    for label, cell, kind in rows:
        figures = ((cell or {}).get("latency") or {}).get(kind) or {}
        table.add_row(label, *(_fmt(figures.get(k), 1) for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")),
                      _fmt((cell or {}).get("rps")))
    console.print(table)
