"""Child processes the lab starts, and the guarantee that it stops them all.

Each child runs in its own session (process group), so a gunicorn master with its
workers, or a dev server with its forks, is stopped as one: SIGTERM to the group,
then SIGKILL after a grace period. A terminal's Ctrl-C reaches only the lab, which
decides what stops and in which order.

Every child is tracked from the moment it is forked until it is stopped: spawning and
stopping run shielded from interruption (`interrupt.shielded`), and `stop_leftovers()`
- the last thing the lab does before it exits - stops whatever is still tracked.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import interrupt

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
    popen: dict = field(default_factory=dict)  # more Popen arguments: whom it runs as (user, group, extra_groups)
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self.proc is not None:  # started again (a fault's restart): the old process is gone
            _untrack(self.proc.pid)
        with interrupt.shielded(), open(self.log, "ab") as log:  # a signal waits until self.proc is set
            self.proc = spawn(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env or None, cwd=self.cwd,
                              stop=self.stop, **self.popen)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self, what: str) -> StackError:
        code = self.proc.poll() if self.proc else None
        state = f"exited with {code}" if code is not None else "still running"
        return StackError(f"{self.name} {what} ({state}); last lines of {self.log}:\n{tail(self.log)}")

    def stop(self) -> None:
        """SIGTERM to the child's group, SIGKILL after GRACE_S; never cut short by a signal."""
        if self.proc is None:
            return
        with interrupt.shielded():
            pgid = self.proc.pid
            _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + GRACE_S
            while time.monotonic() < deadline:
                if self.proc.poll() is not None and not _group_alive(pgid):
                    break
                time.sleep(0.05)
            else:
                _signal_group(pgid, signal.SIGKILL)
                try:
                    self.proc.wait(timeout=GRACE_S)
                except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
                    pass
            _untrack(pgid)


# pid of a started child -> (its Popen, how to stop it); filled while spawning, emptied when it is stopped.
_live: dict[int, tuple[subprocess.Popen, Callable[[], None]]] = {}


def spawn(argv: list[str], *, stop: Callable[[], None] | None = None, **popen) -> subprocess.Popen:
    """Start argv in a session of its own and track it until it is stopped (by `stop`, default SIGKILL of
    its session). The fork and the tracking happen as one: a signal meanwhile is raised right after -
    before the caller holds the Popen, unless the caller is inside a shield of its own (do that where the
    Popen is kept: `with interrupt.shielded(): self.proc = spawn(...)`).

    No preexec_fn and no blocked signal mask: the child starts with the signal dispositions exec gives it.
    """
    with interrupt.shielded():
        proc = subprocess.Popen(argv, stdin=popen.pop("stdin", subprocess.DEVNULL), start_new_session=True, **popen)
        _live[proc.pid] = (proc, stop or (lambda: kill_session(proc)))
    return proc


def run(argv: list[str], *, timeout: float, grace: float = 0.0, **popen) -> subprocess.CompletedProcess:
    """subprocess.run with capture, in a session of its own: on a timeout or an interrupt the whole
    session is stopped before the exception goes on - SIGKILL, or SIGTERM and up to `grace` seconds
    first (for a child that must stop what it started itself: a nested lab, docker compose)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    proc = spawn(argv, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        stop_session(proc, grace)
        raise
    untrack(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def stop_session(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the session, SIGKILL after `grace` seconds (at once when 0); reaped, untracked."""
    with interrupt.shielded():
        if grace > 0 and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        kill_session(proc)


def untrack(proc: subprocess.Popen) -> None:
    """The caller reaped `proc` itself (os.wait4): it no longer needs stopping."""
    _untrack(proc.pid)


def _untrack(pid: int) -> None:
    _live.pop(pid, None)


interrupt.on_exit(lambda: stop_leftovers())  # first of the exit hooks: processes before result files


def stop_leftovers() -> list[int]:
    """Stop every child still tracked, newest first: the lab's last guarantee before it exits.
    Returns the pids it had to stop (none when every part of the lab cleaned up after itself)."""
    stopped = []
    with interrupt.shielded(deliver=False):
        for pid, (proc, stop) in reversed(list(_live.items())):
            stopped.append(pid)
            try:
                stop()
            except Exception:  # noqa: BLE001 - the session is killed below all the same
                pass
            if proc.poll() is None or _group_alive(pid):  # whatever `stop` missed (a caller never saw proc)
                _signal_group(pid, signal.SIGKILL)
                proc.wait()
            _untrack(pid)
    return stopped


def kill_session(proc: subprocess.Popen | None) -> None:
    """SIGKILL a child started with `spawn`, with everything it forked, and reap it."""
    if proc is None:
        return
    with interrupt.shielded():
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        _untrack(proc.pid)


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
            with interrupt.shielded():
                self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        with interrupt.shielded():
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
        with interrupt.shielded():
            while self.children:
                self.children[-1].stop()
                self.children.pop()
