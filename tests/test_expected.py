"""The declared expectations cover every cell and say why."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest
from rich.console import Console

from loadtests.checkers import NOT_READ_BACK, CheckResult
from loadtests.verdicts import MATRIX_WORDS
from workerlab.expected import HOST_FILES, LOCK_TIMEOUT, expect, expectation_for
from workerlab.present.terminal import TerminalReport
from workerlab.results import ResultsFile, cell_record, markdown, summary_line
from workerlab.stacks.native import NativeStack
from workerlab.strategies import STRATEGIES

EAGAIN_TEXT = "sidecar-unreachable: manager unreachable: [Errno 11] Resource temporarily unavailable"
LOCK_TEXT = "lock-timeout: lock not acquired in 0.1s (a real lock held by a yielding greenlet deadlocks)"
SHARED_TEXT = "internal: ConcurrentObjectUseError"
INC_NONE_TEXT = "backend-error: memcached cache.inc returned None"


def v(*words):
    return frozenset(words)


def test_every_cell_has_a_declared_verdict_and_reason(scenarios):
    for strategy in STRATEGIES:
        for scenario in scenarios.values():
            e = expect(strategy, scenario)
            assert e.verdict and e.verdict <= set(MATRIX_WORDS), (strategy, scenario.name)
            assert len(e.reason) > 10


def test_other_race_windows_do_not_judge_window_dependent_cells(scenarios):
    e = expectation_for("naive-global", scenarios["gevent-x1"], "none")
    assert e.label == "any"
    assert not e.judged
    assert e.judge(v("lost-updates"), {}) is None and e.judge(v("correct"), {}) is None
    assert expectation_for("naive-global", scenarios["sync-x4"], "none").label == "diverges"


def test_divergence_stays_judged_under_other_windows(scenarios):
    kept = [(strategy, name) for strategy in STRATEGIES for name, s in scenarios.items()
            if expectation_for(strategy, s, "none").judged and expect(strategy, s).rests_on_window]
    # naive-global, the seed's SomeObj and SimpleCache get/set wherever several processes each hold threads or
    # greenlets, and FileSystemCache and gunicorn's stash where several hosts (instances) each hold threads
    in_process = [(st, sc) for st in ("naive-global", "seed-someobj", "cache-simple-get-set")
                  for sc in ("gthread-2x8", "gthread-2x8-preload", "gevent-x4", "scale-out-3")]
    per_host = [(st, "scale-out-3") for st in ("cache-filesystem-get-set", "cache-filesystem-inc", "gunicorn-stash")]
    assert sorted(kept) == sorted(in_process + per_host)
    e = expectation_for("naive-global", scenarios["gthread-2x8"], "io")
    assert e.label == "diverges+lost-updates?"
    assert e.judge(v("diverges"), {}) is True
    assert e.judge(v("diverges", "lost-updates"), {}) is True


def test_divergence_missing_under_other_windows_is_a_mismatch(scenarios):
    e = expectation_for("naive-global", scenarios["gthread-2x8"], "none")
    assert e.judge(v("lost-updates"), {}) is False
    assert e.judge(v("correct"), {}) is False
    assert e.judge(v("diverges", "leaks"), {}) is False


def test_expected_eagain_error_matches_its_cause(scenarios):
    e = expect("mp-manager", scenarios["gevent-x1"])
    assert e.judge(v("error"), {EAGAIN_TEXT: 300}) is True


def test_a_different_error_than_the_expected_eagain_is_a_mismatch(scenarios):
    e = expect("mp-manager", scenarios["gevent-x1"])
    assert e.judge(v("error"), {"HTTP 502": 3}) is False  # the stack crashed, nginx answered
    assert e.judge(v("error"), {EAGAIN_TEXT: 297, "HTTP 502": 3}) is False
    assert e.judge(v("error"), {}) is False  # no failed request to name the cause
    assert e.judge(v("error", "no-answer"), {EAGAIN_TEXT: 300}) is False


def test_expected_lock_timeout_matches_its_cause(scenarios):
    e = expect("locked-global", scenarios["gevent-unpatched"])
    assert e.judge(v("error"), {LOCK_TEXT: 56}) is True


def test_a_different_error_than_the_lock_timeout_is_a_mismatch(scenarios):
    e = expect("locked-global", scenarios["gevent-unpatched"])
    assert e.judge(v("error"), {"internal: RuntimeError": 1, LOCK_TEXT: 5}) is False
    assert e.judge(v("error"), {EAGAIN_TEXT: 5}) is False


def test_a_mismatched_expected_error_names_the_failures_that_are_not_its_cause(scenarios):
    strategy = SimpleNamespace(name="mp-manager", check="counter", question=1)
    e = expect("mp-manager", scenarios["gevent-x1"])
    # The checker's counts keep the most common kinds only: the one that made the mismatch is named apart.
    texts = Counter({EAGAIN_TEXT: 290, "internal: [Errno 9] Bad file descriptor": 7, "HTTP 502": 3})
    cell = cell_record("gevent-x1", strategy, e, CheckResult(v("error"), error_texts=texts), history_path=None,
                       throughput_=None)
    assert cell["match"] is False
    assert cell["not_the_cause"] == {"internal: [Errno 9] Bad file descriptor": 7, "HTTP 502": 3}
    console = Console(record=True, width=200)
    TerminalReport(1, console, mode="quiet").cell_done(cell)
    shown = "not the expected error: internal: [Errno 9] Bad file descriptor (x7); HTTP 502 (x3)"
    assert shown in console.export_text()
    matched = cell_record("gevent-x1", strategy, e, CheckResult(v("error"), error_texts=Counter({EAGAIN_TEXT: 300})),
                          history_path=None, throughput_=None)
    assert matched["match"] is True and matched["not_the_cause"] == {}


def _record(scenarios, strategy, scenario, race_window, verdict):
    strat = SimpleNamespace(name=strategy, check="counter", question=1)
    e = expectation_for(strategy, scenarios[scenario], race_window)
    return cell_record(scenario, strat, e, CheckResult(v(*verdict)), history_path=None, throughput_=None)


def test_not_judged_is_counted_apart_from_matched(scenarios, tmp_path):
    results = ResultsFile(tmp_path, {"race_window": "none"}, {n: scenarios[n] for n in ("gevent-x1", "gthread-2x8")})
    results.add(_record(scenarios, "naive-global", "gevent-x1", "none", ["correct"]))  # rests on the window
    results.add(_record(scenarios, "naive-global", "gthread-2x8", "none", ["diverges"]))  # judged: divergence
    results.add(_record(scenarios, "redis-incr", "gevent-x1", "none", ["lost-updates"]))  # judged: wrong
    summary = results.data["summary"]
    assert results.data["cells"][0]["match"] is None
    assert (summary["cells"], summary["judged"], summary["matched"], summary["mismatched"],
            summary["not_judged"]) == (3, 2, 1, 1, 1)
    assert summary_line(summary) == "1 of 3 cells as expected, 1 differ, 1 not judged"
    assert "1 not judged" in markdown(results.data)
    assert "correct (not judged)" in markdown(results.data)


def test_every_judged_cell_matched_has_no_not_judged_count(scenarios, tmp_path):
    results = ResultsFile(tmp_path, {"race_window": "yield"}, {})
    results.add(_record(scenarios, "naive-global", "gevent-x1", "yield", ["lost-updates"]))
    assert results.data["summary"]["not_judged"] == 0
    assert summary_line(results.data["summary"]) == "1 of 1 cells as expected, 0 differ"


def test_scenarios_declare_the_runtime_models(scenarios):
    assert {"dev-single", "dev-threaded", "dev-processes", "sync-x1", "sync-x4", "gthread-2x8", "gevent-x1",
            "gevent-x4", "gevent-unpatched", "scale-out-3"} <= set(scenarios)
    assert scenarios["scale-out-3"].instances == 3
    assert scenarios["gevent-unpatched"].in_process_concurrency == "greenlets-unpatched"
    assert scenarios["dev-processes"].forks_per_request
    preload, threads_8 = scenarios["gevent-preload"], scenarios["gevent-threads-8"]
    assert preload.preload and preload.imported_before_patch and preload.in_process_concurrency == "greenlets"
    assert not scenarios["gevent-x1"].imported_before_patch
    # gunicorn's gevent worker ignores --threads: greenlets in one process, exactly as without it
    assert threads_8.threads == 8 and threads_8.in_process_concurrency == "greenlets" and threads_8.processes == 1
    for strategy in STRATEGIES:
        assert expect(strategy, threads_8) == expect(strategy, scenarios["gevent-x1"]), strategy


def test_the_seed_counter_hands_out_duplicates_and_loses_nothing(scenarios):
    e = expect("seed-someobj", scenarios["gthread-2x8"])
    assert e.label == "duplicates+diverges" and e.rests_on_window
    assert expect("seed-someobj", scenarios["gevent-x1"]).label == "duplicates"
    assert expect("seed-someobj", scenarios["sync-x1"]).label == "correct"
    assert expect("seed-someobj", scenarios["dev-processes"]).label == "lost-updates"  # a fork per request
    # Without a window nothing yields between the increment and the return: correct in one process.
    for name in ("dev-threaded", "gevent-x1", "gevent-unpatched", "gevent-preload"):
        e = expect("seed-someobj-no-window", scenarios[name])
        assert e.label == "correct" and "gives up the interpreter" in e.reason, name
        assert not e.rests_on_window
    assert expect("seed-someobj-no-window", scenarios["sync-x4"]).label == "diverges"
    e = expectation_for("seed-someobj", scenarios["gthread-2x8"], "none")
    assert e.label == "diverges+duplicates?"
    assert e.judge(v("diverges"), {}) and e.judge(v("diverges", "duplicates"), {})
    assert not e.judge(v("diverges", "lost-updates"), {})


def test_a_class_attribute_leaks_like_a_module_global(scenarios):
    for scenario in scenarios.values():
        attribute, module_global = expect("iso-class-attribute", scenario), expect("iso-module-global", scenario)
        assert attribute.verdict == module_global.verdict, scenario.name
    assert expect("iso-class-attribute", scenarios["gthread-2x8"]).label == "leaks"
    assert expect("iso-class-attribute", scenarios["sync-x4"]).label == "correct"


def test_patching_after_import_keeps_the_real_threading_objects(scenarios):
    preload, patched = scenarios["gevent-preload"], scenarios["gevent-x1"]
    assert expect("iso-thread-local", preload).label == "leaks"
    assert expect("iso-thread-local", patched).label == "correct"
    lock = expect("locked-global", preload)
    assert lock.label == "error" and lock.cause == LOCK_TIMEOUT and "made at import" in lock.reason
    assert lock.judge(v("error"), {LOCK_TEXT: 40}) and not lock.judge(v("error"), {"HTTP 502": 1})
    assert expect("locked-global", patched).label == "correct"
    for strategy in ("cache-memcached-get-set", "cache-memcached-inc"):
        e = expect(strategy, preload)
        assert "threading.local" in e.reason
        assert e.judge(v("lost-updates", "error"), {SHARED_TEXT: 3, INC_NONE_TEXT: 5})
        assert not e.judge(v("lost-updates", "error"), {"internal: RuntimeError": 3})
        assert not e.judge(v("lost-updates", "error"), {SHARED_TEXT: 3, "HTTP 502": 1})
    # inc turns a dead server into an error; get takes it for a missing key, so its error may not show.
    inc = expect("cache-memcached-inc", preload)
    assert inc.label == "error+lost-updates?" and inc.judge(v("error"), {INC_NONE_TEXT: 5})
    assert not inc.judge(v("lost-updates"), {}) and not inc.judge(v("error"), {"HTTP 502": 1})
    get_set = expect("cache-memcached-get-set", preload)
    assert get_set.label == "lost-updates+error?" and get_set.judge(v("lost-updates"), {})
    assert not get_set.judge(v("correct"), {}) and not get_set.judge(v("error"), {SHARED_TEXT: 3})
    # What no import-time threading object touches is as under gevent patched first.
    for strategy in ("naive-global", "seed-someobj", "redis-incr", "sql-update", "iso-contextvar", "session-dict"):
        assert expect(strategy, preload) == expect(strategy, patched), strategy


def test_host_local_stores_are_one_per_instance_under_scale_out(scenarios):
    """SQLite, FileSystemCache and Flask-Session's files: each instance is a host with its own."""
    scale_out = scenarios["scale-out-3"]
    for strategy in HOST_FILES:
        e = expect(strategy, scale_out)
        assert "each instance is its own host" in e.reason, strategy
        assert e.label != "correct", strategy
    assert expect("sql-update", scale_out).label == "diverges"
    # The session id does not survive a hop to another instance: the user's count starts again.
    assert expect("server-session-fs", scale_out).label == "lost-updates"
    assert expect("server-session-fs-same-user", scale_out).label == "lost-updates+diverges"
    # One instance, one host: its processes share the files.
    assert expect("sql-update", scenarios["sync-x4"]).label == "correct"
    assert expect("server-session-fs", scenarios["gthread-2x8"]).label == "correct"


