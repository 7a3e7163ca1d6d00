"""``workerlab bench``: the click command, its options, the loop over scenarios and parts, bench.json."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import click

from .. import interrupt, procs
from ..matrix import new_run_dir
from ..paths import RESULTS_DIR
from ..results import now_iso
from ..runfile import BENCH_SCHEMA, write_json
from ..scenarios import Scenario, UnknownName, load_scenarios, pick
from ..stacks.native import find_binary, missing_binaries
from .analysis import cpu_split, guard_analysis, noise, targets
from .ceilings import redis_ceiling
from .checker_timing import checker_speed
from .cpu import CpuWindow, _cpu_layout
from .estimate import estimate_matrix, measure_matrix
from .measure import CELLS
from .present import console, print_report
from .run import BenchRun
from .stall import measure_stall

SCHEMA = BENCH_SCHEMA
DEFAULTS = {"repeat": 3, "duration": 3, "redis_requests": 100_000, "checker_entries": 1_000_000}
QUICK = {"repeat": 1, "duration": 2, "redis_requests": 20_000}


def _gunicorn_scenarios(names: list[str]) -> dict[str, Scenario]:
    scenarios = load_scenarios()
    gunicorn = {n: s for n, s in scenarios.items() if s.server == "gunicorn"}
    if not names:
        return gunicorn
    try:
        chosen = pick(names, scenarios, "scenario")
    except UnknownName as exc:
        raise click.UsageError(str(exc)) from None
    others = [n for n in chosen if n not in gunicorn]
    if others:
        raise click.UsageError(f"bench measures gunicorn scenarios only; not: {', '.join(others)}")
    return {n: gunicorn[n] for n in chosen}


def _versions() -> dict:
    import importlib.metadata

    def first_line(argv):
        try:
            out = procs.run(argv, text=True, timeout=5)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return None

    return {"wrk": first_line(["wrk", "-v"]), "redis-benchmark": first_line(["redis-benchmark", "--version"]),
            "nginx": first_line([find_binary("nginx"), "-v"]), "locust": importlib.metadata.version("locust"),
            "python": platform.python_version()}


def _finish_if_running(path: Path, data: dict) -> None:
    if data["status"] == "running":
        data["status"] = "interrupted" if interrupt.received() else "failed"
        data["finished"] = now_iso()
        write_json(path, data)


@click.command()
@click.option("--scenario", "-s", multiple=True, help="gunicorn scenario(s), repeatable or comma-separated; "
                                                      "default every gunicorn scenario.")
@click.option("--repeat", "-r", type=click.IntRange(1, 20), default=None,
              help=f"Repetitions of every measurement [default {DEFAULTS['repeat']}, --quick {QUICK['repeat']}].")
@click.option("--duration", "-d", type=click.IntRange(1, 60), default=None,
              help=f"Seconds per measurement, lab and wrk [default {DEFAULTS['duration']}].")
@click.option("--requests", "-n", type=click.IntRange(50, 1_000_000), default=None,
              help="Give the lab a request budget instead of --duration (wrk still runs --duration).")
@click.option("--users", "-u", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="Concurrent users (locust) = connections (wrk).")
@click.option("--quick", is_flag=True, help="One repetition of short measurements.")
@click.option("--pin/--no-pin", default=False, show_default=True,
              help="Pin the generator to the last CPU and the server to the others. Not by default: the matrix "
                   "does not pin (its servers keep every core), and the bench measures what the matrix measures.")
@click.option("--nice", type=click.IntRange(-20, 19), default=0, show_default=True,
              help="Run server and generators at this nice value (negative needs root): on a shared machine, "
                   "keeps other work from starving the measurement.")
@click.option("--record-cost/--no-record-cost", default=True, show_default=True,
              help="Also measure every lab cell without recording.")
@click.option("--ceilings/--no-ceilings", default=True, show_default=True,
              help="Measure nginx alone and redis INCR alone.")
@click.option("--stall/--no-stall", default=True, show_default=True,
              help="Stop sync-x1's worker for 2 s under closed-loop and fixed-rate load: what coordinated omission "
                   "hides.")
@click.option("--checker-entries", type=click.IntRange(0, 10_000_000), default=DEFAULTS["checker_entries"],
              show_default=True, help="Synthetic history entries for the checker timing (0 skips it).")
@click.option("--matrix-times", is_flag=True,
              help="Run the default matrix and --quick end to end and time them (~15 min) instead of estimating.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR, show_default=True,
              help="Folder for results/<timestamp>/bench.json.")
def bench(scenario, repeat, duration, requests, users, quick, pin, nice, record_cost, ceilings, stall,
          checker_entries, matrix_times, output):
    """Measure the lab's own throughput against wrk, the cost of recording, ceilings, checker speed, matrix time."""
    from ..strategies import STRATEGIES

    names = [v for value in scenario for v in value.split(",") if v]
    scenarios = _gunicorn_scenarios(names)
    missing = missing_binaries() + [b for b in ("wrk", "redis-benchmark") if not shutil.which(b)]
    if missing:
        raise click.ClickException(f"missing {', '.join(missing)}: apt-get install nginx redis-server memcached "
                                   "redis-tools wrk")
    server_cpus, generator_cpus = _cpu_layout(pin)
    CpuWindow.layout = (server_cpus, generator_cpus)
    base = QUICK if quick else DEFAULTS
    opts = {
        "repeat": repeat or base["repeat"], "duration": duration or base.get("duration", DEFAULTS["duration"]),
        "requests": requests, "users": users, "pin": bool(server_cpus), "server_cpus": server_cpus,
        "generator_cpus": generator_cpus, "quick": quick, "record_cost": record_cost, "nice": nice,
        "redis_requests": base.get("redis_requests", DEFAULTS["redis_requests"]), "checker_entries": checker_entries,
    }
    with interrupt.shielded():  # the folder and its first bench.json come together
        run_dir = new_run_dir(output)
        data = {
            "schema": SCHEMA, "run_id": run_dir.name, "status": "running", "started": now_iso(), "finished": None,
            "settings": {**{k: v for k, v in opts.items() if k not in ("server_cpus", "generator_cpus")},
                         "server_cpus": sorted(server_cpus) if server_cpus else None,
                         "generator_cpus": sorted(generator_cpus) if generator_cpus else None,
                         "scenarios": list(scenarios)},
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
            "versions": {},  # probed once bench.json exists
            "scenarios": {}, "ceilings": {}, "stall": None, "checker": None, "matrix_times": None,
        }
        path = run_dir / "bench.json"
        write_json(path, data)
        interrupt.on_exit(lambda: _finish_if_running(path, data))
    data["versions"] = _versions()
    write_json(path, data)
    console.print(f"bench: {len(scenarios)} scenario(s) x {len(CELLS)} cells x {opts['repeat']} repetition(s), "
                  f"{opts['duration']}s each, {users} users/connections, "
                  f"{'pinned' if opts['pin'] else 'not pinned'}; load average {os.getloadavg()[0]:.1f}")
    status = "failed"
    try:
        data["ceilings"] = {"hello_rps_wrk": None, "hello_rps_wrk_scenario": None, "nginx_rps_wrk": None,
                            "redis_incr_ops": None, "lab_rps_nginx": None, "lab_rps_nginx_not_recording": None,
                            "detail": {}}
        BenchRun(scenarios, run_dir, opts, data, lambda: write_json(path, data), ceilings).run()
        hello = {n: (r.get("cells", {}).get("hello", {}).get("summary") or {}).get("wrk", {}).get("rps")
                 for n, r in data["scenarios"].items()}
        hello = {n: s["median"] for n, s in hello.items() if s}
        best = max(hello, key=hello.get) if hello else None
        data["ceilings"].update(hello_rps_wrk=hello.get(best), hello_rps_wrk_scenario=best)
        if ceilings:
            nginx = data["ceilings"]["detail"].get("nginx") or {}
            redis = data["ceilings"]["detail"]["redis"] = redis_ceiling(run_dir, opts)
            lab = nginx.get("lab") or {}
            data["ceilings"].update(nginx_rps_wrk=(nginx.get("rps") or {}).get("median"),
                                    redis_incr_ops=(redis.get("ops") or {}).get("median"),
                                    lab_rps_nginx=(lab.get("rps_recording") or {}).get("median"),
                                    lab_rps_nginx_not_recording=(lab.get("rps_not_recording") or {}).get("median"))
            write_json(path, data)
        if stall:
            console.print("[bold cyan]stall[/]: one worker stopped for 2 s, closed loop and fixed rate")
            data["stall"] = measure_stall(run_dir / "stall")
            write_json(path, data)
        if checker_entries:
            console.print(f"[bold cyan]checkers[/] on {checker_entries:,} synthetic entries")
            data["checker"] = checker_speed(checker_entries)
            write_json(path, data)
        if matrix_times:
            console.print("[bold cyan]matrix times[/]: running the default matrix and --quick (takes a while)")
            data["matrix_times"] = measure_matrix(run_dir)
        else:
            data["matrix_times"] = estimate_matrix([RESULTS_DIR, output], data["scenarios"], load_scenarios(),
                                                   STRATEGIES)
        data["guard"] = guard_analysis(data["scenarios"])
        data["cpu_split"] = cpu_split(data["scenarios"])
        data["noise"] = noise(data["scenarios"])
        data["targets"] = targets(data["scenarios"], data["checker"])
        status = "complete"
    except KeyboardInterrupt:  # what was measured is still written and printed
        pass
    finally:
        with interrupt.shielded():
            data["status"] = "interrupted" if interrupt.received() else status
            data["finished"] = now_iso()
            data["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
            write_json(path, data)
    print_report(data)
    console.print(f"bench.json: {path}")
