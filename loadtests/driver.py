"""The load driver: runs a plan of cells against one stack, with locust as a library.

    python -m loadtests.driver PLAN.json

One process per plan keeps locust's start-up cost out of every cell. For each cell it spawns the users
(as fast as answers come, or paced at `per_user_rps` for the fault runner), stops at the request budget
(or the time limit), reads counters at rest, writes ``history/<file>.jsonl`` and reports each step as
an event line on stdout (loadtests/protocol.py). Every request sent is in the history: one still in
flight when the cell ends is recorded as *unanswered* (an error entry), never dropped.
"""

from __future__ import annotations

if __name__ == "__main__":  # patch before anything imports sockets; importing this module patches nothing
    from gevent import monkey

    monkey.patch_all()

import http.client  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
import psutil  # noqa: E402
from locust import constant_throughput, events  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import EventHook  # noqa: E402

from . import locustfile  # noqa: E402
from .arrivals import Schedule  # noqa: E402
from .final_reads import EveryProcessSeen, Settled, ValuesSettled, final_reads  # noqa: E402
from .history import exited_entries, process_of, write_history  # noqa: E402
from .locustfile import (  # noqa: E402
    DECLARED_USER_CLASSES,
    RECORDER,
    USER_CLASSES,
    Budget,
    Cell,
    read_at_rest,
    shared_session_cookie,
)
from .protocol import DRAIN_AFTER_TIMEOUT_S, GO, READ_AT_REST, CellPlan, Plan, event_line  # noqa: E402

# After the time limit: how long requests already sent may take to be answered - at least this long, and as long
# as three times the slowest answer of the cell so far (a server that answers in 9 s when it is this loaded - a
# fork and a new PostgreSQL connection per request, 50 at once - is slow, not stalled), at most the cap.
ANSWER_IN_FLIGHT_S = 10.0
ANSWER_IN_FLIGHT_SLOWEST_X = 3
ANSWER_IN_FLIGHT_CAP_S = 45.0
# A server that answered nothing for this long while requests waited is stalled (a deadlocked worker): the cell
# ends as at its time limit, and its requests in flight get the same time to be answered. Without it a deadlock
# ran into gunicorn's own 30 s timeout, which kills the worker (502s) as the cell's 30 s limit ends: one verdict
# or another by a second's race.
STALLED_S = 12.0
SCHEDULE_LEAD_S = 0.05  # fixed-rate load: the first slot, after the users have started
RECENT_S = 1.0  # after a fault: the processes that answered in the last second of load are the ones to read
# Before a cell: how long to wait for an instance that accepts connections and answers none - a worker the cell
# before left hung (lazy-thread under gevent-preload deadlocks it on purpose). gunicorn kills it after its timeout
# (30 s) and starts another, which that cell's final read may hang once more: two timeouts, and a margin.
HUNG_WAIT_S = 90.0
HUNG_PROBE_S = 2.0


def emit(event: str, **fields) -> None:
    print(event_line(event, **fields), flush=True)


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


class SetupUser(locustfile.LabUser):
    """A user-shaped client for set-up requests (not spawned by locust)."""

    abstract = True

    @locustfile.task
    def noop(self):  # pragma: no cover - never scheduled
        pass


def prepare_same_user(env: Environment, cell: CellPlan) -> None:
    """One increment as user 'shared' creates the session whose cookie every user then sends.

    No cookie back raises NoSessionCookie: the cell is then an error (cell-error), never judged.
    """
    setup = SetupUser(env)
    setup.client_id = "setup"
    setup.client.cookies = None
    Cell.budget.take()
    response = setup.send("incr", f"/s/{cell.strategy}/incr?client=shared")
    Cell.shared_cookie = shared_session_cookie(response)


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


def user_class_for(cell: CellPlan):
    user_class = (DECLARED_USER_CLASSES if cell.request else USER_CLASSES)[cell.check]
    if cell.per_user_rps is None:
        return user_class
    # Paced: a cell lasts a known time and every user is active before, during and after a fault.
    return type(f"Paced{user_class.__name__}", (user_class,),
                {"wait_time": constant_throughput(float(cell.per_user_rps)), "abstract": False})


