"""Runtime models, read from compose/scenarios/*.env - the one declaration both engines use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .paths import SCENARIO_DIR


class UnknownName(ValueError):
    """An unknown scenario or strategy; the message lists the valid names."""


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    server: str  # gunicorn | flask-dev
    worker_class: str
    workers: int = 1
    threads: int = 1
    instances: int = 1
    dev_threaded: bool = False
    dev_processes: int = 1
    cell_requests_max: int | None = None  # a slow runtime model may cap each cell's budget
    preload: bool = False  # gunicorn --preload: the master imports the app, then forks the workers
    dirty_workers: int = 0  # gunicorn's dirty arbiter (and its stash) runs when > 0
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_file(cls, path: Path) -> Scenario:
        env = read_env_file(path)
        try:
            return cls(
                name=env.get("SCENARIO", path.stem),
                description=env.get("SCENARIO_DESCRIPTION", ""),
                server=env["SERVER"],
                worker_class=env["WORKER_CLASS"],
                workers=int(env.get("WORKERS", 1)),
                threads=int(env.get("THREADS", 1)),
                instances=int(env.get("INSTANCES", 1)),
                dev_threaded=env.get("DEV_THREADED", "0") == "1",
                dev_processes=int(env.get("DEV_PROCESSES", 1)),
                cell_requests_max=int(env["CELL_REQUESTS_MAX"]) if env.get("CELL_REQUESTS_MAX") else None,
                preload=env.get("PRELOAD", "0") == "1",
                dirty_workers=int(env.get("DIRTY_WORKERS", 0)),
                env=tuple(sorted(env.items())),
            )
        except KeyError as exc:
            raise ValueError(f"{path}: missing {exc.args[0]}") from exc

    # Traits the expected verdicts are derived from.
    @property
    def forks_per_request(self) -> bool:
        return self.server == "flask-dev" and self.dev_processes > 1

    @property
    def processes(self) -> int:
        """Long-lived processes that each hold their own in-process state."""
        if self.server == "flask-dev":
            return 1
        return self.workers * self.instances

    @property
    def in_process_concurrency(self) -> str:
        """What can interleave inside one process: none | threads | greenlets | greenlets-unpatched."""
        if self.server == "flask-dev":
            return "threads" if self.dev_threaded else "none"
        if self.worker_class == "gthread" and self.threads > 1:
            return "threads"
        if self.worker_class == "gevent":
            return "greenlets"
        if self.worker_class == "gevent-unpatched":
            return "greenlets-unpatched"
        return "none"

    @property
    def imported_before_patch(self) -> bool:
        """gevent patches in each worker after the fork, so under --preload the app module (and everything
        it imports) was imported first: a threading.local or Lock it made then is the real one."""
        return self.worker_class == "gevent" and self.preload

    @property
    def app_made_before_fork(self) -> bool:
        """Is the app created once and then forked into the processes that serve (gunicorn --preload, or the
        dev server's fork per request)? Whatever it made at import is then copied into every one of them."""
        return (self.server == "gunicorn" and self.preload) or self.forks_per_request

    @property
    def has_stash(self) -> bool:
        """Does gunicorn's dirty arbiter (gunicorn.dirty.stash) run beside the workers?"""
        return self.server == "gunicorn" and self.dirty_workers > 0

    @property
    def concurrent(self) -> bool:
        """Can two requests be in flight at once anywhere in the stack?"""
        return self.in_process_concurrency != "none" or self.processes > 1 or self.forks_per_request


def load_scenarios(directory: Path = SCENARIO_DIR) -> dict[str, Scenario]:
    scenarios = [Scenario.from_file(path) for path in sorted(directory.glob("*.env"))]
    order = ["dev-single", "dev-threaded", "dev-processes", "sync-x1", "sync-x4", "sync-x4-preload", "gthread-2x8",
             "gthread-2x8-preload", "gevent-x1", "gevent-x4"]
    scenarios.sort(key=lambda s: (order.index(s.name) if s.name in order else len(order), s.name))
    return {s.name: s for s in scenarios}


def pick(names: list[str] | None, valid: dict, what: str) -> list[str]:
    """Validate user-given names; unknown ones raise with the list of valid names."""
    if not names:
        return list(valid)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise UnknownName(f"unknown {what} {', '.join(unknown)}; valid {what}s: {', '.join(valid)}")
    return list(dict.fromkeys(names))
