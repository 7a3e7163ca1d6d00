"""Keep a started stack up until Ctrl-C, or until one of its services exits (serve, ui)."""

from __future__ import annotations

import contextlib
import sys
import time

from .procs import Children, StackError, tail
from .progress import phase

POLL_S = 0.5


def hold(stack) -> None:
    """Return never: a Ctrl-C raises KeyboardInterrupt; a service that exits raises StackError with its log."""
    children: Children = stack.children
    phase("hold", stack.scenario.name)
    while True:
        time.sleep(POLL_S)
        dead = [c for c in children.children if not c.alive()]
        if dead:
            names = ", ".join(c.name for c in dead)
            raise StackError(f"{names} exited; last lines of {dead[0].log}:\n{tail(dead[0].log, 10)}")


@contextlib.contextmanager
def holding(console):
    """Around serve's and ui's hold: a service that fails is an error (exit 1); Ctrl-C says it is stopping."""
    try:
        yield
    except StackError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("stopping ...")
        raise
