"""Interrupt the lab at random moments and report, per interruption, what it left behind.

Run by tests/test_interrupt.py as a process of its own, because it makes itself a *child subreaper*
(prctl PR_SET_CHILD_SUBREAPER): every process the lab starts - in sessions of their own, daemonized,
orphaned - is re-parented to this harness when its parent dies, instead of to init. So once the lab
has exited, whatever is still a descendant of this process is something the lab left behind: no
marker, no name matching, no guessing. The harness reaps everything itself (os.waitpid(-1)), so the
lab's own status comes from the kernel, not from Popen.

Each trial starts the command (`python -m workerlab ...`, or `make ...`) in a session of its own, as a
shell starts a terminal job, with LAB_PHASES=1; waits for its moment; sends the signal to the whole
process group, as a terminal's Ctrl-C does; optionally a second Ctrl-C while the lab is stopping; then
waits for the exit. The moment is either random (`--trials N`: a reference run first, then N trials,
half inside the first second, half spread over the rest of the reference run's life; never before the
lab's first line has run, `phase: start`) or a phase the lab reports (`--at-phase NAME`: one trial, the
signal goes when a `phase: NAME...` line arrives). One JSON line per trial on stdout.

    python tests/interrupt_harness.py --trials 30 --output DIR -- python -m workerlab run -s sync-x1 ...
    python tests/interrupt_harness.py --at-phase cell --output DIR -- make -s lab ARGS="--output {output}"
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PR_SET_CHILD_SUBREAPER = 36
EARLY_S = 1.0  # half of the interruptions land inside the lab's first second
LAB_TIMEOUT_S = 120.0
SETTLE_S = 0.3  # after the lab exits: let the kernel re-parent and reap what it left


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class Phases:
    """The lab's `phase: ...` lines on stderr, each with the moment it arrived; the rest of stderr kept.
    `first` is set at the first phase line; `target` when a line starts with `phase: <at_phase>`."""

    def __init__(self, stream, started: float, at_phase: str | None = None):
        self.started = started
        self.at_phase = at_phase
        self.seen: list[tuple[float, str]] = []
        self.other: list[str] = []
        self.first = threading.Event()
        self.target = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("phase: "):
                name = line[len("phase: "):]
                self.seen.append((round(time.monotonic() - self.started, 3), name))
                self.first.set()
                if self.at_phase and name.startswith(self.at_phase):
                    self.target.set()
            else:
                self.other.append(line)
        self.first.set()
        self.target.set()

    def names(self) -> list[str]:
        return [name for _, name in self.seen]


def wait_lab(pid: int, deadline: float) -> int | None:
    """Reap every child that ends (orphans the lab left come to us); return the lab's status as Popen
    would (exit code, or -signal), or None at the deadline."""
    status = None
    while time.monotonic() < deadline:
        try:
            reaped, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if reaped == 0:
            if status is not None:
                return status
            time.sleep(0.01)
            continue
        if reaped == pid:
            status = os.waitstatus_to_exitcode(raw)
    return status


def reap_all() -> None:
    while True:
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if reaped == 0:
            return


def leftovers() -> list[psutil.Process]:
    me = psutil.Process()
    alive = []
    for proc in me.children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


def describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:160]}"
    except psutil.Error:
        return f"{proc.pid} (gone)"


def listening(pids: set[int]) -> list[str]:
    return [f"{c.laddr.ip}:{c.laddr.port} pid {c.pid}" for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids]


RUN_FILES = ("mutants.json", "results.json", "faults.json", "bench.json")  # the first found is the run's


def run_folders(output: Path) -> list[dict]:
    """Every run folder the command made under `output`, with its run file's status (or why it is unreadable)."""
    found = []
    for folder in sorted(p for p in output.iterdir() if p.is_dir()):
        entry = {"folder": folder.name, "file": None, "results": None, "error": None}
        try:
            name = next((n for n in RUN_FILES if (folder / n).exists()), RUN_FILES[0])
            entry["file"] = name
            data = json.loads((folder / name).read_text())
            cells = next((data[k] for k in ("cells", "mutants") if isinstance(data.get(k), list)), [])
            entry["results"] = {"status": data["status"], "cells": len(cells),
                                "planned": (data.get("summary") or {}).get("planned")}
        except (OSError, ValueError, KeyError) as exc:
            entry["error"] = repr(exc)
        found.append(entry)
    return found


