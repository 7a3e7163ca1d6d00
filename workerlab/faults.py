"""Faults ("nemesis"): what survives a worker kill, a reload, a sidecar restart, an eviction.

Each fault is declared once below and runs with any scenario: the runner brings up the
scenario's stack with the fault's settings (redis persistence, a tiny memcached, gunicorn
max_requests), drives each strategy under a steady paced load (loadtests/nemesis_drive.py),
injects the fault at a recorded moment on the driver's own clock, waits until it is over,
then lets the driver read every counter at rest. loadtests/fault_checkers.py judges the
history by Jepsen's counter rule (every acknowledged increment must show in a later read)
or per user for sessions, and reports requests failed during the fault and the time to
recover.

The expected verdict of every (strategy x fault) cell is declared here with a one-line
reason, like expected.py does for the matrix.

    python -m workerlab faults [--scenario sync-x4] [--fault NAME ...] [--strategy NAME ...] [--quick]
    python -m workerlab faults --expected        # the table only, nothing runs

Output: results/<timestamp>/faults.json (schema below) and faults.md.

Schema ``worker-lab/faults/v1``::

    {"schema", "run_id", "status", "started", "finished", "settings": {...}, "versions": {...},
     "faults": {name: {"summary", "at_s", "stack": {...}}},
     "cells": [{"scenario", "fault", "strategy", "scope",
                "expected": {"verdict", "label", "reason"}, "observed": {"verdict", "label"} | null,
                "match": bool | null,                  # null: not judged ("any") or skipped
                "counts": {lost, acknowledged, attempted, failed_during_fault, recover_s, ...},
                "injected": {"at_s", "pid", "restart_s", ...},  # what was done, when (seconds since load start)
                "examples", "notes", "history", "error", "skipped"}],
     "summary": {"cells", "judged", "matched", "mismatched", "errors", "skipped"}}
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from loadtests.fault_checkers import check_counter_fault, check_sessions_fault
from loadtests.history import process_of, read_history

from .expected import expect
from .matrix import new_run_dir
from .paths import RESULTS_DIR, ROOT
from .procs import StackError, kill_session
from .results import now_iso, versions
from .scenarios import Scenario, UnknownName, load_scenarios, pick
from .stack import NativeStack, missing_binaries

SCHEMA = "worker-lab/faults/v1"
console = Console(width=None if sys.stdout.isatty() else 200)  # piped: do not fold the grid into 80 columns

# -- load shape ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadShape:
    users: int
    per_user_rps: float
    seconds: float
    at_s: float  # when a fault that happens at a moment is injected, seconds after the load starts

    @property
    def requests(self) -> int:
        return int(self.users * self.per_user_rps * self.seconds)

    def as_dict(self) -> dict:
        return {**self.__dict__, "requests": self.requests}


# Faults land at least 1.3 s into the load: redis' everysec fsync (once per wall-clock second) has then
# run at least once since the first write, so what a host crash loses is a tail, not everything.
FULL = LoadShape(users=10, per_user_rps=25, seconds=4.0, at_s=1.5)
QUICK = LoadShape(users=8, per_user_rps=25, seconds=2.5, at_s=1.3)
CELL_TIME_LIMIT_S = 30.0
INJECT_JOIN_S = 30.0

# -- strategies the fault table covers, and where each keeps its state --------------------

# strategy -> (checker scope, where the state lives)
SCOPES: dict[str, tuple[str, str]] = {
    "naive-global": ("process", "process"),
    "locked-global": ("process", "process"),
    "cache-simple-inc": ("process", "process"),
    "redis-incr": ("store", "redis"),
    "memcached-incr": ("store", "memcached"),
    "sql-update": ("store", "sqlite"),
    "mp-manager": ("store", "manager"),
    "server-session-redis": ("session", "redis"),
    "cookie-session": ("session", "cookie"),
}
FAULT_STRATEGIES = tuple(SCOPES)
WHERE = {
    "process": "a module global of each worker process",
    "redis": "redis",
    "memcached": "memcached",
    "sqlite": "an SQLite file (WAL)",
    "manager": "the manager server process",
    "cookie": "the user's signed cookie",
}

# -- injectors: what a fault does, on a thread of the runner --------------------------------


@dataclass
class Injection:
    """What the injector did: ``at`` is the monotonic time of the fault; ``info`` goes to faults.json."""

    stack: NativeStack
    t0: float
    stop: threading.Event
    at: float | None = None
    info: dict = field(default_factory=dict)
    error: str | None = None

    def mark(self, **info) -> None:
        self.at = time.monotonic()
        self.info["at_s"] = round(self.at - self.t0, 4)
        self.info.update(info)


def _wait_workers(stack: NativeStack, *, gone: set[int] = frozenset(), timeout: float = 15.0) -> float | None:
    """Seconds until instance 1 has its full set of workers again, none of them in ``gone``."""
    started = time.monotonic()
    want = stack.scenario.workers
    while time.monotonic() - started < timeout:
        pids = set(stack.app_worker_pids(0))
        if len(pids) >= want and not pids & gone:
            return round(time.monotonic() - started, 3)
        time.sleep(0.01)
    return None


def inject_worker_kill(inj: Injection) -> None:
    pids = inj.stack.app_worker_pids(0)
    victim = pids[0]  # the oldest worker: it has served load since the start
    inj.mark(pid=victim, workers_before=len(pids))
    os.kill(victim, signal.SIGKILL)
    inj.info["respawn_s"] = _wait_workers(inj.stack, gone={victim})


def inject_graceful_reload(inj: Injection) -> None:
    old = set(inj.stack.app_worker_pids(0))
    master = inj.stack.app_master_pid(0)
    inj.mark(pid=master, workers_before=len(old))
    os.kill(master, signal.SIGHUP)
    inj.info["all_workers_replaced_s"] = _wait_workers(inj.stack, gone=old)


def _restart(name: str) -> Callable[[Injection], None]:
    def inject(inj: Injection) -> None:
        inj.mark(pid=inj.stack.child(name).proc.pid, signal="SIGKILL")
        inj.info["restart_s"] = round(inj.stack.restart(name, signal.SIGKILL), 3)

    inject.__name__ = f"inject_{name}_restart"
    return inject


FILL_ITEMS_MAX = 300_000
FILL_BATCH = 1000


def inject_memcached_evict(inj: Injection) -> None:
    """Write filler items into a 2 MB memcached until the load ends (bounded in count)."""
    from pymemcache.client.base import Client

    client = Client(("127.0.0.1", inj.stack.ports["memcached"]), connect_timeout=2, timeout=5)
    before = int(client.stats().get(b"evictions", 0))
    inj.mark(memory_mb=inj.stack.memcached_mb)
    written = 0
    while written < FILL_ITEMS_MAX and not inj.stop.is_set():
        # Keys and values about the size of a counter item, so they share its slab class.
        client.set_many({f"lab:filler:{written + i:08d}:{'x' * 24}": b"1" * (1 + i % 24) for i in range(FILL_BATCH)},
                        noreply=True)
        written += FILL_BATCH
        time.sleep(0.01)
    stats = client.stats()
    client.close()
    inj.info.update(filler_items=written, evictions=int(stats.get(b"evictions", 0)) - before,
                    fill_s=round(time.monotonic() - inj.at, 3))


def inject_sql_kill_in_transaction(inj: Injection) -> None:
    """Arm the app's fault point inside the SQLite transaction; kill -9 the worker it holds there."""
    folder = Path(inj.stack.app_extra_env["LAB_FAULT_POINTS"])
    base = folder / "sql-in-transaction"
    for leftover in (base.with_suffix(".pid"), base.with_suffix(".held")):
        leftover.unlink(missing_ok=True)
    base.with_suffix(".arm").touch()
    pid_file = base.with_suffix(".pid")
    while not pid_file.exists():
        if inj.stop.is_set():
            base.with_suffix(".arm").unlink(missing_ok=True)
            inj.error = "no request reached the fault point before the load ended"
            return
        time.sleep(0.002)
    pid = int(pid_file.read_text())
    db = Path(inj.stack.run_dir) / "data" / "counters.sqlite3"
    held = _write_lock_held(db)
    inj.mark(pid=pid, write_lock_held_at_kill=held)
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    released = None
    while time.monotonic() - started < 10:
        if not _write_lock_held(db):
            released = round(time.monotonic() - started, 4)
            break
        time.sleep(0.005)
    inj.info["write_lock_released_s"] = released
    inj.info["respawn_s"] = _wait_workers(inj.stack, gone={pid})


