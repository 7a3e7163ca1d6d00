"""A cell's load from locust workers, on this machine or others: locust's own master/worker distribution
carries the cell out and the history back, and the master (the driver, loadtests/driver.py) judges one history.

Per cell (locust custom messages between the master and each worker):

    master -> lab_cell {cell, shared cookie, baseline}  the worker empties its recorder; its users' budget is shut
    worker -> lab_ready                                  (after it has set its clock against the master's)
    master    runner.start(users)                        locust's dispatch spawns the users; they wait at the budget
    master -> lab_go {requests, users}                   the worker's share of the budget, in proportion to its users
    worker -> lab_loaded {issued}                        its share is sent and answered (or its users stopped)
    master -> lab_finish                                 only at the time limit: send no more, let what is in flight
                                                         be answered (answer_in_flight_s), then lab_loaded
    master    runner.stop()                              a request still in flight is recorded as unanswered
    worker -> a last worker report with lab_done {entries, issued}

and at the end of the plan `lab_end {more}`: whether the run has another plan (the next scenario), whose master
the workers then wait for, before locust's own quit.

The entries travel as the web UI's do (loadtests/webui.py: `lab_entries` in each worker report, re-based onto
the master's clock, each marked with its `worker`). A worker whose last report does not come within
ENTRIES_WAIT_S is not dropped: the requests it said it sent (its share, if it said nothing) that the master has
no entry of become unanswered entries, and the cell's stats say which worker was incomplete.

Clocks: a worker on the master's machine (the same boot id: containers and network namespaces share the
kernel's CLOCK_MONOTONIC) uses the master's clock as is; on another machine it measures the offset with a
few round trips (the shortest one's midpoint: off by at most half that round trip) at each cell, and its
entries' times are widened by that bound plus CLOCK_DRIFT over the cell (`clock_error`): "A completed before B
began", which the real-time rules read, then holds only where it surely did - an uncertain clock can hide an
anomaly, never make one up. LAB_WORKER_CLOCK=measure makes a worker measure its clock on the master's machine
too (a test of that path: the offset found must be ~0).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

import gevent
from gevent.event import AsyncResult, Event
from locust import events
from locust.env import Environment
from locust.runners import STATE_MISSING, WorkerRunner

from .arrivals import Schedule
from .driver import (
    ANSWER_IN_FLIGHT_CAP_S,
    SCHEDULE_LEAD_S,
    Load,
    SetupUser,
    answer_in_flight_s,
    configure_cell,
    emit,
    prepare_same_user,
    user_class_for,
)
from .locustfile import RECORDER, Budget, Cell, make_entry
from .protocol import CellPlan, Plan, parse_address, shares
from .webui import worker_name

CELL, READY, GO, LOADED, FINISH, CLOCK = "lab_cell", "lab_ready", "lab_go", "lab_loaded", "lab_finish", "lab_clock"
END = "lab_end"  # master -> every worker before locust's quit: {"more": another master follows (the next scenario)}
WORKERS_BACK_S = 30.0  # between cells: how long workers may take to report ready again
SETUP_S = 30.0  # a worker's answer to lab_cell (its clock set) and to the spawn
ENTRIES_WAIT_S = 20.0  # after the stop: a worker's last report with the rest of its entries
CLOCK_SAMPLES = 7
CLOCK_DRIFT = 50e-6  # how far two machines' monotonic clocks may drift apart, per second (NTP keeps them < 10e-6)
OPS = {"same-user": "incr", "session": "incr", "counter": "incr", "unique": "incr", "isolation": "echo",
       "nonce": "echo", "path": "get"}  # what an unreported request of each check was (checkers read op)


def boot_id() -> str:
    """This kernel's boot id: equal on two processes exactly when they share one CLOCK_MONOTONIC."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


BOOT = boot_id()
MEASURE_CLOCK = os.environ.get("LAB_WORKER_CLOCK") == "measure"


class WorkersError(RuntimeError):
    """The master could not listen, or its workers did not come or answer: the cell is an error, never judged."""


def _until(done, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.02)
    return True


