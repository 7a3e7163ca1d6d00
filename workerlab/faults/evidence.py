"""What proves a fault happened: each fault declares one of these rules (workerlab/faults/table.py), a pure
function over what its injector recorded (``Injection.info``) that gives None when the record proves the fault,
else why it does not. A fault cell without its proof is an error, never a verdict: a survival of a fault
that never happened would be a verdict that cannot come out red.
"""

from __future__ import annotations

from collections.abc import Callable

Evidence = Callable[[dict], str | None]


def new_worker(info: dict) -> str | None:
    """kill -9 of a worker: it is gone and the master forked a replacement with another pid."""
    if not info.get("new_worker_pids"):
        return "no new worker process appeared after the kill"
    if info.get("pid") in info.get("worker_pids_after", ()):
        return f"the killed worker {info.get('pid')} is still serving"
    return None


def killed_holding_request(info: dict) -> str | None:
    """kill -9 of the worker that held a request at the app's fault point, and its replacement."""
    if info.get("held_request") is not True:
        return "no request was held in the worker when it was killed"
    return new_worker(info)


def every_worker_replaced(info: dict) -> str | None:
    """HUP: every worker that served before it is gone and as many new ones serve."""
    if info.get("all_workers_replaced_s") is None:
        return "the workers from before the reload were not all replaced"
    return None


def master_restarted(info: dict) -> str | None:
    """A deploy's restart: another gunicorn master serves after it."""
    if info.get("new_master_pid") is None:
        return "no gunicorn master answered after the restart"
    if info.get("new_master_pid") == info.get("pid"):
        return f"the same master {info.get('pid')} serves after the restart"
    return None


def workers_recycled(info: dict) -> str | None:
    """max_requests: more worker processes served over the run than the scenario runs at once."""
    seen, at_once = info.get("worker_pids_seen", 0), info.get("workers_before", 0)
    if not at_once or seen <= at_once:
        return f"{seen} worker process(es) seen for {at_once} at once: none was recycled"
    return None


def server_restarted(info: dict) -> str | None:
    """A sidecar restart: the server answering after it is another run of it (redis run_id, memcached pid)."""
    before, after = info.get("server_id_before"), info.get("server_id_after")
    if before is None or after is None:
        return f"the server's identity was not read before and after the restart ({before!r} -> {after!r})"
    if before == after:
        return f"the same server run answered before and after ({before})"
    return None


def host_crash(info: dict) -> str | None:
    """An emulated host crash: a restart, of a redis that ran under the unsynced-AOF shim when it was killed."""
    if not info.get("shim_loaded"):
        return "redis did not have the host-crash shim loaded when it was killed"
    return server_restarted(info)


def host_crash_with_tail(info: dict) -> str | None:
    """An emulated host crash under appendfsync everysec that had something to lose: acknowledged writes the
    shim still held, waiting for their fsync (a crash in the quiet just after an fsync is no test of it). Where
    the strategy writes nothing to redis (a control) no tail can come: there the crash itself is the proof."""
    if not info.get("store_unused") and (info.get("unsynced_aof_bytes_at_kill") or 0) <= 0:
        return "nothing waited for its fsync when redis was killed"
    return host_crash(info)


def evictions(info: dict) -> str | None:
    """LRU eviction: memcached says it evicted something while the load ran."""
    if not info.get("evictions"):
        return "memcached evicted nothing"
    return None


def killed_in_transaction(info: dict) -> str | None:
    """A worker killed inside a write transaction: the SQLite write lock was held at the kill, then released."""
    if info.get("write_lock_held_at_kill") is not True:
        return "the SQLite write lock was not held when the worker was killed"
    if info.get("write_lock_released_s") is None:
        return "the write lock was never released after the kill"
    return new_worker(info)


def new_nginx_workers(info: dict) -> str | None:
    """nginx HUP: new worker processes took over from the old ones."""
    if not info.get("new_nginx_worker_pids"):
        return "no new nginx worker appeared after the HUP"
    return None