def _write_lock_held(db: Path) -> bool:
    """Is someone inside a write transaction? (BEGIN IMMEDIATE without waiting fails then.)"""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def inject_nginx_reload(inj: Injection) -> None:
    inj.mark(pid=inj.stack.reload_nginx(), signal="SIGHUP")


def inject_nothing(inj: Injection) -> None:
    """A fault that is a setting for the whole run (gunicorn max_requests): it starts with the load."""
    inj.at = inj.t0
    inj.info["at_s"] = 0.0
    workers = set()
    while not inj.stop.wait(0.05):  # note every worker pid seen, to count the recycles
        workers |= set(inj.stack.app_worker_pids(0))
    inj.info["worker_pids_seen"] = len(workers)


SHIM_SOURCE = Path(__file__).resolve().parent / "shim" / "unsynced_aof.c"


def c_compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def build_shim(folder: Path) -> Path:
    """Compile workerlab/shim/unsynced_aof.c (redis loses its unsynced AOF tail on kill -9, as on a host crash)."""
    compiler = c_compiler()
    if compiler is None:
        raise StackError("the host-crash faults need a C compiler: apt-get install gcc")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "unsynced_aof.so"
    proc = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE), "-ldl", "-lpthread"],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise StackError(f"building {SHIM_SOURCE.name} failed:\n{proc.stderr[-2000:]}")
    return out


