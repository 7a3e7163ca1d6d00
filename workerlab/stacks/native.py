"""The native stack: redis, memcached, the manager server, PostgreSQL, the app instances and nginx.

All on 127.0.0.1, on free ports, with configs and logs in the run folder.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import jinja2
import psutil

from ..paths import APP_DIR, NGINX_DIR
from ..procs import GRACE_S, Child, Children, ManagedStack, StackError, free_port, tail
from ..scenarios import Scenario
from . import postgres

HEALTH_TIMEOUT_S = 30.0
BIND_ATTEMPTS = 3
# What each server logs when the port it was given got taken between our check and its bind.
PORT_TAKEN_MESSAGES = ("Address already in use", "Address in use", "Connection in use")

# binary -> Debian package that provides it (PostgreSQL's programs are off PATH: postgres.server_binary)
BINARIES = {"redis-server": "redis-server", "memcached": "memcached", "nginx": "nginx", "postgres": postgres.PACKAGE}
# The sidecars a stack can start (`run --without` names them), and the binary each needs. PostgreSQL
# (an initdb per stack) starts only where a strategy needs it (sidecars_for); the others always.
SIDECARS = ("redis", "memcached", "manager", "postgres")
BASE_SIDECARS = ("redis", "memcached", "manager")
SIDECAR_BINARIES = {"redis": "redis-server", "memcached": "memcached", "postgres": "postgres"}
# redis durability for NativeStack(redis_persistence=...): none (the default) or an append-only file.
# How many requests nginx sends over one kept-alive connection to gunicorn before it opens a new one (the
# native template's keepalive_requests; compose-nginx.conf says the same): few enough that the workers keep
# racing for connections all through a small cell, instead of one worker keeping every one it won at the start
# (CI, at a load of 3: gthread-2x8-preload's 300-request cells served by 1 of 2 workers, two cells in a row).
UPSTREAM_KEEPALIVE_REQUESTS = 10
REDIS_PERSISTENCE = {
    "none": ["--save", "", "--appendonly", "no"],
    "aof-always": ["--save", "", "--appendonly", "yes", "--appendfsync", "always"],
    "aof-everysec": ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
}


def find_binary(name: str) -> str:
    if name == "postgres":
        return postgres.server_binary(name)
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if not found:
        raise StackError(f"{name} not found: install the Debian package '{BINARIES[name]}' (make setup does it)")
    return found


def missing_binaries(sidecars: tuple[str, ...] = BASE_SIDECARS) -> list[str]:
    """The binaries a stack with these sidecars (and nginx) needs that this machine lacks."""
    missing = []
    for name in ("nginx", *(SIDECAR_BINARIES[s] for s in sidecars if s in SIDECAR_BINARIES)):
        try:
            find_binary(name)
        except StackError:
            missing.append(name)
    return missing


def missing_message(missing: list[str]) -> str:
    packages = " ".join(dict.fromkeys(BINARIES[name] for name in missing))
    return f"missing {', '.join(missing)}: run 'make setup' (apt-get install {packages})"


def sidecars_for(strategies, allowed: tuple[str, ...] = SIDECARS) -> tuple[str, ...]:
    """The sidecars a stack for these strategies starts: the allowed ones, PostgreSQL only if one needs it."""
    needed = {need for strategy in strategies for need in strategy.needs}
    return tuple(s for s in allowed if s in BASE_SIDECARS or s in needed)


def _tcp_answers(port: int, send: bytes, expect: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(send)
            return expect in s.recv(256)
    except OSError:
        return False


def http_json(url: str, timeout: float = 2.0) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def server_argv(scenario: Scenario, gunicorn: list[str], dev_server: list[str]) -> list[str]:
    """The scenario's server command: `gunicorn`, or `dev_server` with the scenario's threads or forks."""
    if scenario.server == "gunicorn":
        return gunicorn
    if scenario.server == "flask-dev":
        flags = ["--threaded"] if scenario.dev_threaded else []
        return dev_server + flags + (["--processes", str(scenario.dev_processes)] if scenario.dev_processes > 1 else [])
    raise StackError(f"scenario {scenario.name}: unknown SERVER={scenario.server!r} (gunicorn or flask-dev)")


class NativeStack(ManagedStack):
    """Bring a scenario's stack up on loopback; ``with`` stops everything it started."""

    def __init__(self, scenario: Scenario, run_dir: Path, *, race_window: str = "yield", direct: bool = False,
                 sidecars: tuple[str, ...] = BASE_SIDECARS,
                 redis_persistence: str = "none", memcached_mb: int = 64, memcached_item_max: str | None = None,
                 app_extra_env: dict[str, str] | None = None, redis_env: dict[str, str] | None = None,
                 keepalive_requests: int = UPSTREAM_KEEPALIVE_REQUESTS):
        self.scenario = scenario
        self.run_dir = run_dir
        self.race_window = race_window
        self.direct = direct
        self.sidecars = sidecars
        # Fault runs (workerlab faults): redis durability, a small memcached, extra app settings.
        if redis_persistence not in REDIS_PERSISTENCE:
            raise ValueError(f"redis_persistence={redis_persistence!r}: one of {', '.join(REDIS_PERSISTENCE)}")
        self.redis_persistence = redis_persistence
        self.memcached_mb = memcached_mb
        self.memcached_item_max = memcached_item_max
        self.app_extra_env = dict(app_extra_env or {})
        self.redis_env = dict(redis_env or {})  # e.g. LD_PRELOAD of the host-crash shim (workerlab/shim/)
        self.keepalive_requests = keepalive_requests
        self.children = Children()
        self.ports: dict[str, int] = {}
        self.app_ports: list[int] = []
        self.tmp_dir: Path | None = None  # the app's TMPDIR: gunicorn's dirty arbiter keeps its socket there
        self.secret_key = secrets.token_hex(32)
        self.manager_authkey = secrets.token_hex(16)
        self.postgres = postgres.PostgresServer(run_dir, secrets.token_hex(16)) if "postgres" in sidecars else None

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Start every service; if a free port was taken by someone else meanwhile, retry on new ports."""
        for attempt in range(BIND_ATTEMPTS):
            try:
                self._start_once()
                return
            except StackError as exc:
                if attempt + 1 == BIND_ATTEMPTS or not any(m in str(exc) for m in PORT_TAKEN_MESSAGES):
                    raise
                self.stop()
                self.ports.clear()
                self.app_ports.clear()

    def _start_once(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Short (a Unix socket path has 107 bytes) and removed with the stack: gunicorn leaves its dirty
        # arbiter's socket folder and pid file behind in TMPDIR when the arbiter does not end cleanly.
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="worker-lab-"))
        for name in self.sidecars:
            if name in SIDECAR_BINARIES:
                find_binary(SIDECAR_BINARIES[name])
        if not self.direct:
            find_binary("nginx")
        if "redis" in self.sidecars:
            self._start_redis()
        if "memcached" in self.sidecars:
            self._start_memcached()
        if "manager" in self.sidecars:
            self._start_manager()
        if self.postgres:
            self._start_postgres()
        for index in range(self.scenario.instances):
            self._start_app(index)
        if not self.direct:
            self._start_nginx()
        self._wait_healthy()

    def stop(self) -> None:
        self.children.stop_all()
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir = None
        if self.postgres:
            self.postgres.cleanup()

    @property
    def url(self) -> str:
        port = self.app_ports[0] if self.direct else self.ports["nginx"]
        return f"http://127.0.0.1:{port}"

    @property
    def instance_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.app_ports]

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self.children.children if c.proc}

    # -- services --------------------------------------------------------------
    def _child(self, name: str, argv: list[str], **kwargs) -> Child:
        return self.children.start(Child(name, argv, self.run_dir / "logs" / f"{name}.log", **kwargs))

    def _start_redis(self) -> None:
        port = self.ports["redis"] = free_port()
        data = self.run_dir / "redis"
        data.mkdir(exist_ok=True)
        self._child("redis", [
            find_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            *REDIS_PERSISTENCE[self.redis_persistence], "--dir", str(data), "--logfile", "",
        ], env={**os.environ, **self.redis_env} if self.redis_env else {})

    def _start_memcached(self) -> None:
        port = self.ports["memcached"] = free_port()
        argv = [find_binary("memcached"), "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", str(self.memcached_mb),
                "-c", "4096"]
        if self.memcached_item_max:  # memcached refuses an item size limit above half its memory
            argv += ["-I", self.memcached_item_max]
        if os.geteuid() == 0:  # memcached refuses to run as root
            argv += ["-u", "nobody"]
        self._child("memcached", argv)

    def _start_manager(self) -> None:
        port = self.ports["manager"] = free_port()
        env = {**self._base_env(), "LAB_MANAGER_AUTHKEY": self.manager_authkey}
        self._child("manager", [sys.executable, "-m", "labapp.manager", "--address", f"127.0.0.1:{port}"],
                    env=env, cwd=APP_DIR)

    def _start_postgres(self) -> None:
        port = self.ports["postgres"] = free_port()
        self.postgres.prepare()
        self._child("postgres", self.postgres.argv(port), **self.postgres.child_settings())

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "GUNICORN_", "FLASK_"))}
        env["PYTHONPATH"] = str(APP_DIR)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def data_dir(self, index: int) -> Path:
        """App instance ``index``'s files (SQLite, FileSystemCache, session files).

        Each instance of a scale-out scenario is a host of its own, so each gets a folder of its own
        (``data/i1``, ``data/i2`` ...), as each compose replica has its own /tmp.
        """
        data = self.run_dir / "data"
        return data / f"i{index + 1}" if self.scenario.instances > 1 else data

    def dirty_pidfile(self, index: int) -> Path:
        """Where app instance ``index``'s dirty arbiter writes its pid (gunicorn.conf.py, on_dirty_starting)."""
        return self.run_dir / f"dirty-arbiter-i{index + 1}.pid"

    def ready_dir(self, index: int) -> Path:
        """Where each gunicorn worker of app instance ``index`` notes it is ready (gunicorn.conf.py,
        post_worker_init): ``ready.<pid>``."""
        return self.run_dir / f"ready-i{index + 1}"

    def app_env(self, index: int, port: int) -> dict[str, str]:
        env = self._base_env()
        env.update(dict(self.scenario.env))
        env.update({
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "LAB_INSTANCE": f"i{index + 1}",
            "LAB_RACE_WINDOW": self.race_window,
            "LAB_DATA_DIR": str(self.data_dir(index)),
            "LAB_SECRET_KEY": self.secret_key,
            "LAB_DIRTY_PIDFILE": str(self.dirty_pidfile(index)),
            "LAB_READY_DIR": str(self.ready_dir(index)),
        })
        if self.tmp_dir is not None:
            env["TMPDIR"] = str(self.tmp_dir)
        if "redis" in self.ports:
            env["LAB_REDIS_URL"] = f"redis://127.0.0.1:{self.ports['redis']}/0"
        if "memcached" in self.ports:
            env["LAB_MEMCACHED"] = f"127.0.0.1:{self.ports['memcached']}"
        if "manager" in self.ports:
            env["LAB_MANAGER_ADDRESS"] = f"127.0.0.1:{self.ports['manager']}"
            env["LAB_MANAGER_AUTHKEY"] = self.manager_authkey
        if "postgres" in self.ports:
            env["LAB_POSTGRES_URL"] = self.postgres.url(self.ports["postgres"])
        env.update(self.app_extra_env)
        return env

    app_cwd = APP_DIR

    def app_argv(self, port: int) -> list[str]:
        """The command of one app instance: gunicorn (its settings from the environment) or the dev server."""
        return server_argv(self.scenario, [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                           "labapp.wsgi:app"],
                           [sys.executable, "-m", "labapp.devserver", "--port", str(port)])

    def _start_app(self, index: int) -> None:
        self.ready_dir(index).mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.app_ports.append(port)
        self._child(f"app-i{index + 1}", self.app_argv(port), env=self.app_env(index, port), cwd=self.app_cwd)

    def _start_nginx(self) -> None:
        port = self.ports["nginx"] = free_port()
        conf_dir = self.run_dir / "nginx"
        (conf_dir / "tmp").mkdir(parents=True, exist_ok=True)
        template = jinja2.Environment(loader=jinja2.FileSystemLoader(NGINX_DIR), autoescape=False,
                                      keep_trailing_newline=True).get_template("native.conf.j2")
        conf = conf_dir / "nginx.conf"
        conf.write_text(template.render(
            run_dir=conf_dir, listen=f"127.0.0.1:{port}", upstreams=[f"127.0.0.1:{p}" for p in self.app_ports],
            keepalive=self.scenario.server == "gunicorn", keepalive_requests=self.keepalive_requests,
        ))
        self._child("nginx", [find_binary("nginx"), "-p", str(conf_dir), "-c", str(conf), "-e",
                              str(conf_dir / "error.log")])

    # -- health ----------------------------------------------------------------
    def _sidecar_checks(self) -> dict:
        """How each running sidecar says it is up."""
        checks = {
            "redis": lambda: _tcp_answers(self.ports["redis"], b"PING\r\n", b"PONG"),
            "memcached": lambda: _tcp_answers(self.ports["memcached"], b"version\r\n", b"VERSION"),
            "manager": lambda: self._port_open("manager"),
            "postgres": lambda: self.postgres.accepting(self.ports["postgres"]),
        }
        return {name: check for name, check in checks.items() if name in self.ports}

    def _wait_healthy(self) -> None:
        checks = list(self._sidecar_checks().items())
        for index in range(len(self.app_ports)):
            checks.append((f"app-i{index + 1}", lambda index=index: self._app_healthy(index)))
        if "nginx" in self.ports:
            checks.append(("nginx", lambda: self.app_answers(self.url)))
        by_name = {c.name: c for c in self.children.children}
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        for name, healthy in checks:
            while not healthy():
                child = by_name.get(name)
                if child is not None and not child.alive():
                    raise child.failure("exited during start-up")
                if time.monotonic() > deadline:
                    raise (child.failure(f"not healthy after {HEALTH_TIMEOUT_S:.0f}s") if child
                           else StackError(f"{name} not healthy"))
                time.sleep(0.05)

    def app_answers(self, url: str) -> bool:
        """Is the app at `url` (an instance, or nginx in front) up? The lab's app answers /health in JSON."""
        return http_json(f"{url}/health") is not None

    def _app_healthy(self, index: int) -> bool:
        """Instance ``index`` answers, its dirty arbiter (when the scenario runs one) said its pid, and every
        gunicorn worker said it is ready - one answer only says the first worker is."""
        if not self.app_answers(f"http://127.0.0.1:{self.app_ports[index]}"):
            return False
        if self.runs_stash and not self.dirty_pidfile(index).exists():
            return False
        return self.workers_ready(index)

    def workers_ready(self, index: int) -> bool:
        """Have as many of app instance ``index``'s living gunicorn children as the scenario runs workers noted
        they are about to accept (a dev server: nothing to wait for)? Counted, not all of them: a user's app
        runs a dirty arbiter the lab has no pidfile of."""
        if self.scenario.server != "gunicorn":
            return True
        ready = [pid for pid in self.app_worker_pids(index) if (self.ready_dir(index) / f"ready.{pid}").exists()]
        return len(ready) >= self.scenario.workers

    @property
    def runs_stash(self) -> bool:
        """Does this stack's gunicorn start the dirty arbiter (the lab's gunicorn.conf.py, DIRTY_WORKERS)?"""
        return self.scenario.has_stash

    def _port_open(self, name: str) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.ports[name]), timeout=1).close()
            return True
        except OSError:
            return False

    # -- faults (workerlab faults): restart a service, signal the app or nginx ------
    def child(self, name: str) -> Child:
        for c in self.children.children:
            if c.name == name:
                return c
        raise StackError(f"no service {name!r} in this stack ({', '.join(c.name for c in self.children.children)})")

    def restart(self, name: str, sig: int = signal.SIGKILL, timeout: float = HEALTH_TIMEOUT_S) -> float:
        """Stop service ``name`` with ``sig`` (kill -9 by default: a crash), start it again on the same port.

        Returns the seconds from the signal until it answers again (redis answers PING only once its
        append-only file is loaded).
        """
        child = self.child(name)
        started = time.monotonic()
        if child.proc is not None:
            try:
                os.killpg(child.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                child.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait(timeout=GRACE_S)
        if name.startswith("app-"):  # a new master forks a new dirty arbiter, which writes its own pid
            self.dirty_pidfile(int(name.rsplit("i", 1)[-1]) - 1).unlink(missing_ok=True)
        child.start()
        checks = {**self._sidecar_checks(), "nginx": lambda: http_json(f"{self.url}/health") is not None}
        healthy = checks.get(name)
        if healthy is None:
            index = int(name.rsplit("i", 1)[-1]) - 1
            healthy = lambda: self._app_healthy(index)  # noqa: E731
        deadline = time.monotonic() + timeout
        while not healthy():
            if not child.alive():
                raise child.failure("exited during restart")
            if time.monotonic() > deadline:
                raise child.failure(f"not healthy {timeout:.0f}s after restart")
            time.sleep(0.01)
        return time.monotonic() - started

    def restart_apps(self) -> float:
        """Every app instance killed and started again (master, workers, dirty arbiter); the seconds it took."""
        started = time.monotonic()
        for index in range(self.scenario.instances):
            self.restart(f"app-i{index + 1}")
        return time.monotonic() - started

    def app_master_pid(self, index: int = 0) -> int:
        """The gunicorn master (or dev server) of app instance ``index``."""
        child = self.child(f"app-i{index + 1}")
        if not child.alive():
            raise child.failure("is not running")
        return child.proc.pid

    def app_worker_pids(self, index: int = 0) -> list[int]:
        """The HTTP worker processes of app instance ``index`` (gunicorn's children but its dirty arbiter),
        oldest first."""
        try:
            workers = psutil.Process(self.app_master_pid(index)).children()
        except psutil.NoSuchProcess:
            return []
        dirty = self.dirty_arbiter_pid(index)
        return [p.pid for p in sorted(workers, key=lambda p: p.create_time()) if p.pid != dirty]

    def dirty_arbiter_pid(self, index: int = 0) -> int | None:
        """The pid of app instance ``index``'s dirty arbiter, when its scenario runs one and it has started."""
        if not self.scenario.has_stash:
            return None
        try:
            return int(self.dirty_pidfile(index).read_text())
        except (OSError, ValueError):
            return None

    def signal_app(self, sig: int, *, index: int = 0, target: str = "worker", worker: int = 0) -> int:
        """Send ``sig`` to app instance ``index``: its master, or its ``worker``-th worker. Returns the pid."""
        if target == "master":
            pid = self.app_master_pid(index)
        else:
            pids = self.app_worker_pids(index)
            if not pids:
                raise StackError(f"app-i{index + 1} has no worker process to signal")
            pid = pids[worker % len(pids)]
        os.kill(pid, sig)
        return pid

    def reload_nginx(self) -> int:
        """SIGHUP to nginx's master: re-read the config, start new workers, retire the old ones gracefully."""
        child = self.child("nginx")
        os.kill(child.proc.pid, signal.SIGHUP)
        return child.proc.pid

    def describe(self) -> dict:
        return {"url": self.url, "ports": dict(self.ports), "app_ports": list(self.app_ports),
                "logs": str(self.run_dir / "logs")}


__all__ = ["SIDECARS", "NativeStack", "StackError", "missing_binaries", "missing_message", "sidecars_for", "tail"]