class Master:
    """The driver's locust master: one for the plan, its workers kept from cell to cell."""

    def __init__(self, plan: Plan):
        self.bind = plan.master_bind
        self.expected = plan.workers
        self.more_plans = plan.more_plans
        host, port = parse_address(plan.master_bind)
        self.env = env = Environment(user_classes=[], events=events, host=plan.host)
        try:
            self.runner = env.create_master_runner(host, port)
        except SystemExit:  # locust's answer to a port in use
            raise WorkersError(f"the master cannot listen on {self.bind}: the port is in use") from None
        except Exception as exc:  # noqa: BLE001 - zmq's bind errors (an address not on this machine ...)
            raise WorkersError(f"the master cannot listen on {self.bind}: {exc}") from None
        self.ready: set[str] = set()
        self.loaded: dict[str, dict] = {}
        self.done: dict[str, dict] = {}
        self.runner.register_message(READY, lambda msg, **_: self.ready.add(msg.node_id))
        self.runner.register_message(LOADED, lambda msg, **_: self.loaded.setdefault(msg.node_id, msg.data))
        self.runner.register_message(CLOCK, self._clock)
        events.worker_report.add_listener(self._report)  # after the web UI's, which adds the entries
        self.ending = False
        events.worker_connect.add_listener(self._connected)

    def _connected(self, client_id, **_) -> None:
        """A worker that connects while this master ends (waiting for the next scenario's master, it came back
        too soon) is sent on at once: it must not wait for heartbeats from a master about to exit."""
        if self.ending:
            self.runner.send_message(END, {"more": self.more_plans}, client_id=client_id)
            self.runner.send_message("quit", None, client_id=client_id)

    def _clock(self, msg, **_) -> None:
        self.runner.send_message(CLOCK, {"t1": msg.data["t1"], "t2": time.monotonic(), "boot": BOOT},
                                 client_id=msg.node_id)

    def _report(self, client_id, data, **_) -> None:
        if "lab_done" in data:
            self.done[client_id] = data["lab_done"]

    def connected(self) -> list[str]:
        return sorted(c.id for c in self.runner.clients.ready)

    def await_workers(self, seconds: float) -> None:
        if not _until(lambda: len(self.runner.clients.ready) >= self.expected, seconds):
            raise WorkersError(f"{len(self.runner.clients.ready)} of {self.expected} workers connected to the "
                               f"master at {self.bind} within {seconds:.0f}s (start each with: python -m "
                               f"workerlab worker --master {self.bind})")

    def _all(self, ids: list[str], where) -> bool:
        """Every worker has answered (is in `where`) or is gone: quit, or missing its heartbeats (locust's
        WorkerNode state) - a worker that ended says nothing more, and nobody waits for it."""
        clients = self.runner.clients
        return all(i in where or i not in clients or clients[i].state == STATE_MISSING for i in ids)

    def load(self, cell: CellPlan, plan: Plan, users: int) -> Load:
        self.await_workers(WORKERS_BACK_S)
        ids = self.connected()
        self.env.user_classes = [user_class_for(cell)]
        SetupUser.host = plan.host
        if cell.check == "same-user":
            prepare_same_user(self.env, cell)
        self.ready.clear(), self.loaded.clear(), self.done.clear()
        setup = {"cell": asdict(cell), "shared_cookie": Cell.shared_cookie, "baseline": Cell.baseline,
                 "served_by_header": plan.served_by_header}
        for worker in ids:
            self.runner.send_message(CELL, setup, client_id=worker)
        if not _until(lambda: self._all(ids, self.ready), SETUP_S):
            raise WorkersError(f"workers {', '.join(worker_name(i) for i in ids if i not in self.ready)} did not "
                               f"take the cell within {SETUP_S:.0f}s")
        self.runner.start(users, spawn_rate=users * 20)
        spread = {}

        def spawned() -> bool:
            clients = self.runner.clients
            spread.update({i: sum(clients[i].user_classes_count.values()) for i in ids if i in clients})
            return sum(spread.values()) >= users

        _until(spawned, SETUP_S)
        counts = [spread.get(i, 0) for i in ids]
        parts = dict(zip(ids, shares(cell.requests, counts), strict=True))
        emit("load-start", cell=cell.id, t0=RECORDER.t0)
        wall0 = time.monotonic()
        for worker, n in zip(ids, counts, strict=True):
            self.runner.send_message(GO, {"requests": parts[worker], "users": n}, client_id=worker)
        timed_out = not _until(lambda: self._all(ids, self.loaded), cell.time_limit)
        wall, end = time.monotonic() - wall0, RECORDER.now()
        if timed_out:
            for worker in ids:
                if worker not in self.loaded:
                    self.runner.send_message(FINISH, None, client_id=worker)
            _until(lambda: self._all(ids, self.loaded), ANSWER_IN_FLIGHT_CAP_S + 5)
        self.runner.stop()  # the workers stop their users and send what they recorded since their last report
        _until(lambda: self._all(ids, self.done) and all(self._received(i) >= self.done[i]["entries"]
                                                          for i in ids if i in self.done), ENTRIES_WAIT_S)
        workers = {worker_name(i): self._account(i, cell, parts[i], n, end) for i, n in zip(ids, counts, strict=True)}
        Cell.budget = Budget(cell.requests)
        Cell.budget.issued = sum(w["issued"] for w in workers.values())
        RECORDER.unanswered = sum(1 for e in RECORDER.entries if e.get("unanswered"))
        total = self.env.stats.total
        return Load(wall, end, timed_out, total.get_response_time_percentile(0.5),
                    total.get_response_time_percentile(0.99), workers)

    def _received(self, worker: str) -> int:
        name = worker_name(worker)
        return sum(1 for e in RECORDER.entries if e.get("worker") == name)

    def _account(self, worker: str, cell: CellPlan, share: int, users: int, end: float) -> dict:
        """One worker's part of the cell; the requests it sent that have no entry become unanswered ones."""
        name = worker_name(worker)
        load = sum(1 for e in RECORDER.entries if e.get("worker") == name and e.get("phase") == "load")
        said = self.done.get(worker, self.loaded.get(worker, {})).get("issued")
        issued = share if said is None else said
        complete = worker in self.done and self._received(worker) >= self.done[worker]["entries"]
        if not complete:
            why = (f"worker {name} ended, or said nothing within {ENTRIES_WAIT_S:.0f}s of the stop, before it "
                   "reported this request's entry"
                   + ("" if said is not None else " (nor how many it sent: its whole share is counted)"))
            for _ in range(max(0, issued - load)):
                lab = {"client": f"{name}-unreported", "req": next(RECORDER.req_ids), "op": OPS[cell.check],
                       "phase": "load", "invoke": end, "worker": name}
                entry = make_entry(lab, 0, None)
                entry.update(error=why, unanswered=True)
                RECORDER.entries.append(entry)
            load = max(load, issued)
        return {"users": users, "requests": share, "issued": issued, "load_entries": load, "complete": complete}

    def quit(self) -> None:
        """The plan is over: every worker is told whether another master follows, and to quit."""
        self.ending = True
        self.runner.send_message(END, {"more": self.more_plans})
        self.runner.quit()


