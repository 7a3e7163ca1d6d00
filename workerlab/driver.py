"""The runner's side of the driver process: one `DriverSession` per plan, for the matrix, the faults
and the bench alike.

It writes the plan, starts `python -m loadtests.driver` in a session of its own (tracked by procs, so a
Ctrl-C at any moment stops it), reads its event lines on a thread, keeps the cells not yet done, lets
the driver go on (`go()`) where the plan makes it wait, and stops it however the run ends.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from loadtests.protocol import GO, Plan, parse_event

from . import interrupt, procs
from .paths import ROOT
from .procs import StackError

EXIT = {"event": "exit"}  # put on the queue when the driver's stdout ends
POLL_S = 0.5  # how often a wait looks up from the queue (signals are handled between looks)
STOP_GRACE_S = 10.0  # a driver told to finish (stdin closed) gets this long before it is killed


class DriverSession:
    """`with DriverSession(plan, folder) as driver:` ... `for event in driver.events(): ...`"""

    def __init__(self, plan: Plan, folder: Path):
        self.plan = plan
        self.folder = folder
        self.pending = {c.id: c for c in plan.cells}
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.queue: queue.Queue = queue.Queue()
        self.log_path = folder / "logs" / "driver.log"
        self.workers: list[subprocess.Popen] = []  # plan.local_workers: the workers this session started

    def __enter__(self) -> DriverSession:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        plan_path = self.plan.write(self.folder / "plan.json")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        with interrupt.shielded(), open(self.log_path, "ab") as log:  # a signal waits until self.proc is set
            self.proc = procs.spawn([sys.executable, "-m", "loadtests.driver", str(plan_path)], cwd=ROOT,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        if self.plan.local_workers:
            self.workers = [self._start_worker(i) for i in range(self.plan.workers)]

    def _start_worker(self, index: int) -> subprocess.Popen:
        """One of the plan's locust workers, on this machine (`--local-workers`), until its master ends."""
        argv = [sys.executable, "-m", "loadtests.worker", "--master", self.plan.master_bind,
                "--connect-timeout", str(self.plan.workers_wait_s)]
        with interrupt.shielded(), open(self.log_path.with_name(f"worker-{index}.log"), "ab") as log:
            proc = procs.spawn(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               stop=lambda: procs.stop_session(proc, STOP_GRACE_S))
        return proc

    def _read(self, stream) -> None:
        for line in stream:
            event = parse_event(line)
            if event is not None and event.get("cell") in self.pending:
                self.queue.put(event)
        self.queue.put(EXIT)

    def _next(self, timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if wait <= 0:
                raise queue.Empty
            try:
                event = self.queue.get(timeout=wait)
            except queue.Empty:
                continue
            if event["event"] in ("cell-done", "cell-error"):
                self.pending.pop(event["cell"], None)
            return event

    def events(self) -> Iterator[dict]:
        """Every event of the plan's cells, until the driver's output ends."""
        while True:
            event = self._next()
            if event is EXIT:
                return
            yield event

    def wait_for(self, kind: str, cell: str, timeout: float) -> dict:
        """The next `kind` event of `cell` (or its cell-error); StackError after `timeout` or if the driver ends."""
        try:
            while True:
                event = self._next(timeout)
                if event is EXIT:
                    raise StackError(f"driver exited (code {self.proc.wait()}) before '{kind}' for {cell}; "
                                     f"see {self.log_path}")
                if event.get("cell") == cell and event["event"] in (kind, "cell-error"):
                    return event
        except queue.Empty:
            raise StackError(f"driver: no '{kind}' for {cell} within {timeout:.0f}s") from None

    def go(self) -> None:
        """Let a waiting driver go on (plan.step: the next cell; plan.hold_after_load: the final reads)."""
        try:
            self.proc.stdin.write(GO)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it ended; its output says how

    def stop(self, grace: float = 0.0) -> None:
        """End the driver: with `grace`, close its stdin and give it that long to finish; then kill its session."""
        if self.proc is None:
            return
        with interrupt.shielded():
            if grace > 0:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
                try:
                    self.proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass
            procs.kill_session(self.proc)
            for worker in self.workers:  # told to quit by the driver as it ended; stopped if it did not
                procs.stop_session(worker, STOP_GRACE_S)
