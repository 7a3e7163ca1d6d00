"""Child processes the lab starts, and the guarantee that it stops them all.

Each child runs in its own session (process group), so a gunicorn master with its
workers, or a dev server with its forks, is stopped as one: SIGTERM to the group,
then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

GRACE_S = 5.0


class StackError(RuntimeError):
    """A service failed to start or answer; the message says which and shows its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # A Ctrl-C that lands inside Popen (after the fork, before we hold the pid) would orphan
        # the child: hold SIGINT/SIGTERM until self.proc is set; they are delivered right after.
        with open(self.log, "ab") as log, signals_held():
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env or None,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=unblock_held_signals,  # the held mask must not outlive exec in the child
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self, what: str) -> StackError:
        code = self.proc.poll() if self.proc else None
        state = f"exited with {code}" if code is not None else "still running"
        return StackError(f"{self.name} {what} ({state}); last lines of {self.log}:\n{tail(self.log)}")

    def stop(self) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not _group_alive(pgid):
                return
            time.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            pass


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM for the block; they are delivered when it ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblock_held_signals() -> None:
    """In the child, between fork and exec: a blocked mask survives exec, and a gunicorn master or
    worker, redis or memcached with SIGTERM blocked never stops gracefully (HUP's retired workers
    never exit; every stop waits for SIGKILL)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def kill_session(proc: subprocess.Popen | None) -> None:
    """SIGKILL a child started with start_new_session, with everything it forked, and reap it."""
    if proc is not None and proc.poll() is None:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True


class ManagedStack:
    """`with stack:` starts it, and stops whatever did start when start-up fails or the block ends."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Children:
    """Started children, stopped in reverse order; stopping survives a second Ctrl-C."""

    def __init__(self):
        self.children: list[Child] = []

    def start(self, child: Child) -> Child:
        self.children.append(child)
        child.start()
        return child

    def stop_all(self) -> None:
        while self.children:
            child = self.children[-1]
            try:
                child.stop()
            except KeyboardInterrupt:
                _signal_group(child.proc.pid, signal.SIGKILL) if child.proc else None
            self.children.pop()