def test_each_native_instance_of_a_scale_out_gets_its_own_data_folder(scenarios, tmp_path):
    stack = NativeStack(scenarios["scale-out-3"], tmp_path)  # not started: only its settings are read
    folders = [stack.app_env(i, 8000 + i)["LAB_DATA_DIR"] for i in range(3)]
    assert folders == [str(tmp_path / "data" / f"i{i}") for i in (1, 2, 3)]
    assert NativeStack(scenarios["sync-x4"], tmp_path).app_env(0, 8000)["LAB_DATA_DIR"] == str(tmp_path / "data")


def test_preload_scenarios_make_the_app_before_the_fork(scenarios):
    for name in ("sync-x4-preload", "gthread-2x8-preload"):
        s = scenarios[name]
        assert s.preload and s.app_made_before_fork and s.has_stash, name
    assert scenarios["dev-processes"].app_made_before_fork  # the dev server forks a child per request
    assert not scenarios["sync-x4"].app_made_before_fork and not scenarios["dev-single"].has_stash
    # Everything else about the runtime model is the scenario's without --preload.
    for strategy in ("naive-global", "redis-get-set", "iso-module-global", "session-dict"):
        assert expect(strategy, scenarios["sync-x4-preload"]).verdict == expect(strategy, scenarios["sync-x4"]).verdict