def _alive(process: str) -> bool:
    pid = process.rsplit("/", 1)[-1]
    try:
        return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
    except (ValueError, psutil.NoSuchProcess):
        return False


def record_exited(entries: list[dict]) -> None:
    """The ``exited`` entries of this host's processes (history.exited_entries)."""
    entries.extend(exited_entries(entries, _alive, RECORDER.now(), RECORDER.req_ids))


def read_rule(cell: CellPlan, plan: Plan, load_end: float):
    """When the final reads may stop: every process seen under load (the matrix); after a fault, every
    process still alive that answered in the load's last second, or two answers from a shared store; a
    declared endpoint's (no pid): when the values read settle (final_reads.ValuesSettled)."""
    answered = [e for e in RECORDER.entries if e.get("status") == 200]
    if cell.request:
        return ValuesSettled()
    if not plan.hold_after_load:
        return EveryProcessSeen({process_of(e) for e in answered})
    recent = {process_of(e) for e in answered if e.get("complete", 0) >= load_end - RECENT_S}
    return Settled(recent, _alive, shared=cell.scope == "store")


class NoBaseline(RuntimeError):
    """A declared counter's read before the load found no integer: the cell is an error, never judged."""


def read_baseline(plan: Plan) -> int:
    """A declared counter's value before the load (a deployment's counter, a store that outlives the app,
    need not start at 0): one read, phase 'baseline' (no checker judges it); values are counted from it."""
    read_at_rest(plan.host, Cell.read["path"], {}, "baseline")
    entry = RECORDER.entries[-1]
    entry["phase"] = "baseline"
    if not isinstance(entry.get("value"), int):
        raise NoBaseline(f"the read before the load ({Cell.read['path']}) found no integer: "
                         f"{entry.get('error') or entry.get('value')!r}")
    return entry["value"]


def answer_in_flight_s(entries: list[dict]) -> float:
    """How long requests in flight at the time limit may still take (see ANSWER_IN_FLIGHT_S)."""
    slowest = max((e["complete"] - e["invoke"] for e in entries if e.get("phase") == "load" and e.get("status")),
                  default=0.0)
    return min(ANSWER_IN_FLIGHT_CAP_S, max(ANSWER_IN_FLIGHT_S, ANSWER_IN_FLIGHT_SLOWEST_X * slowest))


def _file_exists(path: str):
    return lambda: os.path.exists(path)