class GatedBudget(Budget):
    """A worker's budget: shut until the master says the worker's share (users spawned before it wait here)."""

    def __init__(self):
        super().__init__(0)
        self.gate = Event()

    def open(self, total: int) -> None:
        self.total = total
        self.gate.set()

    def take(self) -> bool:
        self.gate.wait()
        return super().take()


class LabWorkerRunner(WorkerRunner):
    """locust's worker with the lab's part (WorkerSide) in place before it first speaks to its master: the
    master's messages may follow its ack at once."""

    def __init__(self, environment, master_host: str, master_port: int, target_host: str | None = None):
        self.side: WorkerSide | None = None
        self._target_host = target_host
        super().__init__(environment, master_host, master_port)

    def connect_to_master(self):
        if self.side is None:
            self.side = WorkerSide(self.environment, self, self._target_host)
        super().connect_to_master()


class WorkerSide:
    """A worker's part: take each cell from the master, send its share, record it, report every entry."""

    def __init__(self, env, runner, target_host: str | None = None):
        self.env, self.runner, self.target_host = env, runner, target_host
        self.cell: CellPlan | None = None
        self.next_master: bool | None = None  # lab_end: None - not said; False - the run is over; True - one follows
        self.finishing = False
        self.reported = True
        self._clock_reply: AsyncResult | None = None
        Cell.client_prefix = f"{worker_name(runner.client_id)}-"
        runner.register_message(CELL, self._cell, concurrent=True)  # it waits for clock replies
        runner.register_message(GO, self._go)
        runner.register_message(FINISH, self._finish)
        runner.register_message(END, lambda msg, **_: setattr(self, "next_master", bool(msg.data["more"])))
        runner.register_message(CLOCK, lambda msg, **_: self._clock_reply and self._clock_reply.set(msg.data))
        events.test_start.add_listener(self._retarget)
        events.test_stop.add_listener(self._stopped)

    def clock_offset(self) -> tuple[float, float]:
        """The master's CLOCK_MONOTONIC minus this machine's, and how far off that may be: (0, 0) on the same
        machine, else the offset at the shortest of a few round trips, and half that round trip."""
        best: tuple[float, float] | None = None
        for _ in range(CLOCK_SAMPLES):
            self._clock_reply = AsyncResult()
            t1 = time.monotonic()
            self.runner.send_message(CLOCK, {"t1": t1})
            try:
                reply = self._clock_reply.get(timeout=5)
            except gevent.Timeout:
                continue
            t3 = time.monotonic()
            if reply["boot"] == BOOT and not MEASURE_CLOCK:
                return 0.0, 0.0
            if best is None or t3 - t1 < best[0]:
                best = (t3 - t1, reply["t2"] - (t1 + t3) / 2)
        if best is None:
            raise WorkersError("the master did not answer the clock's round trips")
        print(f"worker: clock offset to the master {best[1] * 1000:+.3f} ms (round trip {best[0] * 1000:.3f} ms)",
              file=sys.stderr, flush=True)
        return best[1], best[0] / 2

    def _cell(self, msg, **_) -> None:
        data = msg.data
        cell = CellPlan(**data["cell"])
        offset, error = self.clock_offset()
        # Read as the entries go to the master (loadtests/webui.py): its clock, and how far off it may be by the
        # end of the cell.
        RECORDER.clock_offset = offset
        RECORDER.clock_error = error and error + CLOCK_DRIFT * (cell.time_limit + ANSWER_IN_FLIGHT_CAP_S)
        configure_cell(cell, 0, 1, data["served_by_header"], budget=GatedBudget())
        Cell.shared_cookie, Cell.baseline = data["shared_cookie"], data["baseline"]
        self.env.user_classes = [user_class_for(cell)]
        self.cell, self.finishing, self.reported = cell, False, False
        self.runner.send_message(READY, {"cell": cell.id})

    def _go(self, msg, **_) -> None:
        requests, users = msg.data["requests"], msg.data["users"]
        Cell.per_user = max(1, requests // max(1, users))
        if self.cell.rate and requests:  # a fixed rate: this worker's part of it
            Cell.schedule = Schedule(self.cell.rate * requests / self.cell.requests, requests,
                                     start=RECORDER.now() + SCHEDULE_LEAD_S, arrivals=self.cell.arrivals)
        Cell.budget.open(requests)
        gevent.spawn(self._watch, time.monotonic())

    def _watch(self, started: float) -> None:
        """Tell the master when this worker's share is sent and answered (as the driver's own loop does)."""
        while RECORDER.load_count < Cell.budget.total and not self.finishing:
            if self.runner.user_count == 0 and time.monotonic() - started > 1.0:
                break  # every user stopped (session users done)
            gevent.sleep(0.02)
        if self.finishing:
            _until(lambda: RECORDER.load_count >= Cell.budget.issued, answer_in_flight_s(RECORDER.entries))
        self.runner.send_message(LOADED, {"issued": Cell.budget.issued})

    def _finish(self, msg, **_) -> None:
        self.finishing = True
        Cell.budget.total = Cell.budget.issued

    def _retarget(self, environment, **_) -> None:
        """--target-host: the deployment as this machine reaches it (same scheme, port and path)."""
        if self.target_host and environment.host:
            parts = urlsplit(environment.host)
            port = f":{parts.port}" if parts.port else ""
            environment.host = parts._replace(netloc=f"{self.target_host}{port}").geturl()

    def _stopped(self, environment, **_) -> None:
        """The users are stopped (their requests in flight recorded as unanswered): every entry not yet
        reported goes now, with how many there are in all."""
        if self.reported or self.cell is None:
            return
        self.reported = True
        data: dict = {}
        environment.events.report_to_master.fire(client_id=self.runner.client_id, data=data)
        data["lab_done"] = {"cell": self.cell.id, "entries": len(RECORDER.entries), "issued": Cell.budget.issued}
        self.runner.send_message("stats", data)