def test_clients_and_threads_made_at_import_are_expected_to_fail_only_where_shared(scenarios):
    preload, plain = scenarios["sync-x4-preload"], scenarios["sync-x4"]
    assert expect("import-pymemcache", preload).label == "error"
    assert expect("import-python-memcached", preload).label == "crossed+error"
    assert expect("import-thread", preload).label == "lost-updates"
    for strategy in ("import-pymemcache", "import-python-memcached", "import-thread"):
        assert expect(strategy, plain).label == "correct", strategy
    for strategy in ("import-redis", "lazy-pymemcache", "lazy-thread"):
        assert {expect(strategy, s).label for s in scenarios.values() if not s.imported_before_patch} == {"correct"}
    # Where the app was imported before gevent patched, the lazy fix's own first-use Lock is the real one.
    assert expect("lazy-thread", scenarios["gevent-preload"]).label == "no-answer"
    assert expect("import-pymemcache", scenarios["gevent-preload"]).label == "correct"  # a blocking socket


def test_the_expected_pymemcache_errors_are_the_shared_sockets_never_a_crash(scenarios):
    e = expect("import-pymemcache", scenarios["gthread-2x8-preload"])
    shared = {"internal: MemcacheUnknownError": 20, "internal: KeyError": 3,
              "sidecar-unreachable: memcached unreachable: OSError: [Errno 9] Bad file descriptor": 40,
              "internal: ConcurrentObjectUseError": 14, NOT_READ_BACK: 1}
    assert e.judge(v("error"), shared) is True
    assert e.judge(v("error", "crossed"), shared) is False  # pymemcache checks each reply's key
    assert e.judge(v("error"), {**shared, "HTTP 502": 1}) is False
    assert e.judge(v("error"), {"sidecar-unreachable: memcached unreachable: ConnectionRefusedError: [Errno 111]": 5}) \
        is False  # memcached down is not this cause