def configure_cell(cell: CellPlan, requests: int, users: int, served_by_header: str | None, budget=None) -> None:
    """What the users of a cell send (the locustfile's `Cell`), and an empty history: in the driver, and in
    each locust worker for its share of the cell (loadtests/distributed.py)."""
    Cell.strategy = cell.strategy
    Cell.key = cell.key
    Cell.budget = budget or Budget(requests, held=_file_exists(cell.hold_load) if cell.hold_load else None)
    Cell.per_user = max(1, requests // max(1, users))
    Cell.shared_cookie = None
    Cell.path = cell.path or Cell.path  # bench: the "path" cell kind
    Cell.request, Cell.read, Cell.baseline = cell.request, cell.read, 0
    Cell.served_by_header = served_by_header
    Cell.schedule = None
    RECORDER.reset()
    RECORDER.enabled = cell.record  # bench: False measures the cost of recording


class Load:
    """How a cell's load phase went: its wall time, when it ended (history time), whether the time limit
    cut it, and locust's own latency figures."""

    def __init__(self, wall: float, end: float, timed_out: bool, p50=None, p99=None, workers=None,
                 stalled: bool = False):
        self.wall, self.end, self.timed_out, self.p50, self.p99 = wall, end, timed_out, p50, p99
        self.stalled = stalled  # ended early: nothing answered for STALLED_S (timed_out is then True too)
        self.workers = workers  # distributed: per worker, its users, share and entries


def local_load(cell: CellPlan, plan: Plan, users: int) -> Load:
    """The cell's users in this process, until the budget is spent or the time limit."""
    Cell.schedule = (Schedule(cell.rate, cell.requests, start=RECORDER.now() + SCHEDULE_LEAD_S,
                              arrivals=cell.arrivals) if cell.rate else None)
    drop_runner_listeners()
    env = Environment(user_classes=[user_class_for(cell)], events=events, host=plan.host)
    SetupUser.host = plan.host
    runner = env.create_local_runner()
    if cell.check == "same-user":
        prepare_same_user(env, cell)
    emit("load-start", cell=cell.id, t0=RECORDER.t0)
    wall0 = time.monotonic()
    runner.start(users, spawn_rate=users * 20)
    deadline = wall0 + cell.time_limit
    timed_out = stalled = False
    budget = Cell.budget
    recorded, recorded_at = RECORDER.load_count, wall0
    # Spent: every request of the budget answered - or, a fault holding the load (plan: hold_load), every one
    # issued, once the hold is released.
    while RECORDER.load_count < max(budget.total, budget.issued) or budget.holding():
        now = time.monotonic()
        if runner.user_count == 0 and budget.issued and now - wall0 > 1.0:
            break  # every user stopped (e.g. session users done) - nothing more will come
        if now > deadline:
            timed_out = True
            break
        if RECORDER.load_count != recorded:
            recorded, recorded_at = RECORDER.load_count, now
        elif budget.issued > recorded and now - recorded_at > STALLED_S and not budget.holding():
            timed_out = stalled = True
            break
        gevent.sleep(0.02)
    load_wall = time.monotonic() - wall0
    load_end = RECORDER.now()
    if timed_out:
        # Every request accounted for: send no more, and let those in flight be answered (a stalled server
        # answers late, not never) before the users are stopped; one still open after that is unanswered.
        budget.total, budget.held = budget.issued, None
        answer_by = time.monotonic() + answer_in_flight_s(RECORDER.entries)
        while RECORDER.load_count < budget.issued and time.monotonic() < answer_by:
            gevent.sleep(0.02)
    total = env.stats.total  # locust's own figures: the only latencies when nothing is recorded
    load = Load(load_wall, load_end, timed_out, total.get_response_time_percentile(0.5),
                total.get_response_time_percentile(0.99), stalled=stalled)
    runner.quit()  # a request still in flight is recorded as unanswered (locustfile.LabUser.send)
    return load


def run_cell(cell: CellPlan, plan: Plan, out: Path, master=None) -> dict:
    users = cell.users or plan.users
    configure_cell(cell, cell.requests, users, plan.served_by_header)
    recording = RECORDER.enabled
    if cell.read:
        Cell.baseline = read_baseline(plan)
    me = psutil.Process()
    cpu0, wait0 = me.cpu_times(), runqueue_seconds()
    if master is not None and cell.hold_load:
        raise ValueError("hold_load: a fault's hold on the load needs the driver's own users (plan.workers 0)")
    load = local_load(cell, plan, users) if master is None else master.load(cell, plan, users)
    load_wall, load_end, timed_out = load.wall, load.end, load.timed_out
    cpu1, wait1 = me.cpu_times(), runqueue_seconds()
    emit("cell-loaded", cell=cell.id, t=load_end)  # the load window is over (the runner's CPU figures end here)
    after0 = time.monotonic()
    if plan.hold_after_load:
        sys.stdin.readline()  # the caller's fault is over (or the caller went away)
    elif timed_out:
        gevent.sleep(DRAIN_AFTER_TIMEOUT_S)  # let what the server accepted land before reading at rest
    if cell.check in READ_AT_REST and recording and (cell.read or not cell.request):
        path = f"/s/{cell.strategy}/read?" + ("client=shared" if cell.check == "same-user" else f"key={cell.key}")
        headers = {"Cookie": Cell.shared_cookie} if cell.check == "same-user" and Cell.shared_cookie else {}
        if cell.read:
            path = cell.read["path"]
        final_reads(read_at_rest, RECORDER.entries, plan.instances or [plan.host], path, headers,
                    read_rule(cell, plan, load_end))
        if plan.local_pids and not plan.hold_after_load:
            record_exited(RECORDER.entries)
    entries = RECORDER.entries
    if recording:
        write_history(out / "history" / f"{cell.file}.jsonl", entries)
    sent = [e for e in entries if e.get("phase") == "load"]
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    here = load_wall and master is None  # distributed, the generators are the workers: this process only waits
    return {
        "t0": RECORDER.t0,
        "attempted": Cell.budget.issued,
        "sent": len(sent) if recording else RECORDER.load_count,
        "answered": sum(1 for e in sent if e.get("status")),
        "unanswered": RECORDER.unanswered,
        "recorded": len(entries),
        "load_seconds": round(load_wall, 4),
        "generator_cpu_seconds": round(cpu, 4) if master is None else None,
        "generator_cpu_share": round(cpu / load_wall, 4) if here else None,
        "generator_wait_share": round((wait1 - wait0) / load_wall, 4) if here else None,
        "timed_out": timed_out,
        "stalled_s": STALLED_S if load.stalled else None,
        "users": users,
        "per_user_rps": cell.per_user_rps,
        # Fixed-rate load: slots started late, and slots due before the cell ended that never started.
        "rate": cell.rate, "arrivals": cell.arrivals if cell.rate else None,
        "late": Cell.schedule.late if Cell.schedule else None,
        "dropped": Cell.schedule.dropped(load_end) if Cell.schedule else None,
        # For workerlab bench; the matrix ignores them.
        "record": recording,
        "load_ok": RECORDER.load_ok,
        "rps": round(RECORDER.load_ok / load_wall, 1) if load_wall else None,
        "locust_p50_ms": load.p50,
        "locust_p99_ms": load.p99,
        "final_reads_and_write_seconds": round(time.monotonic() - after0, 4),
        **({"workers": load.workers} if load.workers is not None else {}),
    }


def answers(url: str) -> bool | None:
    """True when the instance answers a request (any status: an app of the user's may have no /health), False
    when it accepted the request and answered nothing in HUNG_PROBE_S, None when it is not there at all."""
    parsed = urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=HUNG_PROBE_S)
    try:
        conn.request("GET", "/health", headers={"Connection": "close"})
        conn.getresponse().read()
        return True
    except TimeoutError:
        return False
    except OSError:
        return None  # down, refused: not a hung worker, and not this wait's to wait for
    finally:
        conn.close()