# -- the declarations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    inject: Callable[[Injection], None]
    hits: str  # what it restarts: process | redis | memcached | sqlite | nginx
    moment: bool = True  # False: lasts the whole run
    needs_gunicorn: bool = False
    only: tuple[str, ...] = ()  # strategies it applies to; empty = all
    redis_persistence: str = "none"
    memcached_mb: int = 64
    memcached_item_max: str | None = None
    app_env: tuple[tuple[str, str], ...] = ()
    host_crash: bool = False  # redis runs under the shim: kill -9 loses what it had not fsynced

    def stack_settings(self) -> dict:
        return {"redis_persistence": self.redis_persistence, "memcached_mb": self.memcached_mb,
                "memcached_item_max": self.memcached_item_max, "app_env": dict(self.app_env),
                "host_crash_shim": self.host_crash}


RECYCLE_MAX_REQUESTS = 60
RECYCLE_JITTER = 20

FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("worker-kill", "kill -9 of one gunicorn worker mid-run; the master forks a new one",
          inject_worker_kill, "process", needs_gunicorn=True),
    Fault("worker-recycle", f"gunicorn max_requests={RECYCLE_MAX_REQUESTS} (+jitter {RECYCLE_JITTER}): "
          "workers retire and are replaced all run long", inject_nothing, "process", moment=False,
          needs_gunicorn=True,
          app_env=(("MAX_REQUESTS", str(RECYCLE_MAX_REQUESTS)), ("MAX_REQUESTS_JITTER", str(RECYCLE_JITTER)))),
    Fault("graceful-reload", "SIGHUP to the gunicorn master: every worker replaced gracefully",
          inject_graceful_reload, "process", needs_gunicorn=True),
    Fault("redis-restart", "kill -9 and restart of redis without persistence", _restart("redis"), "redis"),
    Fault("redis-restart-aof-always", "kill -9 and restart of redis with appendonly, appendfsync always",
          _restart("redis"), "redis", redis_persistence="aof-always"),
    Fault("redis-restart-aof-everysec", "kill -9 and restart of redis with appendonly, appendfsync everysec",
          _restart("redis"), "redis", redis_persistence="aof-everysec"),
    Fault("redis-host-crash-aof-always", "emulated host crash of redis (appendfsync always): unsynced AOF "
          "writes lost, then restart", _restart("redis"), "redis", redis_persistence="aof-always", host_crash=True),
    Fault("redis-host-crash-aof-everysec", "emulated host crash of redis (appendfsync everysec): unsynced AOF "
          "writes lost, then restart", _restart("redis"), "redis", redis_persistence="aof-everysec", host_crash=True),
    Fault("memcached-restart", "kill -9 and restart of memcached", _restart("memcached"), "memcached"),
    Fault("memcached-evict", "memcached with -m 2 and filler writes from the fault on: LRU eviction",
          inject_memcached_evict, "memcached", memcached_mb=2, memcached_item_max="512k"),
    Fault("sql-kill-in-transaction", "kill -9 of a worker held inside an open SQLite write transaction",
          inject_sql_kill_in_transaction, "sqlite", needs_gunicorn=True, only=("sql-update",)),
    Fault("nginx-reload", "SIGHUP to nginx during the run: new workers, old ones retire gracefully",
          inject_nginx_reload, "nginx"),
)}

# -- expected verdicts ----------------------------------------------------------------------


