"""``workerlab bench``: how far the lab's throughput figures can be trusted.

For every gunicorn scenario and three cells - ``/hello``, one correct strategy (``redis-incr``)
and one racy one (``naive-global``) - the bench measures, interleaved on one running stack:

- the lab's own measurement: ``loadtests.driver`` (locust as a library, its users on the lab's HTTP client,
  loadtests/wire.py) recording every request as a history entry, its RPS computed by
  ``workerlab.results.throughput`` exactly as in results.json;
- the same cell with recording switched off (``"record": false``): the cost of recording;
- wrk (``-t1``, same connection count, same URL) as the reference generator.

Generator and server are pinned to separate cores by default (``--no-pin`` to compare). CPU is
measured with psutil on the process trees: the generator (driver process / wrk), the server
(app instances, nginx, sidecars) and everything else on the machine ("other"). Every figure is
the median over ``--repeat`` repetitions, with min and max.

It also measures ceilings (nginx answering by itself, redis INCR with redis-benchmark), the
checkers' speed on synthetic histories, and the matrix's wall time (estimated, or measured with
``--matrix-times``).

Layout, one job per module:

- ``parse``: wrk, redis-benchmark and driver-event outputs into figures (pure functions);
- ``cpu``: CPU accounting from psutil and /proc, ``CpuWindow``, pinning;
- ``run``: the bench as a kind of the one run loop (workerlab/runner.py): each scenario's stack, then nginx
  alone, a step; the lab's cells and wrk's turns alternate on it (``BenchRun``, ``LabTurns``);
- ``measure``: wrk's turns, the bench's cells, summaries;
- ``ceilings``: nginx alone as a stack (``services/nginx/alone.conf.j2``), redis INCR alone;
- ``stall``: one worker stopped mid-load, closed loop vs fixed rate: what coordinated omission hides;
- ``checker_timing``: the checkers' speed on synthetic histories;
- ``estimate``: the matrix's wall time, estimated from results.json files or measured;
- ``analysis``: the saturation guard, noise from other processes, targets;
- ``present``: the terminal report;
- ``command``: the ``bench`` click command, bench.json.

Schema ``worker-lab/bench/v1`` of ``results/<timestamp>/bench.json``::

    {
      "schema": "worker-lab/bench/v1", "run_id", "status": "running" | "complete" | "interrupted" | "failed",
      "started", "finished",
      "settings": {"scenarios", "repeat", "duration", "requests" (null: budget sized to `duration`), "users",
                   "pin", "server_cpus", "generator_cpus", "nice", "quick", "record_cost", "checker_entries"},
      "machine": {"cpu_count", "platform", "loadavg_start", "loadavg_end"},
      "versions": {"wrk", "redis-benchmark", "nginx", "locust", "python"},
      "scenarios": {name: {
        "error": null | text, "startup_seconds", "stop_seconds", "driver_startup_seconds", "url",
        "calibration_rps": {cell: wrk rps over 1 s}, # sizes the lab's request budget to about --duration
        "cells": {"hello" | "redis-incr" | "naive-global": {
          "path": "/hello" | "/s/<strategy>/incr?key=...",
          "measurements": [{
            "rep", "tool": "lab" | "wrk", "record": true | false | null (wrk),
            "rps",                         # successful (HTTP 200 / 2xx) responses per second
            "p50_ms", "p99_ms", "requests", "errors", "seconds",
            "generator_cpu",               # cores used by the load generator over the load
            "server_cpu", "server_cpu_by": {"app", "nginx", "sidecars"},   # cores
            "other_cpu",                   # cores used by every other process on the machine
            "server_wait", "generator_wait" (lab only),  # threads runnable but waiting for a CPU, on average
            "server_cores_busy", "generator_cores_busy",  # when pinned: how busy those cores were (any process)
            "driver_rps", "timed_out",     # lab only: load_ok / load_seconds as the driver saw it
            "error": null | text
          }],
          "summary": {
            "lab" | "lab_norec" | "wrk": {figure: {"median", "min", "max", "n"}},
            "ratio_lab_wrk": {"median", "min", "max", "n"},   # lab rps / wrk rps, per repetition
            "ratio_record": {"median", "min", "max", "n"}     # driver rps recording / not recording
          }}}}},
      "ceilings": {"hello_rps_wrk", "hello_rps_wrk_scenario", "nginx_rps_wrk", "redis_incr_ops",
                   "lab_rps_nginx", "lab_rps_nginx_not_recording",   # the lab's generator against nginx alone:
                                                                      # the most one generator core can send
                   "detail": {"nginx": {..., "lab": {..., "cpu_us_per_request_recording", ...}}, "redis": {...}}},
      "stall": {"scenario", "pause_s", "users", "rate", "error",     # stall.py: one worker SIGSTOPped mid-load
                "cells": {"closed-loop" | "fixed-rate": {"latency": {"uncorrected", "corrected"}, "rps", "late",
                                                          "dropped"}}} | null,
      "checker": {"entries", "generate_seconds", "check_counter_seconds", "check_isolation_seconds",
                  "check_counter_seconds_gc_off", "check_isolation_seconds_gc_off",   # garbage collector off
                  "realtime_violations_seconds", "realtime_violations_seconds_gc_off",  # its costliest part
                  "target_seconds", "met", "profile": {checker: [[function, cumulative seconds], ...]}},
      "matrix_times": {"default" | "quick": {"kind": "estimated" | "measured", "seconds", "cells",
                                             "breakdown": {part: seconds}, "per_cell_seconds" (estimated)},
                       "basis": text, "sources": [results.json paths] (estimated),
                       "observed_runs": [{"run", "status", "cells", "requests", "wall_seconds", "load_seconds"}]},
      "noise": {"threshold_cores", "measurements", "noisy", "other_cpu": spread},  # other processes' CPU
      "cpu_split": {scenario: {cell: {"gen_lab", "gen_wrk", "server_lab", "server_wrk",   # µs per answered request
                                      "bound",   # (server_wrk + gen_wrk) / (server_lab + gen_lab): lab/wrk at best
                                      "ratio"}}},  # the measured lab/wrk median
      "guard": {"threshold", "points": [[generator_cpu, ratio_lab_wrk, scenario, cell, generator_wait], ...],
                "share_rule" | "demand_rule": {"flagged", "short_of_wrk", "short_of_wrk_flagged",
                                               "flagged_but_faithful"}, "verdict": text},
      "targets": {"hello_lab_wrk_0.9": {...}, "record_ratio_0.95": {...}, "checker_5s": {...}}
    }
"""