def await_unhung(plan: Plan) -> float:
    """Wait (at most HUNG_WAIT_S) until no instance is hung, so a cell never inherits the one before's deadlock;
    the seconds waited."""
    start = time.monotonic()
    for url in plan.instances or [plan.host]:
        while answers(url) is False and time.monotonic() - start < HUNG_WAIT_S:
            gevent.sleep(0.5)
    return time.monotonic() - start


def run_plan(plan: Plan, out: Path) -> int:
    """Every cell of the plan, one after another, each reported as event lines."""
    master = None
    if plan.workers:  # the load comes from locust workers; this process is their master
        from .distributed import Master, WorkersError

        try:
            master = Master(plan)
            master.await_workers(plan.workers_wait_s)
        except WorkersError as exc:
            for cell in plan.cells:
                emit("cell-error", cell=cell.id, error=str(exc))
            if master is not None:
                master.quit()
            return 1
    try:
        for cell in plan.cells:
            if plan.step:
                emit("cell-wait", cell=cell.id)
                if sys.stdin.readline() != GO:
                    break  # the caller went away
            waited = await_unhung(plan)
            if waited > HUNG_PROBE_S:
                print(f"cell {cell.id}: waited {waited:.1f}s for a hung app instance to answer again", file=sys.stderr,
                      flush=True)
            emit("cell-start", cell=cell.id)
            try:
                stats = run_cell(cell, plan, out, master)
            except Exception as exc:  # one broken cell must not end the run
                emit("cell-error", cell=cell.id, error=f"{type(exc).__name__}: {exc}")
                continue
            emit("cell-done", cell=cell.id, stats=stats)
    finally:
        if master is not None:
            master.quit()  # the workers are told the run is over, and exit
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    plan = Plan.read(Path(argv[0]))
    out = Path(plan.out)
    (out / "history").mkdir(parents=True, exist_ok=True)
    logging.getLogger("locust").setLevel(logging.ERROR)
    if plan.cpu_affinity:
        os.sched_setaffinity(0, set(plan.cpu_affinity))
    if plan.nice:
        os.setpriority(os.PRIO_PROCESS, 0, plan.nice)
    return run_plan(plan, out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
