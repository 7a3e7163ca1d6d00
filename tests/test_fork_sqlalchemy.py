"""A SQLAlchemy engine made at import under gunicorn's --preload, and SQLAlchemy's two fixes (an engine made on
first use, engine.dispose(close=False) after the fork): measured on real gunicorn, nginx and PostgreSQL (issue #14,
item 1)."""

from __future__ import annotations

import re

import pytest
from labtools import run_lab

from workerlab.expected import expect
from workerlab.expected_fork import SQLALCHEMY_SHARED

stack = pytest.mark.stack  # the tests that run the lab; the expectations' own tests need no server

STRATEGIES = ("import-sqlalchemy", "lazy-sqlalchemy", "dispose-sqlalchemy")
PRELOAD = ("sync-x4-preload", "gthread-2x8-preload")
REQUESTS = 300


def v(*words):
    return frozenset(words)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[int, dict]:
    """The three rows with and without --preload, and under gevent's --preload and unpatched gevent (two to
    three minutes)."""
    scenarios = ("sync-x4", *PRELOAD, "gevent-preload", "gevent-unpatched")
    proc, data = run_lab(["-s", ",".join(scenarios), "-t", ",".join(STRATEGIES), "-n", str(REQUESTS), "-u", "25"],
                         tmp_path_factory.mktemp("sqlalchemy"))
    assert data is not None, f"no results.json; stderr:\n{proc.stderr[-3000:]}"
    return proc.returncode, {(c["scenario"], c["strategy"]): c for c in data["cells"]}


def observed(c) -> set[str]:
    return set(c["observed"]["verdict"])


@stack
def test_every_cell_matches_its_declared_expectation(run):
    exit_code, cells = run
    wrong = [(key, c["observed"]["label"], c["expected"]["label"], c["counts"]) for key, c in cells.items()
             if not c["match"]]
    assert not wrong
    assert exit_code == 0


@stack
@pytest.mark.parametrize("scenario", PRELOAD)
def test_an_engine_used_at_import_shares_one_session_between_preloaded_workers(run, scenario):
    c = run[1][(scenario, "import-sqlalchemy")]
    n = c["counts"]
    assert "error" in observed(c) and observed(c) <= {"error", "crossed", "no-answer"}, n
    assert n["errors"] > 0 and all(re.search(SQLALCHEMY_SHARED, kind) for kind in n["error_kinds"]), n["error_kinds"]
    for example in (e for e in c["examples"] if "whose" in e):  # a crossed answer is another request's nonce
        assert example["got"]["value"] == example["whose"]["sent"] != example["got"]["sent"]
        # Within a process the pool lends a connection to one request at a time: the reply came from another
        # process (the owner's pid is unknown when it was never answered).
        assert example["whose"].get("pid") != example["got"]["pid"]


@stack
def test_without_preload_each_worker_made_its_own_engine(run):
    for strategy in STRATEGIES:
        c = run[1][("sync-x4", strategy)]
        n = c["counts"]
        assert observed(c) == {"correct"} and n["acknowledged"] == REQUESTS, (strategy, n)


@stack
def test_the_lazy_fix_answers_nothing_under_gevent_preload_and_the_dispose_fix_everything(run):
    # The app's URL names the database by host (localhost): psycopg's lookup switches greenlets while the first
    # request holds the real lock made at import; the dispose fix takes no lock of its own.
    lazy, dispose = (run[1][("gevent-preload", s)] for s in ("lazy-sqlalchemy", "dispose-sqlalchemy"))
    assert observed(lazy) == {"no-answer"} and lazy["counts"]["acknowledged"] == 0, lazy["counts"]
    assert observed(dispose) == {"correct"} and dispose["counts"]["acknowledged"] == REQUESTS, dispose["counts"]


@stack
def test_the_lazy_fix_answers_everything_under_unpatched_gevent(run):
    # The same real lock, but nothing in the set-up switches greenlets (unpatched sockets block the thread):
    # the first request makes the engine before the next one runs.
    c = run[1][("gevent-unpatched", "lazy-sqlalchemy")]
    assert observed(c) == {"correct"} and c["counts"]["acknowledged"] == REQUESTS, c["counts"]


@stack
@pytest.mark.parametrize("scenario", PRELOAD)
@pytest.mark.parametrize("strategy", ["lazy-sqlalchemy", "dispose-sqlalchemy"])
def test_the_fixes_read_back_every_nonce_under_preload(run, scenario, strategy):
    c = run[1][(scenario, strategy)]
    n = c["counts"]
    assert observed(c) == {"correct"}, n
    assert n["acknowledged"] == n["attempted"] == REQUESTS and n["crossed_responses"] == n["not_read_back"] == 0
    assert n["processes_under_load"] >= 2


def test_a_sqlalchemy_engine_used_at_import_is_expected_to_fail_only_where_its_connection_is_shared(scenarios):
    assert expect("import-sqlalchemy", scenarios["sync-x4-preload"]).label == "error+crossed?+no-answer?"
    assert expect("import-sqlalchemy", scenarios["dev-processes"]).label == "crossed+error+no-answer?"
    # One preloaded gevent worker: the master opened the connection but never uses it.
    assert expect("import-sqlalchemy", scenarios["gevent-preload"]).label == "correct"
    assert expect("import-sqlalchemy", scenarios["sync-x4"]).label == "correct"
    assert {expect("dispose-sqlalchemy", s).label for s in scenarios.values()} == {"correct"}
    # The lazy fix's first-use lock, made before gevent patched, held across psycopg's host-name lookup.
    assert {name for name, s in scenarios.items() if expect("lazy-sqlalchemy", s).label != "correct"} == \
        {"gevent-preload"}
    assert expect("lazy-sqlalchemy", scenarios["gevent-preload"]).label == "no-answer"


def test_the_expected_sqlalchemy_errors_are_the_shared_sessions_never_a_server_down(scenarios):
    e = expect("import-sqlalchemy", scenarios["sync-x4-preload"])
    shared = {"internal: ResourceClosedError": 218, "internal: InternalError": 2, "internal: DatabaseError": 1,
              "internal: ProgrammingError": 1,
              "sidecar-unreachable: postgres unreachable: OperationalError: consuming input failed: server closed the "
              "connection unexpectedly": 3,
              ("sidecar-unreachable: postgres unreachable: ProtocolViolation: bind message supplies 2 parameters, "
               'but prepared statement "_pg3_0" requires 1'): 2,
              "TimeoutError: no answer within 30 s": 1}
    assert e.judge(v("error", "crossed"), shared) is True and e.judge(v("error"), shared) is True
    assert e.judge(v("error"), {**shared, "HTTP 502": 1}) is False
    assert e.judge(v("error"), {"sidecar-unreachable: postgres unreachable: OperationalError: connection failed: "
                                "Connection refused": 5}) is False  # PostgreSQL down is not this cause
    assert e.judge(v("error"), {"sidecar-unreachable: postgres unreachable: ProtocolViolation: invalid frontend "
                                "message type 0": 1}) is False  # only the bind to another's prepared statement
    assert e.judge(v("correct"), {}) is False
