"""The native stack's PostgreSQL: initdb into the run folder, the server a child on a free 127.0.0.1 port.

Debian keeps the server's programs off PATH, in /usr/lib/postgresql/<version>/bin (package
``postgresql``); the newest version there is used, else whatever PATH has. initdb and postgres refuse
to run as root, so a root lab runs them as the ``postgres`` account the package creates, with the data
folder theirs. That folder is in the run folder when the account can reach it; where it cannot (a run
folder under a private directory such as pytest's /tmp/pytest-of-root) it is a private temporary folder,
removed when the server stops.

The server listens on 127.0.0.1 only, with no unix socket (nothing in /var/run/postgresql, nothing
shared with a system cluster), password authentication (scram-sha-256, a password per run) and the
stock durability: fsync stays on, every commit is flushed before it is acknowledged.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import interrupt, procs
from ..procs import StackError

PACKAGE = "postgresql"
LIB_DIR = Path("/usr/lib/postgresql")
SERVER_ACCOUNT = "postgres"  # the account Debian's package creates
USER = DATABASE = "lab"
MAX_CONNECTIONS = 200  # pools of up to 2 per process, 64 in an unpatched gevent worker (labapp/postgres.py)
INITDB_TIMEOUT_S = 60.0


def server_binary(name: str, lib_dir: Path = LIB_DIR) -> str:
    """PostgreSQL's `name` (postgres, initdb): the newest /usr/lib/postgresql/<version>/bin has it, else PATH."""
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))

    found = sorted((p for p in lib_dir.glob(f"*/bin/{name}") if os.access(p, os.X_OK)), key=version)
    if found:
        return str(found[-1])
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise StackError(f"PostgreSQL's {name} not found (in {lib_dir}/<version>/bin or on PATH): install the Debian "
                     f"package '{PACKAGE}' (make setup does it)")


@dataclass(frozen=True)
class Account:
    """The account the server runs as when the lab is root (otherwise it runs as the lab's own user)."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    def popen(self) -> dict:
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


def server_account() -> Account | None:
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        raise StackError(f"PostgreSQL refuses to run as root and there is no '{SERVER_ACCOUNT}' account to run it "
                         f"as: install the Debian package '{PACKAGE}' (make setup does it)") from None
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid, tuple(os.getgrouplist(pw.pw_name, pw.pw_gid)))


class PostgresServer:
    """One server's data folder and command line; NativeStack starts it as a child and stops it."""

    def __init__(self, run_dir: Path, password: str):
        self.run_dir = run_dir
        self.password = password
        self.account = server_account()
        self.root: Path | None = None  # the folder holding data/, once made
        self.temporary = False  # the root is a temporary folder of ours (removed by cleanup)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def prepare(self) -> None:
        """Make the data folder (initdb) unless an earlier start of this stack did."""
        if self.root is None:
            self._make_root()
        if (self.data / "PG_VERSION").exists():
            return
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.password + "\n")
        self._own(pwfile)
        argv = [server_binary("initdb"), "--pgdata", str(self.data), "--username", USER, "--pwfile", str(pwfile),
                "--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions"]
        try:
            out = procs.run(argv, text=True, timeout=INITDB_TIMEOUT_S, cwd=self.root, **self._popen())
        except subprocess.TimeoutExpired:
            raise StackError(f"initdb took over {INITDB_TIMEOUT_S:.0f}s") from None
        finally:
            pwfile.unlink(missing_ok=True)
        log = self.run_dir / "logs" / "postgres-initdb.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise StackError(f"initdb exited with {out.returncode}; last lines of {log}:\n{procs.tail(log)}")

    def argv(self, port: int) -> list[str]:
        return [server_binary("postgres"), "-D", str(self.data), "-c", "listen_addresses=127.0.0.1",
                "-p", str(port), "-c", "unix_socket_directories=", "-c", f"max_connections={MAX_CONNECTIONS}",
                "-c", "logging_collector=off"]

    def child_settings(self) -> dict:
        """Child(...) keyword arguments: where it runs and as whom."""
        return {"cwd": self.root, "popen": self._popen()}

    def url(self, port: int, host: str = "localhost") -> str:
        """The app's URL of the database, which names its host as deployments do (compose names it ``postgres``).
        psycopg looks a name up with Python's socket.getaddrinfo - under gevent, a switch to the hub - and skips
        the lookup for an address: with 127.0.0.1 the native stack would hide a trap the containers show (a
        real lock held across that switch, see expected_fork.lazy_sqlalchemy). The server listens on 127.0.0.1
        only; libpq tries each address the name has (::1 is refused at once)."""
        return f"postgresql://{USER}:{self.password}@{host}:{port}/{DATABASE}"

    def accepting(self, port: int) -> bool:
        """The server answers, and holds the lab's database (created on the first answer)."""
        import psycopg

        try:
            with psycopg.connect(host="127.0.0.1", port=port, user=USER, password=self.password, dbname="postgres",
                                 connect_timeout=2, autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                    conn.execute(f"CREATE DATABASE {DATABASE}")
            return True
        except psycopg.OperationalError:
            return False

    def cleanup(self) -> None:
        """Remove the data folder if it is a temporary one (the server is stopped)."""
        if self.temporary and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    # -- the folder ----------------------------------------------------------------------------------
    def _make_root(self) -> None:
        wanted = self.run_dir / "postgres"
        wanted.mkdir(parents=True, exist_ok=True)
        if self._reachable(wanted):
            self.root = wanted
        else:
            with interrupt.shielded():  # a folder made is a folder cleanup() knows
                self.root = Path(tempfile.mkdtemp(prefix="worker-lab-postgres-"))
                self.temporary = True
            (wanted / "WHERE").write_text(f"the data folder is {self.root}: the '{self.account.name}' account cannot "
                                          f"reach {wanted}; it is removed when the server stops\n")
        self.root.chmod(0o700)
        self._own(self.root)

    def _reachable(self, folder: Path) -> bool:
        """Can the server's account enter `folder`? Asked of the kernel, as that account."""
        if self.account is None:
            return True
        return procs.run(["test", "-x", str(folder)], timeout=10, cwd="/", **self._popen()).returncode == 0

    def _own(self, path: Path) -> None:
        if self.account is not None:
            os.chown(path, self.account.uid, self.account.gid)

    def _popen(self) -> dict:
        return self.account.popen() if self.account else {}