@dataclass(frozen=True)
class FaultExpectation:
    verdict: frozenset[str] | None  # None: not applicable (the cell is skipped)
    reason: str

    @property
    def label(self) -> str:
        if self.verdict is None:
            return "n/a"
        return fault_label(self.verdict)


def fault_label(verdict) -> str:
    order = ("any", "survives", "resets", "loses-acked-writes", "over-counts", "leaks", "unavailable")
    return "+".join(w for w in order if w in verdict) or "?"


def _v(*words: str) -> frozenset[str]:
    return frozenset(words)


PROCESS_RESET = {
    "worker-kill": "the killed worker's globals die with it; the master forks a fresh one that counts from zero",
    "worker-recycle": "max_requests retires workers all run long, each taking its count with it",
    "graceful-reload": "HUP replaces every worker: new processes, fresh module globals",
}


def expect_fault(strategy: str, fault: Fault, scenario: Scenario) -> FaultExpectation:
    """The expected fault verdict of one (strategy, fault) cell under ``scenario``, with its reason."""
    scope, where = SCOPES[strategy]
    if fault.needs_gunicorn and scenario.server != "gunicorn":
        return FaultExpectation(None, "needs gunicorn workers (this scenario runs the Flask dev server)")
    if fault.only and strategy not in fault.only:
        return FaultExpectation(None, f"applies only to {', '.join(fault.only)}")
    if fault.host_crash and c_compiler() is None:
        return FaultExpectation(None, "needs a C compiler for the host-crash shim (apt-get install gcc)")
    base = expect(strategy, scenario)
    confound = base.verdict & {"lost-updates", "leaks", "error"}
    if confound:
        return FaultExpectation(_v("any"), f"not judged: the scenario alone already gives {'+'.join(sorted(confound))}"
                                           f" ({base.reason})")
    if fault.hits == "process":
        if where == "process":
            return FaultExpectation(_v("resets"), PROCESS_RESET[fault.name])
        if where == "cookie":
            return FaultExpectation(_v("survives"), "the state travels in the user's cookie, not in the worker")
        return FaultExpectation(_v("survives"), f"the state lives in {WHERE[where]}, outside the worker")
    if fault.hits == "sqlite":
        return FaultExpectation(_v("survives"), "the killed transaction never committed and rolls back; "
                                                "every committed increment is in the WAL")
    if fault.hits == "nginx":
        return FaultExpectation(_v("survives"), "nginx holds no state; old nginx workers finish their requests")
    if fault.hits != where:
        return FaultExpectation(_v("survives"), f"the state lives in {WHERE[where]}, not in {fault.hits}")
    if fault.name == "redis-restart":
        what = ("users start again from 1 (one whose request spans the restart writes the whole session "
                "back)") if scope == "session" else "the counter starts again from 0"
        return FaultExpectation(_v("resets"), f"no persistence: redis comes back empty; {what}")
    if fault.name == "redis-restart-aof-always":
        return FaultExpectation(_v("survives"), "each write is fsynced to the append-only file before the reply")
    if fault.name == "redis-restart-aof-everysec":
        return FaultExpectation(_v("survives"), "a killed redis loses nothing it wrote: the kernel has it; only a "
                                                "host crash loses the last second not yet fsynced")
    if fault.name == "redis-host-crash-aof-always":
        return FaultExpectation(_v("survives"), "fsync before every reply: what a host crash loses was never "
                                                "acknowledged")
    if fault.name == "redis-host-crash-aof-everysec":
        what = "users step back" if scope == "session" else "the counter steps back"
        return FaultExpectation(_v("loses-acked-writes"), f"a host crash loses what redis wrote but had not fsynced: "
                                                          f"up to ~1 s of acknowledged writes; {what}")
    if fault.name == "memcached-restart":
        return FaultExpectation(_v("resets"), "memcached keeps everything in memory: it comes back empty")
    if fault.name == "memcached-evict":
        return FaultExpectation(_v("resets"), "filler writes push the counter key out of a 2 MB memcached (LRU); "
                                              "the next incr finds nothing and starts again from 1")
    raise KeyError(f"no expected verdict for ({strategy}, {fault.name})")  # pragma: no cover


# -- running ----------------------------------------------------------------------------------


def _dead_processes(history: list[dict]) -> set[str]:
    import psutil

    dead = set()
    for e in history:
        pid = e.get("pid")
        if not isinstance(pid, int):
            continue
        try:
            gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            gone = True
        if gone:
            dead.add(process_of(e))
    return dead