def test_the_stash_needs_gunicorns_dirty_arbiter_and_is_one_per_master(scenarios):
    e = expect("gunicorn-stash", scenarios["dev-threaded"])
    no_arbiter = "sidecar-unreachable: gunicorn-stash unreachable: no dirty arbiter in this server (it needs ...)"
    assert e.judge(v("error"), {no_arbiter: 300}) is True and e.judge(v("error"), {"HTTP 502": 1}) is False
    assert expect("gunicorn-stash", scenarios["sync-x1"]).label == "correct"
    assert expect("gunicorn-stash", scenarios["sync-x4"]).label == "lost-updates"
    assert expect("gunicorn-stash", scenarios["scale-out-3"]).label == "lost-updates+diverges"


def test_the_expected_python_memcached_errors_are_replies_read_by_the_wrong_process(scenarios):
    from loadtests.checkers import NOT_READ_BACK

    e = expect("import-python-memcached", scenarios["sync-x4-preload"])
    assert e.judge(v("crossed", "error"), {NOT_READ_BACK: 1316, "internal: ValueError": 7}) is True
    assert e.judge(v("crossed", "error"), {NOT_READ_BACK: 1316, "internal: RuntimeError": 1}) is False
    assert e.judge(v("error"), {NOT_READ_BACK: 1316}) is False  # no answer that was another request's


