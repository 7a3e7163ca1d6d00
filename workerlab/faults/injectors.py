"""Injectors: what a fault does, on a thread of the runner, and when it did it.

Each ``inject_*`` takes an :class:`Injection`, calls ``inj.mark(...)`` at the moment of the fault
(the time the checkers judge against) and notes what it did in ``inj.info`` for faults.json.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ..stacks.native import NativeStack


@dataclass
class Injection:
    """What the injector did: ``at`` is the monotonic time of the fault; ``info`` goes to faults.json."""

    stack: NativeStack
    t0: float
    stop: threading.Event
    hold: Path | None = None  # while this file exists the load goes on (Fault.holds_load); run.py removes it
    at: float | None = None
    info: dict = field(default_factory=dict)
    error: str | None = None
    store_unused: bool = False  # the strategy keeps nothing in the store the fault hits (Fault.used_by)

    def mark(self, **info) -> None:
        self.at = time.monotonic()
        self.info["at_s"] = round(self.at - self.t0, 4)
        self.info.update(info)


def _wait_workers(stack: NativeStack, *, gone: set[int] = frozenset(), timeout: float = 15.0,
                  instance: int = 0) -> float | None:
    """Seconds until ``instance`` (instance 1 by default) has its full set of workers again, none of them in
    ``gone``."""
    started = time.monotonic()
    want = stack.scenario.workers
    while time.monotonic() - started < timeout:
        pids = set(stack.app_worker_pids(instance))
        if len(pids) >= want and not pids & gone:
            return round(time.monotonic() - started, 3)
        time.sleep(0.01)
    return None


def _note_new_workers(inj: Injection, before: set[int], instance: int = 0) -> None:
    """The evidence of a worker fault: the workers after it, and which of them are new."""
    after = inj.stack.app_worker_pids(instance)
    inj.info["worker_pids_after"] = after
    inj.info["new_worker_pids"] = sorted(set(after) - before)


def _held_request(inj: Injection, point: str) -> int | None:
    """Arm the app's fault point ``point`` (labapp/faultpoints.py) and wait until a request holds there: the pid
    of the worker holding it, or None (with ``inj.error``) if the load ended first."""
    base = Path(inj.stack.app_extra_env["LAB_FAULT_POINTS"]) / point
    for leftover in (base.with_suffix(".pid"), base.with_suffix(".held")):
        leftover.unlink(missing_ok=True)
    base.with_suffix(".arm").touch()
    pid_file = base.with_suffix(".pid")
    while not pid_file.exists():
        if inj.stop.is_set():
            base.with_suffix(".arm").unlink(missing_ok=True)
            inj.error = "no request reached the fault point before the load ended"
            return None
        time.sleep(0.002)
    return int(pid_file.read_text())


def inject_worker_kill(inj: Injection) -> None:
    """kill -9 of the worker holding a request whose increment is written but not yet answered: the crash of a
    worker in the middle of a request, on purpose rather than by luck - what happens to that request (an error,
    or a resend that counts it twice) is the same on every run."""
    victim = _held_request(inj, "incr-answering")
    if victim is None:
        return
    instance = _instance_of(inj.stack, victim)
    pids = inj.stack.app_worker_pids(instance)
    inj.mark(pid=victim, instance=instance + 1, workers_before=len(pids), held_request=True)
    os.kill(victim, signal.SIGKILL)
    inj.info["respawn_s"] = _wait_workers(inj.stack, gone={victim}, instance=instance)
    _note_new_workers(inj, set(pids), instance)
    inj.info["replacement_served_s"] = _wait_served(inj, inj.info["new_worker_pids"])


def _wait_served(inj: Injection, pids: list[int], timeout: float = 20.0) -> float | None:
    """Seconds from the fault until one of ``pids`` answered an increment (labapp/faultpoints.served), or None.

    The fault runner holds the load until the injector returns (Fault.holds_load): a killed worker's replacement
    boots (on a loaded machine, seconds) and then competes with the others for connections; its first answers
    are what shows it counting from zero."""
    folder = Path(inj.stack.app_extra_env["LAB_FAULT_POINTS"])
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline and not inj.stop.is_set():
        if any((folder / f"served.{pid}").exists() for pid in pids):
            return round(time.monotonic() - inj.at, 3)
        time.sleep(0.005)
    return None


def _instance_of(stack: NativeStack, pid: int) -> int:
    """The index of the app instance whose worker ``pid`` is (0 if none says so)."""
    return next((i for i in range(len(stack.app_ports)) if pid in stack.app_worker_pids(i)), 0)


def inject_graceful_reload(inj: Injection) -> None:
    old = set(inj.stack.app_worker_pids(0))
    master = inj.stack.app_master_pid(0)
    inj.mark(pid=master, workers_before=len(old))
    os.kill(master, signal.SIGHUP)
    inj.info["all_workers_replaced_s"] = _wait_workers(inj.stack, gone=old)
    _note_new_workers(inj, old)


def server_id(stack: NativeStack, name: str) -> str | None:
    """Which run of sidecar ``name`` answers now: redis's run_id, memcached's pid; None if it does not answer."""
    try:
        if name == "redis":
            import redis

            client = redis.Redis(port=stack.ports["redis"], socket_timeout=2, socket_connect_timeout=2)
            try:
                return client.info("server")["run_id"]
            finally:
                client.close()
        from pymemcache.client.base import Client

        client = Client(("127.0.0.1", stack.ports["memcached"]), connect_timeout=2, timeout=2)
        try:
            return str(int(client.stats()[b"pid"]))
        finally:
            client.close()
    except Exception:  # a server that does not answer has no identity to prove anything with
        return None


def _loaded(pid: int, library: str) -> bool:
    """Is a shared object named ``library`` mapped into process ``pid``?"""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return any(re.search(rf"/{re.escape(library)}$", line.rstrip()) for line in maps)
    except OSError:
        return False


def inject_master_restart(inj: Injection) -> None:
    """SIGTERM to app instance 1's process group (a deploy, a container restart): the gunicorn master, its
    workers and its dirty arbiter stop gracefully; then the app starts again on the same port."""
    inj.mark(pid=inj.stack.app_master_pid(0), signal="SIGTERM")
    inj.info["restart_s"] = round(inj.stack.restart("app-i1", signal.SIGTERM), 3)
    inj.info["new_master_pid"] = inj.stack.app_master_pid(0)


def unsynced_aof_bytes(stack: NativeStack) -> int | None:
    """What redis has appended to its AOF and the host-crash shim still holds (it writes them for real only at
    redis's fsync): redis's own count of the increment files (``aof_current_size`` less ``aof_base_size``), less
    the size on disk of the increment files the manifest names (the manifest and the base are not appended to)."""
    import redis

    client = redis.Redis(port=stack.ports["redis"], socket_timeout=2, socket_connect_timeout=2)
    try:
        info = client.info("persistence")
        appended = int(info["aof_current_size"]) - int(info["aof_base_size"])
    except Exception:  # not answering: no tail to wait for
        return None
    finally:
        client.close()
    folder = stack.run_dir / "redis" / "appendonlydir"
    manifests = list(folder.glob("*.manifest"))
    if not manifests:
        return None
    # "file appendonly.aof.1.incr.aof seq 1 type i": the increment files in use
    lines = [line.split() for line in manifests[0].read_text().splitlines()]
    increments = [words[1] for words in lines if words[-2:] == ["type", "i"]]
    return appended - sum((folder / name).stat().st_size for name in increments if (folder / name).is_file())


UNSYNCED_WAIT_S = 2.0  # everysec fsyncs about once a second: a tail shows up within one period of load


def _wait_for_unsynced_tail(inj: Injection) -> int | None:
    """Under appendfsync everysec, hold the crash until acknowledged writes wait for their fsync. At a fixed
    rate the load comes in bursts, and a crash in the quiet just after an fsync loses nothing (seen once in
    CI: nothing lost where a host crash must lose): the crash would be luck's, not the fault's."""
    deadline = time.monotonic() + UNSYNCED_WAIT_S
    while True:
        tail = unsynced_aof_bytes(inj.stack)
        if tail is None or tail > 0 or time.monotonic() > deadline or inj.stop.is_set():
            return tail
        time.sleep(0.002)


def inject_restart(name: str) -> Callable[[Injection], None]:
    """The injector that kills -9 and restarts the stack's sidecar ``name`` (redis, memcached)."""

    def inject(inj: Injection) -> None:
        before = server_id(inj.stack, name)
        pid = inj.stack.child(name).proc.pid
        shim = inj.stack.redis_env.get("LD_PRELOAD") if name == "redis" and inj.stack.redis_env else None
        evidence = {}
        if shim:
            evidence["shim_loaded"] = _loaded(pid, os.path.basename(shim))
            if inj.store_unused:  # the strategy writes nothing to redis: no tail will come, the crash is the test
                evidence["store_unused"] = True
            elif inj.stack.redis_persistence == "aof-everysec":
                evidence["unsynced_aof_bytes_at_kill"] = _wait_for_unsynced_tail(inj)
            else:  # appendfsync always: redis fsyncs before it answers, so 0 - the measurement's own check
                evidence["unsynced_aof_bytes_at_kill"] = unsynced_aof_bytes(inj.stack)
        inj.mark(pid=pid, signal="SIGKILL", server_id_before=before, **evidence)
        inj.info["restart_s"] = round(inj.stack.restart(name, signal.SIGKILL), 3)
        inj.info["server_id_after"] = server_id(inj.stack, name)

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
    pid = _held_request(inj, "sql-in-transaction")
    if pid is None:
        return
    instance = _instance_of(inj.stack, pid)
    db = inj.stack.data_dir(instance) / "counters.sqlite3"  # the SQLite file of the host holding the request
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
    inj.info["respawn_s"] = _wait_workers(inj.stack, gone={pid}, instance=instance)
    _note_new_workers(inj, {pid}, instance)


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


def _nginx_workers(stack: NativeStack) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(stack.child("nginx").proc.pid).children()}
    except psutil.NoSuchProcess:
        return set()


def inject_nginx_reload(inj: Injection, timeout: float = 10.0) -> None:
    old = _nginx_workers(inj.stack)
    inj.mark(pid=inj.stack.reload_nginx(), signal="SIGHUP", nginx_workers_before=len(old))
    deadline = time.monotonic() + timeout
    new: set[int] = set()
    while not new and time.monotonic() < deadline:  # the master forks the new workers right after the HUP
        new = _nginx_workers(inj.stack) - old
        time.sleep(0.01)
    inj.info["new_nginx_worker_pids"] = sorted(new)


def inject_nothing(inj: Injection) -> None:
    """A fault that is a setting for the whole run (gunicorn max_requests): it starts with the load."""
    inj.at = inj.t0
    inj.info["at_s"] = 0.0
    inj.info["workers_before"] = inj.stack.scenario.workers
    workers = set()
    while not inj.stop.wait(0.05):  # note every worker pid seen, to count the recycles
        workers |= set(inj.stack.app_worker_pids(0))
    inj.info["worker_pids_seen"] = len(workers)