def judge(strategy: str, fault: Fault, history: list[dict], fault_at: float):
    scope, _ = SCOPES[strategy]
    if scope == "session":
        return check_sessions_fault(history, fault_at=fault_at)
    dead = _dead_processes(history) if scope == "process" else set()
    return check_counter_fault(history, scope=scope, fault_at=fault_at, moment=fault.moment, dead=dead)


class FaultRun:
    """Runs (scenario x fault x strategy) cells and keeps faults.json up to date."""

    def __init__(self, scenarios: dict[str, Scenario], faults: list[Fault], strategies: list[str], shape: LoadShape,
                 run_dir: Path, say: Callable[[str], None] = lambda _: None):
        self.scenarios = scenarios
        self.faults = faults
        self.strategies = strategies
        self.shape = shape
        self.run_dir = run_dir
        self.say = say
        self.path = run_dir / "faults.json"
        self.driver: subprocess.Popen | None = None
        self.data = {
            "schema": SCHEMA, "run_id": run_dir.name, "status": "running", "started": now_iso(), "finished": None,
            "settings": {"scenarios": list(scenarios), "faults": [f.name for f in faults],
                         "strategies": strategies, **shape.as_dict()},
            "versions": versions(),
            "faults": {f.name: {"summary": f.summary, "at_s": shape.at_s if f.moment else 0.0,
                                "stack": f.stack_settings()} for f in faults},
            "cells": [], "summary": {},
        }
        self.write()

    def run(self) -> dict:
        status = "failed"
        try:
            for scenario in self.scenarios.values():
                for fault in self.faults:
                    self.run_fault(scenario, fault)
            status = "complete"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self.stop_driver()
            self.data["status"] = status
            self.data["finished"] = now_iso()
            self.write()
        return self.data

    def add(self, cell: dict) -> None:
        self.data["cells"].append(cell)
        self.write()
        self.say(describe_cell(cell))

    def record(self, scenario: Scenario, fault: Fault, strategy: str, expectation: FaultExpectation, *,
               result=None, info: dict | None = None, history: str | None = None, error: str | None = None) -> None:
        judged = expectation.verdict is not None and "any" not in expectation.verdict
        observed = result.verdict if result is not None else None
        match = (observed == expectation.verdict) if (judged and observed is not None and not error) else None
        if judged and error:
            match = False
        self.add({
            "scenario": scenario.name, "fault": fault.name, "strategy": strategy, "scope": SCOPES[strategy][0],
            "expected": {"verdict": sorted(expectation.verdict or []), "label": expectation.label,
                         "reason": expectation.reason},
            "observed": {"verdict": sorted(observed), "label": fault_label(observed)} if observed else None,
            "match": match,
            "counts": result.counts if result else {},
            "examples": result.examples if result else [],
            "notes": result.notes if result else [],
            "injected": info or {},
            "history": history,
            "error": error,
            "skipped": expectation.verdict is None,
        })

    def run_fault(self, scenario: Scenario, fault: Fault) -> None:
        self.say(f"[bold cyan]{scenario.name} / {fault.name}[/] - {fault.summary}")
        cells = []
        for strategy in self.strategies:
            e = expect_fault(strategy, fault, scenario)
            if e.verdict is None:
                self.record(scenario, fault, strategy, e)
            else:
                cells.append((strategy, e))
        if not cells:
            return
        fault_dir = self.run_dir / scenario.name / fault.name
        env = {**dict(fault.app_env), "LAB_FAULT_POINTS": str(fault_dir / "faultpoints")}
        (fault_dir / "faultpoints").mkdir(parents=True, exist_ok=True)
        try:
            redis_env = {"LD_PRELOAD": str(build_shim(fault_dir / "shim"))} if fault.host_crash else None
            with NativeStack(scenario, fault_dir, redis_persistence=fault.redis_persistence,
                             memcached_mb=fault.memcached_mb, memcached_item_max=fault.memcached_item_max,
                             app_extra_env=env, redis_env=redis_env) as stack:
                self.drive(scenario, fault, stack, fault_dir, cells)
        except StackError as exc:
            done = {c["strategy"] for c in self.data["cells"]
                    if c["scenario"] == scenario.name and c["fault"] == fault.name}
            for strategy, e in cells:
                if strategy not in done:
                    self.record(scenario, fault, strategy, e, error=f"stack: {str(exc).splitlines()[0]}")

    def drive(self, scenario: Scenario, fault: Fault, stack: NativeStack, fault_dir: Path, cells: list) -> None:
        shape = self.shape
        run_key = f"{self.run_dir.name}-{scenario.name}-{fault.name}"
        plan = {"host": stack.url, "instances": stack.instance_urls, "users": shape.users, "out": str(fault_dir),
                "cells": [{"id": strategy, "file": strategy, "strategy": strategy,
                           "check": "session" if SCOPES[strategy][0] == "session" else "counter",
                           "scope": SCOPES[strategy][0], "key": f"{run_key}-{strategy}", "requests": shape.requests,
                           "per_user_rps": shape.per_user_rps, "time_limit": CELL_TIME_LIMIT_S}
                          for strategy, _ in cells]}
        plan_path = fault_dir / "plan.json"
        plan_path.write_text(json.dumps(plan, indent=1))
        expectations = dict(cells)
        pending = dict(expectations)
        log = open(fault_dir / "logs" / "driver.log", "ab")
        self.driver = subprocess.Popen(
            [sys.executable, "-m", "loadtests.nemesis_drive", str(plan_path)], cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=log, start_new_session=True, text=True, bufsize=1,
        )
        injection: Injection | None = None
        thread: threading.Thread | None = None
        try:
            for line in self.driver.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                strategy = event.get("cell")
                if strategy not in pending:
                    continue
                kind = event["event"]
                if kind == "load-start":
                    injection = Injection(stack, event["t0"], threading.Event())
                    thread = threading.Thread(target=self._inject, args=(fault, injection), daemon=True)
                    thread.start()
                elif kind == "cell-loaded":
                    if injection is not None:
                        injection.stop.set()
                        thread.join(INJECT_JOIN_S)
                        if thread.is_alive():
                            injection.error = f"the fault was still running {INJECT_JOIN_S:.0f}s after the load"
                    self.driver.stdin.write("go\n")
                    self.driver.stdin.flush()
                elif kind == "cell-done":
                    pending.pop(strategy)
                    self.judge_cell(scenario, fault, strategy, expectations[strategy], fault_dir, injection)
                    injection = thread = None
                elif kind == "cell-error":
                    pending.pop(strategy)
                    if injection is not None:
                        injection.stop.set()
                    self.record(scenario, fault, strategy, expectations[strategy], error=f"driver: {event['error']}")
                    injection = thread = None
            self.driver.wait()
        finally:
            if injection is not None:
                injection.stop.set()
            if thread is not None:
                thread.join(INJECT_JOIN_S)  # a restart in progress must finish before the stack stops
            self.stop_driver()
            log.close()
        for strategy in pending:
            self.record(scenario, fault, strategy, expectations[strategy],
                        error=f"fault driver exited early (see {fault_dir / 'logs' / 'driver.log'})")

    def _inject(self, fault: Fault, inj: Injection) -> None:
        try:
            if fault.moment:
                delay = inj.t0 + self.shape.at_s - time.monotonic()
                if delay > 0 and inj.stop.wait(delay):
                    inj.error = "the load ended before the fault was due"
                    return
            fault.inject(inj)
        except Exception as exc:  # the cell is recorded with the error, the run goes on
            inj.error = f"{type(exc).__name__}: {exc}"

    def judge_cell(self, scenario, fault, strategy, expectation, fault_dir, inj: Injection | None) -> None:
        history_file = fault_dir / "history" / f"{strategy}.jsonl"
        rel = str(history_file.relative_to(self.run_dir))
        if inj is None or inj.at is None:
            error = (inj.error if inj else None) or "the fault was not injected"
            self.record(scenario, fault, strategy, expectation, info=inj.info if inj else None, history=rel,
                        error=error)
            return
        history = read_history(history_file)
        result = judge(strategy, fault, history, inj.at - inj.t0)
        self.record(scenario, fault, strategy, expectation, result=result, info=inj.info, history=rel,
                    error=inj.error)

    def stop_driver(self) -> None:
        kill_session(self.driver)
        self.driver = None

    def write(self) -> None:
        cells = self.data["cells"]
        judged = [c for c in cells if c["match"] is not None]
        self.data["summary"] = {
            "cells": len(cells),
            "judged": len(judged),
            "matched": sum(1 for c in judged if c["match"]),
            "mismatched": sum(1 for c in judged if not c["match"]),
            "errors": sum(1 for c in cells if c["error"]),
            "skipped": sum(1 for c in cells if c["skipped"]),
        }
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)
        (self.run_dir / "faults.md").write_text(markdown(self.data))