def trial(number: int, command: list[str], output: Path, delay: float | None, sig: int, twice: bool,
          at_phase: str | None = None) -> dict:
    folder = output / f"t{number:02d}"
    folder.mkdir(parents=True)
    argv = [arg.replace("{output}", str(folder)) for arg in command]
    env = {**os.environ, "LAB_PHASES": "1", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with open(folder / "stdout.txt", "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    phases = Phases(proc.stderr, started, at_phase)
    sent_at = None
    if at_phase is not None:
        phases.target.wait(timeout=LAB_TIMEOUT_S)
        if delay:
            time.sleep(delay)
        sent_at = round(time.monotonic() - started, 3)
    elif delay is not None:
        phases.first.wait(timeout=30)  # the lab's first line: before it the interpreter's defaults apply
        pause = started + delay - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        sent_at = round(time.monotonic() - started, 3)
    if sent_at is not None:
        try:
            os.killpg(proc.pid, sig)
            if twice:  # a second Ctrl-C while the lab is stopping must not cut its clean-up short
                time.sleep(random.uniform(0.05, 0.4))
                os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass  # it had already ended
    status = wait_lab(proc.pid, time.monotonic() + LAB_TIMEOUT_S)
    timed_out = status is None
    if timed_out:  # the lab did not end: report it, then end it so the next trial starts clean
        os.killpg(proc.pid, signal.SIGKILL)
        status = wait_lab(proc.pid, time.monotonic() + 10)
    phases.thread.join(timeout=10)
    time.sleep(SETTLE_S)
    reap_all()
    left = leftovers()
    left_pids = {p.pid for p in left}
    result = {
        "trial": number, "signal": signal.Signals(sig).name, "signum": int(sig), "twice": twice, "delay": delay,
        "at_phase": at_phase, "sent_at": sent_at,
        "status": status, "timed_out": timed_out, "seconds": round(time.monotonic() - started, 3),
        "phases": phases.seen, "stderr": phases.other[-30:],
        "leftovers": [describe(p) for p in left], "listening": listening(left_pids),
        "runs": run_folders(folder),
    }
    for p in left:  # clean up after a failed trial so the others are judged on their own
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.kill()
        except psutil.Error:
            pass
    time.sleep(0.1)
    reap_all()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30, help="random moments (after a reference run)")
    parser.add_argument("--at-phase", default=None, help="one trial: signal when this phase begins")
    parser.add_argument("--delay", type=float, default=0.0, help="with --at-phase: seconds after the phase line")
    parser.add_argument("--signal", default="SIGINT", choices=("SIGINT", "SIGTERM"))
    parser.add_argument("--twice", action="store_true", help="with --at-phase: a second Ctrl-C while stopping")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    opts = parser.parse_args()
    command = [a for a in opts.command if a != "--"]
    become_subreaper()
    # A shell starts background jobs with SIGINT ignored; what we start must get it as a terminal job does.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if opts.at_phase is not None:
        print(json.dumps(trial(1, command, opts.output, opts.delay, signal.Signals[opts.signal], opts.twice,
                               opts.at_phase)), flush=True)
        return 0
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    random.seed(seed)
    reference = trial(0, command, opts.output, None, signal.SIGINT, False)  # its whole life, uninterrupted
    reference["seed"] = seed
    print(json.dumps(reference), flush=True)
    life = max(reference["seconds"], EARLY_S + 0.5)
    for number in range(1, opts.trials + 1):
        early = number % 2 == 1
        delay = rng.uniform(0.0, EARLY_S) if early else rng.uniform(EARLY_S, life)
        sig = signal.SIGTERM if number % 3 == 0 else signal.SIGINT
        twice = number % 4 == 0
        print(json.dumps(trial(number, command, opts.output, round(delay, 3), sig, twice)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