def test_every_strategy_is_judged_by_its_traits_or_a_named_rule():
    """What a strategy is sits on the strategy (labapp/strategies/base.py): where its state lives and how it is
    updated pick the rule; only the named exceptions and the fork-safety rows are rules of their own."""
    from workerlab.expected import EXCEPTIONS, TRAIT_RULES
    from workerlab.expected_fork import RULES as FORK_RULES
    from workerlab.strategies import STRATEGIES

    for name, st in STRATEGIES.items():
        assert (st.lives, st.updates) in TRAIT_RULES or name in EXCEPTIONS or name in FORK_RULES, name
    assert len(EXCEPTIONS) + len(FORK_RULES) < len(STRATEGIES) / 2  # a few named exceptions, not a rule per name


def test_a_strategy_is_judged_by_its_traits(scenarios, monkeypatch):
    """Both ways: the same traits give the same expectation whatever the name; other traits, another one; traits
    without a rule are refused."""
    from dataclasses import replace

    from workerlab import expected
    from workerlab.strategies import STRATEGIES

    naive = STRATEGIES["naive-global"]
    monkeypatch.setitem(STRATEGIES, "my-global", replace(naive, name="my-global"))
    monkeypatch.setitem(STRATEGIES, "my-store", replace(naive, name="my-store", lives="store", updates="atomic",
                                                        store="redis"))
    monkeypatch.setitem(STRATEGIES, "my-nothing", replace(naive, name="my-nothing", lives="cloud", updates="magic"))
    for s in scenarios.values():
        assert expected.expect("my-global", s) == expected.expect("naive-global", s), s.name
        assert expected.expect("my-store", s) == expected.expect("redis-incr", s), s.name
    assert expected.expect("my-global", scenarios["sync-x4"]).label == "diverges"
    assert expected.expect("my-store", scenarios["sync-x4"]).label == "correct"
    with pytest.raises(KeyError, match="my-nothing"):
        expected.expect("my-nothing", scenarios["sync-x4"])
