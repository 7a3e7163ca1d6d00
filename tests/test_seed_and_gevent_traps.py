"""The seed's own counter, a class attribute, and gevent's traps - measured on real gunicorn, nginx and memcached.

One real sub-matrix (about three minutes on 2 cores): the seed's ``self.param += 1; return self.param`` with
and without a window between the increment and the return, ``User.email = ...`` per request, a
``threading.local`` and a ``threading.Lock`` made before gevent patched (``--preload``), cachelib's
python-memcached client made then too, and ``--threads 8`` under the gevent worker.
"""

from __future__ import annotations

import pytest
from labtools import run_lab

pytestmark = pytest.mark.stack

SCENARIOS = ("sync-x1", "gthread-2x8", "gevent-x1", "gevent-preload", "gevent-threads-8")
STRATEGIES = ("seed-someobj", "seed-someobj-no-window", "iso-class-attribute", "iso-thread-local", "iso-contextvar",
              "locked-global", "cache-memcached-inc")


@pytest.fixture(scope="module")
def traps(tmp_path_factory):
    # --quick: a 6 s cell limit, so the deadlocking lock under --preload shows its errors and moves on.
    proc, data = run_lab(["-s", ",".join(SCENARIOS), "-t", ",".join(STRATEGIES), "-n", "400", "-u", "25", "--quick"],
                         tmp_path_factory.mktemp("traps"))
    assert data is not None, f"no results.json; stderr:\n{proc.stderr[-3000:]}\nstdout:\n{proc.stdout[-3000:]}"
    data["_exit_code"] = proc.returncode
    return data


@pytest.fixture
def cell(traps):
    def get(scenario: str, strategy: str) -> dict:
        return next(c for c in traps["cells"] if c["scenario"] == scenario and c["strategy"] == strategy)

    return get


def observed(c) -> set[str]:
    return set(c["observed"]["verdict"])


@pytest.mark.parametrize(("scenario", "verdict"), [("gthread-2x8", {"duplicates", "diverges"}),
                                                   ("gevent-x1", {"duplicates"})])
def test_the_seed_counter_with_a_window_hands_two_clients_one_number_and_loses_nothing(cell, scenario, verdict):
    c = cell(scenario, "seed-someobj")
    assert observed(c) == verdict, c["counts"]
    assert c["counts"]["duplicates_within_process"] > 0
    assert c["counts"]["lost"] == 0 and c["counts"]["lost_shown_by_values"] == 0
    assert c["counts"]["realtime_violations"] == 0


def test_the_seed_counter_is_correct_one_request_at_a_time(cell):
    c = cell("sync-x1", "seed-someobj")
    assert observed(c) == {"correct"}
    assert c["counts"]["final"] == c["counts"]["acknowledged"] == c["counts"]["attempted"]


@pytest.mark.parametrize("scenario", ["gthread-2x8", "gevent-x1", "gevent-preload"])
def test_the_seed_counter_as_written_never_repeats_a_value_within_a_process(cell, scenario):
    c = cell(scenario, "seed-someobj-no-window")
    assert observed(c) <= {"correct", "diverges"}, c["counts"]
    assert c["counts"]["duplicates_within_process"] == 0 and c["counts"]["lost"] == 0


@pytest.mark.parametrize("scenario", ["gthread-2x8", "gevent-x1"])
def test_a_class_attribute_set_per_request_leaks_between_concurrent_requests(cell, scenario):
    c = cell(scenario, "iso-class-attribute")
    assert observed(c) == {"leaks"} and c["counts"]["leaked_responses"] > 0


def test_a_class_attribute_is_right_one_request_at_a_time(cell):
    c = cell("sync-x1", "iso-class-attribute")
    assert observed(c) == {"correct"} and c["counts"]["acknowledged"] > 0


def test_a_thread_local_made_before_gevent_patched_leaks(cell):
    assert observed(cell("gevent-preload", "iso-thread-local")) == {"leaks"}
    assert observed(cell("gevent-x1", "iso-thread-local")) == {"correct"}  # patched before the import
    assert observed(cell("gevent-preload", "iso-contextvar")) == {"correct"}  # a ContextVar is per greenlet anyway


def test_a_lock_made_before_gevent_patched_deadlocks_the_worker(cell):
    c = cell("gevent-preload", "locked-global")
    assert observed(c) == {"error"}
    assert c["counts"]["error_kinds"] and all(k.startswith("lock-timeout: ") for k in c["counts"]["error_kinds"])
    assert observed(cell("gevent-x1", "locked-global")) == {"correct"}


def test_cachelibs_memcached_client_made_before_gevent_patched_is_shared_by_every_greenlet(cell):
    c = cell("gevent-preload", "cache-memcached-inc")
    assert observed(c) - {"lost-updates"} == {"error"}  # a loss shows only when two incs overlapped first
    assert set(c["counts"]["error_kinds"]) <= {"internal: ConcurrentObjectUseError",
                                                "backend-error: memcached cache.inc returned None"}
    patched = cell("gevent-x1", "cache-memcached-inc")
    assert observed(patched) == {"lost-updates"} and patched["counts"]["errors"] == 0  # racy, but each its own


def test_gevent_ignores_threads_one_os_thread_serves_every_greenlet(cell):
    for strategy in STRATEGIES:
        served = cell("gevent-threads-8", strategy)["throughput"]["served_by"]
        if served["processes"]:  # the lock cell may answer too little to say
            assert served["threads"] == served["processes"] == 1, (strategy, served)
    served = cell("gevent-threads-8", "iso-contextvar")["throughput"]["served_by"]
    assert served["greenlets"] > 8  # more requests at once than the 8 threads asked for
    gthread = cell("gthread-2x8", "iso-contextvar")["throughput"]["served_by"]
    assert gthread["processes"] == 2 and 2 < gthread["threads"] <= 16 and gthread["greenlets"] == 0


def test_every_cell_matches_its_declared_expectation(traps):
    mismatched = [(c["scenario"], c["strategy"], c["observed"]["label"], c["expected"]["label"])
                  for c in traps["cells"] if not c["match"]]
    assert not mismatched
    assert traps["_exit_code"] == 0