# -- presenting -------------------------------------------------------------------------------


def figures(cell: dict) -> str:
    """The measured figures of one cell, short: lost/acknowledged, failed, recovery."""
    c = cell.get("counts") or {}
    if not c:
        return ""
    parts = []
    if cell["scope"] == "session":
        parts.append(f"of {c.get('users', 0)} users {c.get('users_lost_session', 0)} lost their session, "
                     f"{c.get('users_stepped_back', 0)} stepped back")
    if c.get("lost") is not None:
        parts.append(f"lost {c['lost']}/{c.get('acknowledged', 0)} acked")
    if c.get("failed_during_fault"):
        parts.append(f"{c['failed_during_fault']} failed, recovered in {c.get('recover_s')}s")
    else:
        parts.append("0 failed")
    return "; ".join(parts)


def cell_text(cell: dict) -> str:
    if cell["skipped"]:
        return "n/a"
    if cell["error"] and not cell["observed"]:
        return f"error: {cell['error'][:60]}"
    observed = cell["observed"]["label"] if cell["observed"] else "?"
    if cell["match"] is False:
        return f"!! {observed} ≠ {cell['expected']['label']}"
    if cell["match"] is None:
        return f"{observed} (not judged)"
    return observed


def describe_cell(cell: dict) -> str:
    mark = {True: "[green]ok[/]", False: "[bold red]MISMATCH[/]", None: "[dim]--[/]"}[cell["match"]]
    text = cell_text(cell)
    if cell["skipped"]:
        return f"  [dim]n/a {cell['strategy']:<22} {cell['expected']['reason']}[/]"
    extra = f"  [red]{cell['error']}[/]" if cell["error"] else ""
    return (f"  {mark} {cell['strategy']:<22} expected {cell['expected']['label']:<10} observed {text:<12} "
            f"{figures(cell)}{extra}")


