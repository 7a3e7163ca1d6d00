"""Tests for `workerlab bench` (workerlab/bench/).

Parsing is tested on real outputs captured from wrk, redis-benchmark and the lab's driver
(tests/fixtures/bench/); the smoke test runs the real bench on one scenario with a tiny budget.
No test asserts a timing: the machine is shared and timings say nothing about correctness.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.checkers import check_counter, check_isolation
from loadtests.history import read_history
from workerlab import bench
from workerlab.bench import analysis
from workerlab.results import throughput

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bench"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# -- wrk ---------------------------------------------------------------------------------------------
def test_wrk_hello_output():
    w = bench.parse_wrk(fixture("wrk-hello.txt"))
    assert w["threads"] == 1 and w["connections"] == 50
    assert w["requests"] > 0 and w["seconds"] > 0
    assert w["errors"] == 0 and w["non_2xx"] == 0
    assert w["rps"] == pytest.approx(w["rps_all"])
    assert w["rps"] == pytest.approx(w["requests"] / w["seconds"], rel=0.02)
    assert 0 < w["p50_ms"] <= w["p75_ms"] <= w["p90_ms"] <= w["p99_ms"] <= w["latency_max_ms"]


def test_wrk_strategy_output():
    w = bench.parse_wrk(fixture("wrk-redis-incr.txt"))
    assert w["requests"] > 0 and w["errors"] == 0
    assert w["p50_ms"] <= w["p99_ms"]


def test_wrk_counts_non_2xx_as_errors_not_throughput():
    w = bench.parse_wrk(fixture("wrk-error-500.txt"))
    assert w["non_2xx"] == w["requests"] == 2562
    assert w["errors"] == 2562
    assert w["rps_all"] == pytest.approx(1270.39)
    assert w["rps"] == 0


def test_wrk_socket_timeouts():
    w = bench.parse_wrk(fixture("wrk-socket-timeouts.txt"))
    assert w["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 631}
    assert w["errors"] == 631
    assert w["requests"] == 2664 and w["connections"] == 900
    assert w["p99_ms"] == pytest.approx(987.29)


def test_wrk_without_figures_is_an_error():
    with pytest.raises(ValueError):
        bench.parse_wrk(fixture("wrk-connect-refused.txt"))


@pytest.mark.parametrize("text, ms", [("850.00us", 0.85), ("59.26ms", 59.26), ("1.02s", 1020.0), ("2m", 120000.0)])
def test_wrk_durations(text, ms):
    assert bench._duration_ms(text) == pytest.approx(ms)


# -- redis-benchmark ------------------------------------------------------------------------------------
def test_redis_benchmark_quiet_output():
    r = bench.parse_redis_benchmark(fixture("redis-benchmark-incr.txt"))
    assert r == {"ops": pytest.approx(11520.74), "p50_ms": pytest.approx(2.023)}


def test_redis_benchmark_without_result():
    with pytest.raises(ValueError):
        bench.parse_redis_benchmark("INCR: rps=9019.4 (overall: 8984.6) avg_msec=4.561 (overall: 4.561)\r")


# -- the lab's driver ------------------------------------------------------------------------------------
def driver_events() -> list[dict]:
    return bench.parse_driver_events(fixture("driver-events.jsonl").splitlines())


def test_driver_events_in_step_mode():
    events = driver_events()
    by_cell: dict[str, list[str]] = {}
    for e in events:
        by_cell.setdefault(e["cell"], []).append(e["event"])
    assert list(by_cell) == ["hello/r0/rec", "redis-incr/r0/rec", "hello/r0/norec"]
    for kinds in by_cell.values():
        assert kinds == ["cell-wait", "cell-start", "cell-loaded", "cell-done"]


def test_driver_lines_that_are_not_events_are_skipped():
    noise = ["gevent warning: something", "", "{not json", '{"no": "event"}']
    lines = noise + fixture("driver-events.jsonl").splitlines()
    assert bench.parse_driver_events(lines) == driver_events()


def test_driver_stats_keep_the_matrix_fields_and_add_the_bench_ones():
    done = [e["stats"] for e in driver_events() if e["event"] == "cell-done"]
    for stats in done:
        for field in ("attempted", "recorded", "load_seconds", "generator_cpu_seconds", "generator_cpu_share",
                      "timed_out", "users"):  # what workerlab.matrix and results.throughput read
            assert field in stats
        for field in ("record", "load_ok", "rps", "locust_p50_ms", "locust_p99_ms", "final_reads_and_write_seconds"):
            assert field in stats
    hello_rec, incr_rec, hello_norec = done
    assert hello_rec["record"] and hello_rec["recorded"] == hello_rec["attempted"] == 300
    assert incr_rec["recorded"] > incr_rec["attempted"]  # the final reads are recorded too
    assert hello_norec["record"] is False and hello_norec["recorded"] == 0 and hello_norec["load_ok"] == 300


def test_lab_figures_from_a_recorded_history_match_results_json():
    stats = next(e["stats"] for e in driver_events() if e["cell"] == "hello/r0/rec" and e["event"] == "cell-done")
    history = read_history(FIXTURES / "history-hello.jsonl")
    figures = bench.lab_figures(stats, history)
    t = throughput(history, stats)
    assert figures["rps"] == t["rps"] > 0
    assert figures["requests"] == 300 and figures["errors"] == 0
    assert figures["p50_ms"] == t["p50_ms"] <= figures["p99_ms"] == t["p99_ms"]


def test_lab_figures_leave_final_reads_out():
    stats = next(e["stats"] for e in driver_events() if e["cell"] == "redis-incr/r0/rec" and e["event"] == "cell-done")
    history = read_history(FIXTURES / "history-redis-incr.jsonl")
    assert any(e["phase"] == "final" for e in history)
    assert bench.lab_figures(stats, history)["requests"] == stats["load_ok"] == 200


def test_lab_figures_without_history_use_the_driver_counts():
    stats = next(e["stats"] for e in driver_events() if e["cell"] == "hello/r0/norec" and e["event"] == "cell-done")
    figures = bench.lab_figures(stats, None)
    assert figures["rps"] == stats["rps"]
    assert figures["p50_ms"] == stats["locust_p50_ms"] and figures["p99_ms"] == stats["locust_p99_ms"]
    assert figures["requests"] == 300 and figures["errors"] == 0


def test_runner_listeners_do_not_pile_up_cell_after_cell():
    """Each locust runner adds listeners to the shared events; the driver drops them before every cell."""
    code = (
        "from loadtests import driver as drive\n"
        "from locust.env import Environment\n"
        "from loadtests.locustfile import PathUser\n"
        "sizes = []\n"
        "for _ in range(4):\n"
        "    drive.drop_runner_listeners()\n"
        "    Environment(user_classes=[PathUser], events=drive.events, host='http://127.0.0.1:9').create_local_runner()\n"
        "    sizes.append(len(drive.events.request._handlers))\n"
        "print(sizes)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    sizes = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(set(sizes)) == 1, sizes


# -- summaries ------------------------------------------------------------------------------------------
def test_summary_pairs_measurements_by_repetition():
    ms = []
    for rep, (lab, wrk, norec) in enumerate([(900, 1000, 950), (800, 1000, 1000), (1000, 1000, 1000)]):
        ms += [{"rep": rep, "tool": "lab", "record": True, "rps": lab, "driver_rps": lab},
               {"rep": rep, "tool": "wrk", "record": None, "rps": wrk},
               {"rep": rep, "tool": "lab", "record": False, "rps": norec, "driver_rps": norec}]
    ms.append({"rep": 3, "tool": "wrk", "record": None, "error": "wrk exit 1"})
    s = bench.summarize(ms)
    assert s["ratio_lab_wrk"] == {"median": 0.9, "min": 0.8, "max": 1.0, "n": 3}
    assert s["ratio_record"]["median"] == pytest.approx(900 / 950, abs=1e-4)
    assert s["wrk"]["rps"]["n"] == 3
    assert s["lab"]["rps"] == {"median": 900, "min": 800, "max": 1000, "n": 3}


def _summary(lab_rps, lab_gen, lab_server, wrk_rps, wrk_gen, wrk_server):
    def one(value):
        return bench.spread([value])

    return {"summary": {"lab": {"rps": one(lab_rps), "generator_cpu": one(lab_gen), "server_cpu": one(lab_server)},
                        "wrk": {"rps": one(wrk_rps), "generator_cpu": one(wrk_gen), "server_cpu": one(wrk_server)},
                        "ratio_lab_wrk": one(round(lab_rps / wrk_rps, 3))}}


def test_cpu_split_explains_a_ratio_by_the_generators_cpu():
    # both saturate 2 cores: the lab's generator takes 0.4 of them at 1,000 rps (400 µs a request), wrk 0.04
    # at 1,200 (33 µs); the server spends 1,600 µs either way - so lab/wrk can be at most 0.81, and was 0.83
    split = analysis.cpu_split({"s": {"cells": {"hello": _summary(1000, 0.4, 1.6, 1200, 0.04, 1.92)}}})["s"]["hello"]
    assert split == {"gen_lab": 400.0, "gen_wrk": 33.3, "server_lab": 1600.0, "server_wrk": 1600.0,
                     "ratio": 0.833, "bound": 0.817}
    # a server that spends more on the lab's requests than on wrk's lowers the bound; cheaper generator raises it
    worse = analysis.cpu_split({"s": {"cells": {"c": _summary(900, 0.2, 1.8, 1200, 0.04, 1.92)}}})["s"]["c"]
    assert worse["server_lab"] == 2000.0 and worse["bound"] < 0.9
    better = analysis.cpu_split({"s": {"cells": {"c": _summary(1150, 0.1, 1.84, 1200, 0.04, 1.92)}}})["s"]["c"]
    assert better["bound"] >= 0.9
    # a measurement missing a figure has no bound
    assert analysis.cpu_split({"s": {"cells": {"c": {"summary": {}}}}})["s"]["c"]["bound"] is None


def test_spread_ignores_missing_values():
    assert bench.spread([None, None]) is None
    assert bench.spread([3, None, 1, 2]) == {"median": 2, "min": 1, "max": 3, "n": 3}


# -- checker speed inputs ----------------------------------------------------------------------------------
def test_synthetic_histories_are_correct_ones():
    counter = check_counter(bench.synthetic_counter(2000))
    assert counter.verdict == {"correct"}, counter.to_dict()
    assert counter.counts["acknowledged"] == 2000 and counter.counts["final"] == 2000
    isolation = check_isolation(bench.synthetic_isolation(2000))
    assert isolation.verdict == {"correct"}
    assert isolation.counts["acknowledged"] == 2000


def test_checker_speed_reports_both_checkers():
    out = bench.checker_speed(5000)
    assert out["entries"] == 5000
    assert out["check_counter_verdict"] == ["correct"] and out["check_isolation_verdict"] == ["correct"]
    assert out["check_counter_seconds"] >= 0 and out["check_isolation_seconds"] >= 0
    assert isinstance(out["met"], bool)


# -- matrix time estimate -----------------------------------------------------------------------------------
def test_matrix_estimate_from_a_results_file(tmp_path, scenarios):
    run = tmp_path / "20260101-000000"
    run.mkdir()
    cells = [{"scenario": sc, "strategy": st, "check": "counter", "history": None,
              "throughput": {"load_seconds": 2.0 if sc == "sync-x1" else 1.0}}
             for sc in ("sync-x1", "gevent-x1") for st in ("naive-global", "redis-incr")]
    (run / "results.json").write_text(json.dumps({"schema": "worker-lab/results/v1", "settings": {"requests": 1000},
                                                  "cells": cells}))
    records = {"sync-x1": {"startup_seconds": 1.0, "stop_seconds": 0.5, "driver_startup_seconds": 1.5, "cells": {}}}
    strategies = {"naive-global": None, "redis-incr": None, "locked-global": None}
    out = bench.estimate_matrix([tmp_path], records, scenarios, strategies)
    default, quick = out["default"], out["quick"]
    assert default["kind"] == quick["kind"] == "estimated"
    assert default["cells"] == len(scenarios) * 3 and default["cells_with_load_time"] == 4
    # scaled from 1000 to 2000 requests: sync-x1 cells 4 s, its missing cell its median (4 s)
    assert default["breakdown"]["load"] >= 3 * 4.0 + 3 * 2.0
    assert default["seconds"] == pytest.approx(sum(default["breakdown"].values()), abs=0.5)
    assert quick["breakdown"]["load"] < default["breakdown"]["load"]
    assert out["basis"].startswith("estimated") and out["sources"] == [str(run / "results.json")]


def test_matrix_estimate_without_results(tmp_path, scenarios):
    out = bench.estimate_matrix([tmp_path], {}, scenarios, {"naive-global": None})
    assert "default" not in out and "workerlab run" in out["basis"]


# -- the real thing -----------------------------------------------------------------------------------------
@pytest.mark.stack
def test_bench_smoke(tmp_path):
    for binary in ("wrk", "redis-benchmark"):
        if not shutil.which(binary):
            pytest.skip(f"{binary} not installed (apt-get install wrk redis-tools)")
    proc = subprocess.run(
        [sys.executable, "-m", "workerlab", "bench", "-s", "sync-x1", "--quick", "-d", "1", "--no-stall",
         "--checker-entries", "20000", "--output", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = sorted(tmp_path.glob("*/bench.json"))
    assert found, proc.stdout[-2000:]
    data = json.loads(found[-1].read_text())
    assert data["schema"] == "worker-lab/bench/v1" and data["status"] == "complete"
    assert data["settings"]["scenarios"] == ["sync-x1"]
    r = data["scenarios"]["sync-x1"]
    assert r["error"] is None
    assert r["startup_seconds"] > 0 and r["stop_seconds"] >= 0 and r["driver_startup_seconds"] > 0
    assert set(r["cells"]) == {"hello", "redis-incr", "naive-global"}
    for name, cell in r["cells"].items():
        assert len(cell["measurements"]) == 3, name  # lab recording, wrk, lab not recording
        for m in cell["measurements"]:
            assert m["error"] is None, (name, m)
            assert m["rps"] > 0 and m["requests"] > 0 and m["errors"] == 0, (name, m)
            assert 0 < m["p50_ms"] <= m["p99_ms"], (name, m)
            assert 0 <= m["generator_cpu"] <= 1.5 and 0 < m["server_cpu"] <= 2.5, (name, m)
            assert m["other_cpu"] >= 0 and m["server_wait"] >= 0, (name, m)
            assert set(m["server_cpu_by"]) == {"app", "nginx", "sidecars"}
        s = cell["summary"]
        assert {"lab", "lab_norec", "wrk"} <= set(s)
        assert s["ratio_lab_wrk"]["median"] > 0 and s["ratio_record"]["median"] > 0
    c = data["ceilings"]
    assert c["hello_rps_wrk"] > 0 and c["hello_rps_wrk_scenario"] == "sync-x1"
    assert c["nginx_rps_wrk"] > 0 and c["redis_incr_ops"] > 0
    ch = data["checker"]
    assert ch["entries"] == 20000 and ch["check_counter_seconds"] > 0 and ch["check_isolation_seconds"] > 0
    assert ch["check_counter_verdict"] == ["correct"]
    assert data["matrix_times"]["basis"]
    assert data["guard"]["threshold"] == 0.85 and data["guard"]["points"]
    assert data["settings"]["pin"] is False  # the matrix's layout, by default
    hello = data["cpu_split"]["sync-x1"]["hello"]
    assert hello["gen_lab"] > 0 and hello["server_lab"] > 0 and 0 < hello["bound"]
    assert "where a request's CPU goes" in proc.stdout
    assert "hello_lab_wrk_0.9" in data["targets"] and "record_ratio_0.95" in data["targets"]
    assert "lab/wrk" in proc.stdout and "checkers on 20,000" in proc.stdout
