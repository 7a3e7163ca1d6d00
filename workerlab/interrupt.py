"""The lab's one signal policy, for every command: Ctrl-C (SIGINT) or SIGTERM at any moment stops
every process the lab started and ends the lab with 128 + the signal (130 or 143).

- `install()` is the first thing `python -m workerlab` does, before any slow import and before the
  first child is spawned (a signal that arrives even earlier, while the interpreter itself starts,
  kills it the default way: the shell shows the same 130 or 143, and nothing was started yet).
- The first signal raises `Interrupted` wherever the main thread is, so whatever runs unwinds through
  its `finally` and `with` blocks - unless it is inside `shielded()` (stopping processes, writing a
  results file): there the signal is only recorded, and raised when the outermost shield ends.
- `Interrupted` is raised once per process. Every later signal is only recorded: a second Ctrl-C never
  cuts the clean-up short. No handler is ever swapped for SIG_IGN and no signal is masked: a signal
  is never lost, only held back for the length of a shield.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The lab was asked to stop by `signum` (a KeyboardInterrupt, so code that handles Ctrl-C handles it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []  # every signal, in order of arrival
_raised = False  # Interrupted has been raised (it is raised at most once)
_depth = 0  # nesting of shielded() blocks in the main thread
_exit_hooks: list[Callable[[], None]] = []


def install() -> None:
    """Take over SIGINT and SIGTERM (also when the lab was started with SIGINT ignored, as a shell does
    with background jobs: the lab still stops cleanly on it)."""
    for sig in SIGNALS:
        signal.signal(sig, _on_signal)


def _on_signal(signum: int, frame) -> None:
    _received.append(signum)
    _deliver()


def _deliver() -> None:
    global _raised
    if _received and not _raised and _depth == 0:
        _raised = True
        raise Interrupted(_received[0])


def stop_raising() -> None:
    """From here on signals are only recorded (the lab's last steps: stopping, finishing files, exiting)."""
    global _raised
    _raised = True


def announce(where: str) -> None:
    """Say on stderr that a signal ended the lab, and where it was."""
    if _received:
        print(f"interrupted by {signal.Signals(_received[0]).name} during '{where}': every process the lab "
              "started is stopped; partial results are kept", file=sys.stderr)


def received() -> int | None:
    """The first signal received, if any."""
    return _received[0] if _received else None


def exit_status(default: int) -> int:
    """What the lab exits with: 128 + the first signal when it was interrupted, else `default`."""
    return 128 + _received[0] if _received else default


def on_exit(hook: Callable[[], None]) -> None:
    """Run `hook` when the lab ends, however it ends (hooks run in the order they were given)."""
    _exit_hooks.append(hook)


def run_exit_hooks() -> None:
    """The lab's last step: every hook runs to its end, whatever signals arrive meanwhile."""
    with shielded(deliver=False):
        while _exit_hooks:
            hook = _exit_hooks.pop(0)
            try:
                hook()
            except Exception as exc:  # noqa: BLE001 - the other hooks still run
                print(f"worker-lab: while finishing: {exc!r}", file=sys.stderr)


def exit_now(status: int) -> None:
    """End the process with `status`, now: output flushed, no interpreter finalisation - during which
    Python gives SIGINT back its default action, so a late second Ctrl-C would end the lab by the signal
    instead of with the status it has decided. Everything the lab started is stopped by then."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def reset() -> None:
    """Forget what was received (tests that drive the policy in-process)."""
    global _raised, _depth
    _received.clear()
    _raised = False
    _depth = 0


class shielded:
    """`with shielded():` the block runs to its end; a signal that arrives meanwhile is raised when the
    outermost shield ends (`deliver=False`: left for a later shield or for `exit_status`).

    Only the main thread's blocks count: Python runs signal handlers in the main thread alone.
    """

    def __init__(self, deliver: bool = True):
        self.deliver = deliver
        self.counted = False

    def __enter__(self) -> shielded:
        global _depth
        if threading.current_thread() is threading.main_thread():
            _depth += 1
            self.counted = True
        return self

    def __exit__(self, *exc) -> bool:
        global _depth
        if self.counted:
            _depth -= 1
            if self.deliver:
                _deliver()
        return False
