"""The fault driver: cells under a steady, paced load, with a fault injected by the caller mid-run.

    python -m loadtests.nemesis_drive PLAN.json

Used by ``workerlab faults``. Reuses loadtests.drive (final reads, set-up requests) and the
locustfile's user classes, with two differences from the matrix driver:

- every user is paced (``per_user_rps`` requests per second), so a cell lasts a known time and
  every user is active before, during and after the fault;
- the caller is told when the load starts and when it ends, on the same clock it uses to time
  the fault (``time.monotonic()`` is one system-wide clock on Linux)::

    {"event": "load-start", "cell": id, "t0": <monotonic seconds>}   history times count from t0
    {"event": "cell-loaded", "cell": id, "t": <seconds since t0>}    then waits for a line on stdin
    {"event": "cell-done", "cell": id, "stats": {...}}

  The driver waits for that stdin line before its quiescent final reads, so they happen only
  after the caller's fault has run its course (a restarted sidecar answers again).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from locust import constant_throughput, events  # noqa: E402
from locust.env import Environment  # noqa: E402

from . import drive  # noqa: E402
from .history import process_of, write_history  # noqa: E402
from .locustfile import RECORDER, USER_CLASSES, Budget, Cell, read_at_rest  # noqa: E402

FINAL_READ_TIME_S = 10.0
RECENT_S = 1.0  # processes that answered in the last second of load are the ones final reads wait for


def paced(user_class, per_user_rps: float):
    """The user class, each user sending at most ``per_user_rps`` requests per second."""
    return type(f"Paced{user_class.__name__}", (user_class,),
                {"wait_time": constant_throughput(per_user_rps), "abstract": False})


def _alive(process: str) -> bool:
    pid = process.rsplit("/", 1)[-1]
    try:
        return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.NoSuchProcess):
        return False


def final_reads(cell: dict, instances: list[str], wanted: set[str]) -> None:
    """Quiescent reads straight to the instances (loadtests.drive's), fresh connection each.

    ``scope: store`` (one shared counter): until two reads answered. Otherwise until every
    process in ``wanted`` that is still alive answered - a worker that was killed or recycled
    never will - or the cap (in count and time).
    """
    query = f"key={cell['key']}" if cell["check"] == "counter" else "client=shared"
    path = f"/s/{cell['strategy']}/read?{query}"
    headers = {"Cookie": Cell.shared_cookie} if cell["check"] == "same-user" and Cell.shared_cookie else {}
    shared = cell.get("scope") == "store"
    per_round = 2 if shared else drive.FINAL_READ_CONCURRENCY
    pool = Pool(per_round * len(instances))
    answered: set[str] = set()
    ok_reads = 0
    sent = 0
    deadline = time.monotonic() + FINAL_READ_TIME_S
    while sent < drive.FINAL_READ_MAX and time.monotonic() < deadline:
        before = len(RECORDER.entries)
        for i in range(per_round):
            for url in instances:
                pool.spawn(read_at_rest, url, path, headers, f"final{i}")
        pool.join()
        sent += per_round * len(instances)
        new = [e for e in RECORDER.entries[before:] if e.get("status") == 200]
        ok_reads += len(new)
        answered |= {process_of(e) for e in new}
        if shared and ok_reads >= 2:
            return
        wanted = {p for p in wanted if p in answered or _alive(p)}
        if not shared and wanted <= answered:
            return
        if not ok_reads and sent >= 3 * per_round * len(instances):
            gevent.sleep(0.2)  # nothing answers yet: a restarting service; the cap bounds the wait


def run_cell(cell: dict, plan: dict, out: Path) -> dict:
    users = plan["users"]
    user_class = paced(USER_CLASSES[cell["check"]], float(cell["per_user_rps"]))
    Cell.strategy = cell["strategy"]
    Cell.key = cell["key"]
    Cell.budget = Budget(cell["requests"])
    Cell.per_user = max(1, cell["requests"] // users)
    Cell.shared_cookie = None
    RECORDER.reset()
    RECORDER.enabled = True
    drop = getattr(drive, "drop_runner_listeners", None)
    if drop is not None:
        drop()
    env = Environment(user_classes=[user_class], events=events, host=plan["host"])
    drive._SetupUser.host = plan["host"]
    runner = env.create_local_runner()
    if cell["check"] == "same-user":
        drive.prepare_same_user(env, cell)
    drive.emit("load-start", cell=cell["id"], t0=RECORDER.t0)
    runner.start(users, spawn_rate=users * 20)
    deadline = RECORDER.t0 + cell["time_limit"]
    timed_out = False
    while RECORDER.load_count < Cell.budget.total:
        if runner.user_count == 0 and Cell.budget.issued and RECORDER.now() > 1.0:
            break  # every user stopped (session users are done)
        if time.monotonic() > deadline:
            timed_out = True
            break
        gevent.sleep(0.02)
    runner.quit()
    load_end = RECORDER.now()
    drive.emit("cell-loaded", cell=cell["id"], t=load_end)
    sys.stdin.readline()  # the caller's fault is over (or the caller went away)
    if cell["check"] in ("counter", "same-user"):
        recent = {process_of(e) for e in RECORDER.entries
                  if e.get("status") == 200 and e.get("complete", 0) >= load_end - RECENT_S}
        final_reads(cell, plan.get("instances") or [plan["host"]], recent)
    write_history(out / "history" / f"{cell['file']}.jsonl", RECORDER.entries)
    return {
        "t0": RECORDER.t0,
        "attempted": Cell.budget.issued,
        "recorded": len(RECORDER.entries),
        "load_seconds": round(load_end, 4),
        "timed_out": timed_out,
        "users": users,
        "per_user_rps": cell["per_user_rps"],
    }


def main(argv: list[str]) -> int:
    loaded = drive.load_plan(argv, __doc__)
    if loaded is None:
        return 2
    return drive.run_plan(*loaded, run_cell)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
