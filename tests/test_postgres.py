"""PostgreSQL: the server the lab starts itself (initdb, a child on 127.0.0.1), and the four strategies on it.

Real PostgreSQL, real gunicorn, real nginx: the same code `make lab` runs.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import psutil
import pytest
from labtools import alive, run_lab, wait_for

from workerlab.expected import expect, expectation_for
from workerlab.procs import StackError
from workerlab.stacks.native import SIDECARS, NativeStack, missing_message
from workerlab.stacks.postgres import PACKAGE, server_binary

pytestmark = pytest.mark.stack

POSTGRES_STRATEGIES = "postgres-update,postgres-read-modify-write,postgres-for-update,postgres-serializable"


def http_get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def postgres_run(tmp_path_factory):
    """One real run: the four strategies and SQLite, on 4 processes and on 3 instances."""
    proc, data = run_lab(["-s", "sync-x4,scale-out-3", "-t", f"{POSTGRES_STRATEGIES},sql-update", "-n", "400",
                          "-u", "25"], tmp_path_factory.mktemp("postgres-lab"))
    assert data is not None, proc.stderr[-3000:]
    return proc, {(c["scenario"], c["strategy"]): c for c in data["cells"]}


@pytest.mark.parametrize("scenario", ["sync-x4", "scale-out-3"])
def test_atomic_update_for_update_and_serializable_are_correct_across_processes_and_instances(postgres_run, scenario):
    _, cells = postgres_run
    for strategy in ("postgres-update", "postgres-for-update", "postgres-serializable"):
        cell = cells[(scenario, strategy)]
        assert cell["observed"]["verdict"] == ["correct"], (strategy, cell["counts"], cell.get("examples"))
        assert cell["counts"]["final"] == cell["counts"]["acknowledged"] > 0
        assert cell["match"] is True


@pytest.mark.parametrize("scenario", ["sync-x4", "scale-out-3"])
def test_read_modify_write_at_read_committed_loses_updates(postgres_run, scenario):
    _, cells = postgres_run
    cell = cells[(scenario, "postgres-read-modify-write")]
    assert cell["observed"]["verdict"] == ["lost-updates"], cell["counts"]
    assert cell["counts"]["final"] < cell["counts"]["acknowledged"]
    assert cell["match"] is True


def test_one_server_counts_for_every_instance_where_sqlite_diverges(postgres_run):
    proc, cells = postgres_run
    assert cells[("scale-out-3", "sql-update")]["observed"]["verdict"] == ["diverges"]
    assert cells[("sync-x4", "sql-update")]["observed"]["verdict"] == ["correct"]
    assert cells[("scale-out-3", "postgres-update")]["counts"]["processes_under_load"] == 3
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_for_update_times_out_on_the_row_lock_where_psycopg_blocks_the_greenlets(tmp_path):
    """The holder of the row lock is a greenlet that yielded; the next one's SELECT ... FOR UPDATE blocks the
    thread, so the holder cannot commit until the waiter's lock_timeout gives up. psycopg blocks where gevent
    has not patched select - and where the app imported psycopg before the worker patched (gevent-preload);
    imported after the patch (gevent-x1) it yields, and the same code is correct."""
    proc, data = run_lab(["-s", "gevent-unpatched,gevent-preload,gevent-x1", "-t", "postgres-for-update", "--quick"],
                         tmp_path)
    cells = {c["scenario"]: c for c in data["cells"]}
    for scenario in ("gevent-unpatched", "gevent-preload"):
        cell = cells[scenario]
        assert cell["observed"]["verdict"] == ["error"], (scenario, cell["counts"])
        assert all(text.startswith("lock-timeout: row lock not acquired in 100 ms") for text in
                   cell["counts"]["error_kinds"]), (scenario, cell["counts"]["error_kinds"])
    assert cells["gevent-x1"]["observed"]["verdict"] == ["correct"], cells["gevent-x1"]["counts"]
    assert all(c["match"] is True for c in cells.values()) and proc.returncode == 0


@pytest.fixture(scope="module")
def postgres_stack(tmp_path_factory, scenarios):
    folder = tmp_path_factory.mktemp("postgres-stack")
    with NativeStack(scenarios["gthread-2x8"], folder, direct=True, sidecars=SIDECARS,
                     app_extra_env={"LAB_POSTGRES_MAX_TRIES": "1"}) as stack:
        yield stack


def _postgres_pids(stack) -> set[int]:
    pid = stack.child("postgres").proc.pid
    return {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}


def test_postgres_listens_on_loopback_only_without_a_unix_socket(postgres_stack):
    pids = _postgres_pids(postgres_stack)
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert [(c.laddr.ip, c.laddr.port) for c in listening] == [("127.0.0.1", postgres_stack.ports["postgres"])]
    assert not [c for c in psutil.net_connections(kind="unix") if c.pid in pids]


def test_postgres_runs_as_the_postgres_account_when_the_lab_is_root(postgres_stack):
    import os

    users = {psutil.Process(pid).username() for pid in _postgres_pids(postgres_stack)}
    assert users == ({"postgres"} if os.geteuid() == 0 else {psutil.Process().username()})


def test_an_exhausted_retry_is_a_503_never_a_silent_success(postgres_stack):
    """This stack's app gives up after one try. A transaction of the test holds the row; the request's
    SERIALIZABLE transaction reads, waits for the row, and is refused when the test commits: it answers 503."""
    import psycopg

    url = postgres_stack.instance_urls[0]
    key = "exhaust"
    for expected in (1, 2):  # the first makes the row (a fresh key costs no try)
        status, body = http_get(f"{url}/s/postgres-serializable/incr?key={key}")
        assert status == 200 and body["value"] == expected, body
    answers = []
    with psycopg.connect(postgres_stack.postgres.url(postgres_stack.ports["postgres"])) as conn:
        conn.execute("UPDATE counters SET n = n + 100 WHERE key = %s", (key,))  # holds the row, uncommitted
        request = threading.Thread(target=lambda: answers.append(
            http_get(f"{url}/s/postgres-serializable/incr?key={key}")))
        request.start()
        wait_for(lambda: conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] > 0, 10,
                 "the request's UPDATE waiting for the row")
        conn.commit()
    request.join(30)
    (status, body), = answers
    assert status == 503 and body["error"] == "retries-exhausted", body
    assert "gave up (at most 1 tries" in body["message"] and "could not serialize" in body["message"]
    status, body = http_get(f"{url}/s/postgres-serializable/read?key={key}")
    assert body["value"] == 102  # the refused request counted nothing


def test_a_postgres_that_dies_is_named_in_a_503_and_the_rest_works(postgres_stack):
    url = postgres_stack.instance_urls[0]
    assert http_get(f"{url}/s/postgres-update/incr?key=dies")[0] == 200
    postgres_stack.child("postgres").stop()
    started = time.monotonic()
    status, body = http_get(f"{url}/s/postgres-update/incr?key=dies")
    assert status == 503 and body["error"] == "sidecar-unreachable", body
    assert body["message"].startswith("postgres unreachable")
    assert time.monotonic() - started < 15
    assert http_get(f"{url}/s/naive-global/incr?key=still-works")[0] == 200


def test_the_stack_leaves_no_server_and_no_temporary_data_behind(tmp_path, scenarios):
    with NativeStack(scenarios["sync-x1"], tmp_path, direct=True, sidecars=SIDECARS) as stack:
        pids = _postgres_pids(stack)
        data = stack.postgres.data
        assert (data / "PG_VERSION").exists()
    assert not [pid for pid in pids if alive(pid)]
    if stack.postgres.temporary:  # a folder the server's account could not reach: ours, removed
        assert not data.exists()


def test_the_newest_installed_server_is_used(tmp_path):
    for version in ("9.6", "15", "16"):
        binary = tmp_path / version / "bin" / "initdb"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    assert server_binary("initdb", tmp_path) == str(tmp_path / "16" / "bin" / "initdb")


def test_a_missing_server_names_the_package_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match=f"install the Debian package '{PACKAGE}'"):
        server_binary("postgres", tmp_path)
    assert "apt-get install postgresql" in missing_message(["postgres"])
    assert "apt-get install nginx postgresql" in missing_message(["nginx", "postgres"])


def test_declared_expectations(scenarios):
    for name, scenario in scenarios.items():
        assert expect("postgres-update", scenario).label == "correct", name
        unpatched = scenario.in_process_concurrency == "greenlets-unpatched"
        assert expect("postgres-serializable", scenario).label == ("correct+error?" if unpatched else "correct"), name
        blocks = unpatched or scenario.imported_before_patch
        assert expect("postgres-for-update", scenario).label == ("error" if blocks else "correct"), name
    assert expectation_for("postgres-serializable", scenarios["gevent-x1"], "yield").label == "correct"
    assert expect("sql-update", scenarios["scale-out-3"]).label == "diverges"
    assert expect("postgres-read-modify-write", scenarios["sync-x1"]).label == "correct"
    assert expect("postgres-read-modify-write", scenarios["gevent-x4"]).label == "lost-updates"
    unpatched = expect("postgres-for-update", scenarios["gevent-unpatched"])
    assert unpatched.label == "error"
    assert unpatched.judge(frozenset({"error"}), {"lock-timeout: row lock not acquired in 100 ms (...)": 5})
    assert not unpatched.judge(frozenset({"error"}), {"sidecar-unreachable: postgres unreachable: x": 5})
    # Under unpatched gevent no increment is lost; a request that ran out of tries may show, nothing else
    thrash = expect("postgres-serializable", scenarios["gevent-unpatched"])
    assert thrash.judge(frozenset({"correct"}), {})
    assert thrash.judge(frozenset({"error"}), {"retries-exhausted: gave up (at most 30 tries in 20 s), ...": 9})
    assert not thrash.judge(frozenset({"error"}), {"RetriesExceeded: a client timeout": 1, "retries-exhausted: x": 9})
    assert not thrash.judge(frozenset({"lost-updates"}), {})


@pytest.mark.parametrize("imported, blocks", [("before the patch", True), ("after the patch", False)])
def test_psycopg_blocks_the_greenlets_only_when_imported_before_gevent_patched(imported, blocks):
    """The app's choice of lock timeout (100 ms where a waiter blocks its thread, 5 s where it yields) rests on
    this: psycopg imported first picks its C wait, which blocks; imported after the patch it picks a Python wait
    (wait_poll on Linux) that calls gevent's poll, and yields. A patched worker taken for a blocking one failed
    gevent-x4's FOR UPDATE waiters under load."""
    import subprocess
    import sys
    from pathlib import Path

    first = "import psycopg.waiting" if imported == "before the patch" else ""
    child = (f"{first}\nfrom gevent import monkey; monkey.patch_all()\nimport gevent\n"
             "from labapp.postgres import _psycopg_blocks_greenlets\n"
             "print(gevent.spawn(_psycopg_blocks_greenlets).get())")
    done = subprocess.run([sys.executable, "-c", child], cwd=Path(__file__).resolve().parents[1] / "services" / "app",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(blocks)]