def markdown(data: dict) -> str:
    faults = data["settings"]["faults"]
    lines = [f"# worker-lab faults run {data['run_id']} ({data['status']})", ""]
    s = data["settings"]
    lines.append(f"{s['users']} users at {s['per_user_rps']} requests/s each for {s['seconds']}s per cell; "
                 f"faults at a moment are injected {s['at_s']}s after the load starts.")
    for scenario in data["settings"]["scenarios"]:
        cells = {(c["strategy"], c["fault"]): c for c in data["cells"] if c["scenario"] == scenario}
        if not cells:
            continue
        lines += ["", f"## {scenario}: observed verdict (`!!` differs from expected)", "",
                  "| strategy | " + " | ".join(faults) + " |", "|---|" + "---|" * len(faults)]
        for strategy in data["settings"]["strategies"]:
            row = [cell_text(cells[(strategy, f)]) if (strategy, f) in cells else "" for f in faults]
            lines.append(f"| {strategy} | " + " | ".join(row) + " |")
        lines += ["", f"### {scenario}: measured figures", "",
                  "| fault | strategy | expected | observed | lost / acked | failed during fault | recover (s) "
                  "| fault detail | reason |", "|---|---|---|---|---|---|---|---|---|"]
        order = data["settings"]["strategies"]
        for (strategy, fault), c in sorted(cells.items(),
                                           key=lambda kv: (faults.index(kv[0][1]), order.index(kv[0][0]))):
            if c["skipped"]:
                continue
            n = c["counts"]
            lost = f"{n.get('lost')} / {n.get('acknowledged')}" if n else ""
            if c["scope"] == "session" and n:
                lost += (f" (of {n.get('users')} users: {n.get('users_lost_session')} lost their session, "
                         f"{n.get('users_stepped_back')} stepped back)")
            detail = ", ".join(f"{k}={v}" for k, v in c["injected"].items()
                               if k in ("restart_s", "respawn_s", "all_workers_replaced_s", "evictions",
                                        "write_lock_held_at_kill", "write_lock_released_s", "worker_pids_seen"))
            lines.append(f"| {fault} | {strategy} | {c['expected']['label']} | {cell_text(c)} | {lost} | "
                         f"{n.get('failed_during_fault', '')} | {n.get('recover_s', '')} | {detail} | "
                         f"{c['expected']['reason']} |")
    sm = data["summary"]
    lines += ["", f"{sm.get('matched', 0)} of {sm.get('judged', 0)} judged cells as expected, "
                  f"{sm.get('mismatched', 0)} differ, {sm.get('errors', 0)} errors, {sm.get('skipped', 0)} n/a."]
    return "\n".join(lines) + "\n"


