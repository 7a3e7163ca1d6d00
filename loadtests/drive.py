"""The cell driver: runs a plan of cells against one stack with locust as a library.

    python -m loadtests.drive PLAN.json

One process per scenario keeps locust's start-up cost out of every cell. For
each cell it spawns the users, stops at the request budget (or the time limit),
does quiescent final reads for counters, writes ``history/<cell>.jsonl`` and
prints one JSON line per event on stdout for the runner:
``{"event": "cell-done", "cell": ..., "stats": {...}}``.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import http.client  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from locust import events  # noqa: E402
from locust.env import Environment  # noqa: E402

from . import locustfile  # noqa: E402
from .history import process_of, write_history  # noqa: E402
from .locustfile import RECORDER, USER_CLASSES, Budget, Cell, add_entry, make_entry  # noqa: E402

FINAL_READ_CONCURRENCY = 16
FINAL_READ_MAX = 480


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class _SetupUser(locustfile.LabUser):
    """A user-shaped client for set-up requests (not spawned by locust)."""

    abstract = True

    @locustfile.task
    def noop(self):  # pragma: no cover - never scheduled
        pass


def _read_once(instance_url: str, path: str, headers: dict, client: str) -> None:
    """One quiescent read on a fresh connection, straight to an app instance."""
    lab = {"client": client, "req": next(RECORDER.req_ids), "op": "read", "phase": "final",
           "invoke": RECORDER.now()}
    parsed = urlsplit(instance_url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        conn.request("GET", path, headers={**headers, "Connection": "close"})
        response = conn.getresponse()
        raw = response.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        add_entry(make_entry(lab, response.status, body))
    except OSError as exc:
        add_entry(make_entry(lab, 0, None, exc))
    finally:
        conn.close()


def final_reads(cell: dict, instances: list[str], processes_seen: set[str]) -> None:
    """Read the counter until every process seen under load answered (or the cap).

    Reads bypass nginx (whose kept-alive upstream connections would reach the same
    worker every time) and open a fresh connection each, many at once, so every
    idle worker of every instance races to accept some. A process that died
    (recycled, or a per-request fork) never answers; the cap bounds the wait.
    """
    headers = {"Cookie": Cell.shared_cookie} if cell["check"] == "same-user" and Cell.shared_cookie else {}
    query = "client=shared" if cell["check"] == "same-user" else f"key={cell['key']}"
    path = f"/s/{cell['strategy']}/read?{query}"
    answered: set[str] = set()
    sent = 0
    pool = Pool(FINAL_READ_CONCURRENCY * len(instances))
    while sent < FINAL_READ_MAX and not processes_seen <= answered:
        before = len(RECORDER.entries)
        for i in range(FINAL_READ_CONCURRENCY):
            for url in instances:
                pool.spawn(_read_once, url, path, headers, f"final{i}")
        pool.join()
        sent += FINAL_READ_CONCURRENCY * len(instances)
        answered |= {process_of(e) for e in RECORDER.entries[before:] if e.get("status") == 200}
        if not answered and sent >= 3 * FINAL_READ_CONCURRENCY:
            break  # nothing answers reads; the checker will say so


def prepare_same_user(env: Environment, cell: dict) -> None:
    """One increment as user 'shared' creates the session whose cookie every user then sends."""
    reader = _SetupUser(env)
    reader.client_id = "setup"
    reader.client.client.cookiejar = None
    Cell.budget.take()
    response = reader.send("incr", f"/s/{cell['strategy']}/incr?client=shared")
    cookie = response.headers.get("Set-Cookie") if response is not None and response.headers else None
    Cell.shared_cookie = cookie.split(";", 1)[0] if cookie else None


def run_cell(cell: dict, plan: dict, out: Path) -> dict:
    user_class = USER_CLASSES[cell["check"]]
    users = plan["users"]
    Cell.strategy = cell["strategy"]
    Cell.key = cell["key"]
    Cell.budget = Budget(cell["requests"])
    Cell.per_user = max(1, cell["requests"] // users)
    Cell.shared_cookie = None
    RECORDER.reset()
    env = Environment(user_classes=[user_class], events=events, host=plan["host"])
    _SetupUser.host = plan["host"]
    runner = env.create_local_runner()
    me = psutil.Process()
    cpu0 = me.cpu_times()
    wall0 = time.monotonic()
    if cell["check"] == "same-user":
        prepare_same_user(env, cell)
    runner.start(users, spawn_rate=users * 20)
    deadline = wall0 + cell["time_limit"]
    timed_out = False
    while RECORDER.load_count < Cell.budget.total:
        if runner.user_count == 0 and Cell.budget.issued and time.monotonic() - wall0 > 1.0:
            break  # every user stopped (e.g. session users done) - nothing more will come
        if time.monotonic() > deadline:
            timed_out = True
            break
        gevent.sleep(0.02)
    load_wall = time.monotonic() - wall0
    cpu1 = me.cpu_times()
    runner.quit()
    if cell["check"] in ("counter", "same-user"):
        seen = {process_of(e) for e in RECORDER.entries if e.get("status") == 200}
        final_reads(cell, plan.get("instances") or [plan["host"]], seen)
    entries = RECORDER.entries
    write_history(out / "history" / f"{cell['file']}.jsonl", entries)
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "attempted": Cell.budget.issued,
        "recorded": len(entries),
        "load_seconds": round(load_wall, 4),
        "generator_cpu_seconds": round(cpu, 4),
        "generator_cpu_share": round(cpu / load_wall, 4) if load_wall else None,
        "timed_out": timed_out,
        "users": users,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    plan = json.loads(Path(argv[0]).read_text())
    out = Path(plan["out"])
    (out / "history").mkdir(parents=True, exist_ok=True)
    logging.getLogger("locust").setLevel(logging.ERROR)
    for cell in plan["cells"]:
        emit("cell-start", cell=cell["id"])
        try:
            stats = run_cell(cell, plan, out)
        except Exception as exc:  # one broken cell must not end the run
            emit("cell-error", cell=cell["id"], error=f"{type(exc).__name__}: {exc}")
            continue
        emit("cell-done", cell=cell["id"], stats=stats)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
