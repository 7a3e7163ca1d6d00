"""The cell driver: runs a plan of cells against one stack with locust as a library.

    python -m loadtests.drive PLAN.json

One process per scenario keeps locust's start-up cost out of every cell. For
each cell it spawns the users, stops at the request budget (or the time limit),
does quiescent final reads for counters, writes ``history/<cell>.jsonl`` and
prints one JSON line per event on stdout for the runner:
``{"event": "cell-done", "cell": ..., "stats": {...}}``.

Options for measuring the measurement (``workerlab bench``); the matrix uses none of them:

- plan ``"cpu_affinity": [1]``: pin the driver to these CPUs (generator and server on separate cores);
- plan ``"step": true``: before each cell emit ``cell-wait`` and wait for a line on stdin, and emit
  ``cell-loaded`` when the load phase ends, so the caller can interleave other measurements and
  sample the server's CPU over exactly the load;
- cell ``"record": false``: count requests but record no history (the cost of recording);
- cell ``"check": "path"`` with ``"path": "/hello"``: plain GETs of one path, nothing to judge.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from locust import events  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import EventHook  # noqa: E402

from . import locustfile  # noqa: E402
from .history import process_of, write_history  # noqa: E402
from .locustfile import RECORDER, USER_CLASSES, Budget, Cell, read_at_rest  # noqa: E402

FINAL_READ_CONCURRENCY = 16
FINAL_READ_MAX = 480
DRAIN_AFTER_TIMEOUT_S = 3.0
FINAL_READ_FRUITLESS_ROUNDS = 3
SESSION_MIN_PER_USER = 12


def runqueue_seconds() -> float:
    """Time this process's threads were runnable but waited for a CPU (Linux schedstat; 0 elsewhere).

    CPU share says what the generator got; this says what it wanted and did not get. On a shared
    machine a starved generator is the bottleneck at a low CPU share.
    """
    total = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return total / 1e9


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class _SetupUser(locustfile.LabUser):
    """A user-shaped client for set-up requests (not spawned by locust)."""

    abstract = True

    @locustfile.task
    def noop(self):  # pragma: no cover - never scheduled
        pass


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
    fruitless_rounds = 0
    pool = Pool(FINAL_READ_CONCURRENCY * len(instances))
    while sent < FINAL_READ_MAX and not processes_seen <= answered:
        before = len(RECORDER.entries)
        reached_before = len(answered & processes_seen)
        for i in range(FINAL_READ_CONCURRENCY):
            for url in instances:
                pool.spawn(read_at_rest, url, path, headers, f"final{i}")
        pool.join()
        sent += FINAL_READ_CONCURRENCY * len(instances)
        answered |= {process_of(e) for e in RECORDER.entries[before:] if e.get("status") == 200}
        # Processes that are gone (a fork per request, a recycled worker) never answer again:
        # stop once rounds keep reaching none of the processes seen under load that are left.
        fruitless_rounds = fruitless_rounds + 1 if len(answered & processes_seen) == reached_before else 0
        if fruitless_rounds >= FINAL_READ_FRUITLESS_ROUNDS:
            break


def prepare_same_user(env: Environment, cell: dict) -> None:
    """One increment as user 'shared' creates the session whose cookie every user then sends."""
    reader = _SetupUser(env)
    reader.client_id = "setup"
    reader.client.client.cookiejar = None
    Cell.budget.take()
    response = reader.send("incr", f"/s/{cell['strategy']}/incr?client=shared")
    cookie = response.headers.get("Set-Cookie") if response is not None and response.headers else None
    Cell.shared_cookie = cookie.split(";", 1)[0] if cookie else None


_BASE_HANDLERS: dict[str, list] | None = None


def drop_runner_listeners() -> None:
    """Undo the listeners earlier cells' locust runners left on the shared ``events``.

    Each runner adds its own (request stats, user errors ...) and never removes them, so cell N of
    a plan paid N copies of locust's stats bookkeeping per request - a generator cost that grew
    cell after cell. Restores the handler lists as they were before the first cell (EventHook's
    private ``_handlers``).
    """
    global _BASE_HANDLERS
    hooks = {name: hook for name, hook in vars(events).items() if isinstance(hook, EventHook)}
    if _BASE_HANDLERS is None:
        _BASE_HANDLERS = {name: list(hook._handlers) for name, hook in hooks.items()}
    for name, hook in hooks.items():
        hook._handlers[:] = _BASE_HANDLERS.get(name, [])


def run_cell(cell: dict, plan: dict, out: Path) -> dict:
    user_class = USER_CLASSES[cell["check"]]
    users = plan["users"]
    if cell["check"] == "session":
        # Each user needs a real sequence (the growing cookie passes 4 KB after 8 requests):
        # fewer users, more requests each, same budget.
        users = max(1, min(users, cell["requests"] // SESSION_MIN_PER_USER))
    Cell.strategy = cell["strategy"]
    Cell.key = cell["key"]
    Cell.budget = Budget(cell["requests"])
    Cell.per_user = max(1, cell["requests"] // users)
    Cell.shared_cookie = None
    Cell.path = cell.get("path", Cell.path)  # bench: the "path" cell kind
    RECORDER.reset()
    recording = RECORDER.enabled = bool(cell.get("record", True))  # bench: False measures the cost of recording
    drop_runner_listeners()
    env = Environment(user_classes=[user_class], events=events, host=plan["host"])
    _SetupUser.host = plan["host"]
    runner = env.create_local_runner()
    me = psutil.Process()
    cpu0 = me.cpu_times()
    wait0 = runqueue_seconds()
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
    wait1 = runqueue_seconds()
    if plan.get("step"):
        emit("cell-loaded", cell=cell["id"])
    total = env.stats.total  # locust's own figures: the only latencies when nothing is recorded
    locust_p50, locust_p99 = total.get_response_time_percentile(0.5), total.get_response_time_percentile(0.99)
    runner.quit()
    write0 = time.monotonic()
    if timed_out:
        # Requests the server accepted may still be running; let them land before reading at rest.
        gevent.sleep(DRAIN_AFTER_TIMEOUT_S)
    if cell["check"] in ("counter", "same-user") and recording:
        seen = {process_of(e) for e in RECORDER.entries if e.get("status") == 200}
        final_reads(cell, plan.get("instances") or [plan["host"]], seen)
    entries = RECORDER.entries
    if recording:
        write_history(out / "history" / f"{cell['file']}.jsonl", entries)
    after_load = time.monotonic() - write0
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "attempted": Cell.budget.issued,
        "recorded": len(entries),
        "load_seconds": round(load_wall, 4),
        "generator_cpu_seconds": round(cpu, 4),
        "generator_cpu_share": round(cpu / load_wall, 4) if load_wall else None,
        "timed_out": timed_out,
        "users": users,
        # Added for workerlab bench; the matrix ignores them.
        "record": recording,
        "load_ok": RECORDER.load_ok,
        "rps": round(RECORDER.load_ok / load_wall, 1) if load_wall else None,
        "locust_p50_ms": locust_p50,
        "locust_p99_ms": locust_p99,
        "final_reads_and_write_seconds": round(after_load, 4),
        "generator_wait_share": round((wait1 - wait0) / load_wall, 4) if load_wall else None,
    }


def load_plan(argv: list[str], usage: str) -> tuple[dict, Path] | None:
    """The plan named on the command line, with its history folder made; None (usage shown) if not named."""
    if len(argv) != 1:
        print(usage, file=sys.stderr)
        return None
    plan = json.loads(Path(argv[0]).read_text())
    out = Path(plan["out"])
    (out / "history").mkdir(parents=True, exist_ok=True)
    logging.getLogger("locust").setLevel(logging.ERROR)
    return plan, out


def run_plan(plan: dict, out: Path, run_one) -> int:
    """Every cell of the plan, one after another, each reported as an event line."""
    for cell in plan["cells"]:
        if plan.get("step"):
            emit("cell-wait", cell=cell["id"])
            if not sys.stdin.readline():
                break  # the caller went away
        emit("cell-start", cell=cell["id"])
        try:
            stats = run_one(cell, plan, out)
        except Exception as exc:  # one broken cell must not end the run
            emit("cell-error", cell=cell["id"], error=f"{type(exc).__name__}: {exc}")
            continue
        emit("cell-done", cell=cell["id"], stats=stats)
    return 0


def main(argv: list[str]) -> int:
    loaded = load_plan(argv, __doc__)
    if loaded is None:
        return 2
    plan, out = loaded
    if plan.get("cpu_affinity"):
        os.sched_setaffinity(0, set(plan["cpu_affinity"]))
    return run_plan(plan, out, run_cell)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