def expected_table(scenario: Scenario, faults: list[Fault], strategies: list[str]) -> Table:
    table = Table(title=f"expected fault verdicts under {scenario.name}")
    for col in ("strategy", "fault", "expected", "reason"):
        table.add_column(col)
    for strategy in strategies:
        for fault in faults:
            e = expect_fault(strategy, fault, scenario)
            table.add_row(strategy, fault.name, e.label, e.reason)
    return table


def grid(data: dict, scenario: str) -> Table:
    faults = data["settings"]["faults"]
    table = Table(title=f"faults under {scenario}: observed (!! = differs from expected)")
    table.add_column("strategy")
    for f in faults:
        table.add_column(f, overflow="fold")
    cells = {(c["strategy"], c["fault"]): c for c in data["cells"] if c["scenario"] == scenario}
    for strategy in data["settings"]["strategies"]:
        row = []
        for f in faults:
            c = cells.get((strategy, f))
            text = cell_text(c) if c else ""
            style = "red" if c and c["match"] is False else ("dim" if not c or c["match"] is None else "green")
            row.append(f"[{style}]{text}[/]")
        table.add_row(strategy, *row)
    return table


# -- the command ------------------------------------------------------------------------------


def _split(values) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def run_faults(scenarios: dict[str, Scenario], faults: list[Fault], strategies: list[str], shape: LoadShape,
               output: Path, say: Callable[[str], None] = lambda _: None) -> tuple[FaultRun, bool]:
    """Run and return (the run, interrupted?)."""
    run_dir = new_run_dir(output)
    run = FaultRun(scenarios, faults, strategies, shape, run_dir, say)
    try:
        run.run()
    except KeyboardInterrupt:
        return run, True
    return run, False


@click.command()
@click.option("--scenario", "-s", multiple=True, help="Scenario name(s); default sync-x4.")
@click.option("--fault", "-f", "fault_names", multiple=True, help="Fault name(s), comma-separated; default all.")
@click.option("--strategy", "-t", multiple=True,
              help=f"Strategy name(s); default the {len(FAULT_STRATEGIES)} the fault table covers.")
@click.option("--quick", is_flag=True, help=f"{QUICK.users} users x {QUICK.per_user_rps}/s for {QUICK.seconds}s "
                                            f"per cell (default {FULL.users} x {FULL.per_user_rps}/s "
                                            f"for {FULL.seconds}s).")
@click.option("--expected", "expected_only", is_flag=True, help="Print the expected table and exit; nothing runs.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR, show_default=True,
              help="Folder for results/<timestamp>/faults.json.")
def faults(scenario, fault_names, strategy, quick, expected_only, output):
    """Inject faults mid-run (worker kill, recycle, reload, redis/memcached restart, eviction, nginx reload)
    and check what survives. Exit 1 if any judged cell differs from its expectation."""
    all_scenarios = load_scenarios()
    try:
        scenario_names = pick(_split(scenario) or ["sync-x4"], all_scenarios, "scenario")
        fault_list = [FAULTS[n] for n in pick(_split(fault_names), FAULTS, "fault")]
        strategies = pick(_split(strategy), dict.fromkeys(FAULT_STRATEGIES), "strategy")
    except UnknownName as exc:
        raise click.UsageError(str(exc)) from None
    scenarios = {n: all_scenarios[n] for n in scenario_names}
    if expected_only:
        for s in scenarios.values():
            console.print(expected_table(s, fault_list, strategies))
        return
    missing = missing_binaries()
    if missing:
        raise click.ClickException(f"missing {', '.join(missing)}: run 'make setup'")
    shape = QUICK if quick else FULL
    started = time.monotonic()
    run, interrupted = run_faults(scenarios, fault_list, strategies, shape, output,
                                  say=lambda text: console.print(text, highlight=False))
    data = run.data
    for name in scenarios:
        console.print(grid(data, name))
    s = data["summary"]
    console.print(f"{s['matched']} of {s['judged']} judged cells as expected, {s['mismatched']} differ, "
                  f"{s['errors']} errors ({time.monotonic() - started:.0f}s). Results: {run.path}  "
                  f"table: {run.run_dir / 'faults.md'}")
    if interrupted:
        console.print("[yellow]interrupted: every process stopped; partial results kept[/]")
        sys.exit(130)
    sys.exit(0 if s["mismatched"] == 0 else 1)