from .analysis import HELLO_TARGET, NOISE_OTHER_CPU, RECORD_TARGET, cpu_split, guard_analysis, noise, targets
from .ceilings import NginxAlone, lab_ceiling_summary, redis_ceiling
from .checker_timing import CHECKER_TARGET_S, checker_speed, synthetic_counter, synthetic_isolation
from .command import DEFAULTS, QUICK, SCHEMA, bench, write_json
from .cpu import CpuWindow, cpu_seconds, cpus_busy_seconds, machine_busy_seconds, pin, preexec, runqueue_seconds, tree
from .estimate import estimate_matrix, measure_matrix, results_files
from .measure import CELLS, FIGURES, MIN_BUDGET, run_wrk, summarize, wrk_once
from .parse import (
    _duration_ms,
    lab_figures,
    parse_driver_events,
    parse_driver_line,
    parse_redis_benchmark,
    parse_wrk,
    spread,
)
from .present import console, print_report
from .run import BenchRun, LabTurns

# Every public name of the former workerlab/bench.py, so `from workerlab.bench import X` keeps working
# (_duration_ms: tests/test_bench.py).
__all__ = [
    "CELLS", "CHECKER_TARGET_S", "DEFAULTS", "FIGURES", "HELLO_TARGET", "MIN_BUDGET", "NOISE_OTHER_CPU", "QUICK",
    "RECORD_TARGET", "SCHEMA", "BenchRun", "CpuWindow", "LabTurns", "NginxAlone", "_duration_ms", "bench",
    "checker_speed",
    "console", "cpu_seconds", "cpu_split", "cpus_busy_seconds", "estimate_matrix", "guard_analysis", "lab_figures",
    "lab_ceiling_summary", "machine_busy_seconds", "measure_matrix", "noise",
    "parse_driver_events", "parse_driver_line", "parse_redis_benchmark", "parse_wrk", "pin", "preexec",
    "print_report", "redis_ceiling", "results_files", "run_wrk", "runqueue_seconds", "spread", "summarize", "wrk_once",
    "synthetic_counter", "synthetic_isolation", "targets", "tree", "write_json",
]
