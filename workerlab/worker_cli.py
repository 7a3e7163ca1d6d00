"""Load beyond one machine: `python -m workerlab worker --master HOST:PORT`, and what `run --workers N` means.

A run with `--workers N` makes its driver a locust master (loadtests/distributed.py): it listens at
`--master-bind` (on loopback unless the user names another address: protocol.DEFAULT_MASTER_BIND), waits for N
workers, runs every cell across them and judges one history per cell. `--local-workers` has the lab start the N
workers on this machine itself; otherwise each is `python -m workerlab worker --master HOST:PORT`, anywhere that
reaches the master.
"""

from __future__ import annotations

import subprocess
import sys

import click

from loadtests.protocol import DEFAULT_MASTER_BIND, BadAddress, parse_address

from . import interrupt, procs
from .paths import ROOT
from .procs import free_port

WORKER_STOP_GRACE_S = 15.0  # a stopped worker sends what it recorded and tells its master it leaves


def _address(text: str, option: str) -> str:
    try:
        parse_address(text)
    except BadAddress as exc:
        raise click.UsageError(f"{option}: {exc}") from None
    return text


def load_from(workers: int | None, master_bind: str | None, local_workers: bool) -> dict:
    """RunSettings' fields for `run --workers N [--master-bind HOST:PORT] [--local-workers]`."""
    if workers is None:
        if master_bind or local_workers:
            raise click.UsageError("--master-bind and --local-workers need --workers N")
        return {}
    if master_bind is None:  # loopback; a port of its own when the lab starts the workers itself
        master_bind = f"127.0.0.1:{free_port()}" if local_workers else DEFAULT_MASTER_BIND
    return {"workers": workers, "master_bind": _address(master_bind, "--master-bind"), "local_workers": local_workers}


def waiting_line(settings) -> str | None:
    """What a user must do while the run waits for its workers (None when the lab starts them)."""
    if not settings.workers or settings.local_workers:
        return None
    return (f"the load comes from {settings.workers} locust workers: start each, on any machine that reaches "
            f"{settings.master_bind}, with  python -m workerlab worker --master {settings.master_bind}")


@click.command()
@click.option("--master", "master", required=True, metavar="HOST:PORT",
              help="Where the run's master listens (its --master-bind).")
@click.option("--target-host", default=None, metavar="HOST",
              help="Send the load to HOST instead of the host in the master's URL (same scheme, port and path): "
                   "the deployment as this machine reaches it.")
@click.option("--connect-timeout", type=click.FloatRange(1, 3600), default=60.0, show_default=True,
              help="Seconds to wait for the master before giving up (exit 1).")
def worker(master, target_host, connect_timeout):
    """A locust worker for a run with --workers N: runs the cells its master sends and reports every request.

    Exits 0 when the master ends the run, 1 when no master answers within --connect-timeout or the master
    stops answering; Ctrl-C or SIGTERM stops its users, sends what they recorded to the master and exits.
    """
    _address(master, "--master")
    argv = [sys.executable, "-m", "loadtests.worker", "--master", master, "--connect-timeout", str(connect_timeout)]
    if target_host:
        argv += ["--target-host", target_host]
    proc = None
    with interrupt.shielded():
        proc = procs.spawn(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                           stop=lambda: procs.stop_session(proc, WORKER_STOP_GRACE_S))
    code = proc.wait()
    procs.untrack(proc)
    sys.exit(code)
