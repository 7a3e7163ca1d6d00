"""Settings read from the environment, so native runs and compose stacks share one source.

Every name starts with LAB_. Nothing here has a secret default: SECRET_KEY and the
manager authkey are generated per run by whoever starts the app.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from .mutants import MUTANT_ENV, check_name
from .race import RACE_WINDOWS


@dataclass(frozen=True)
class Settings:
    instance: str = "i1"
    worker_class: str = "unknown"
    race_window: str = "yield"
    redis_url: str | None = None
    memcached: str | None = None  # host:port
    data_dir: str = "/tmp/worker-lab"
    manager_address: str | None = None  # host:port
    manager_authkey: str | None = None
    postgres_url: str | None = None  # postgresql://user:password@host:port/database
    postgres_max_tries: int = 30  # postgres-serializable: tries of one request before it gives up (503)
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    session_dict_ttl: float = 300.0
    mutant: str | None = None  # LAB_MUTANT: a broken strategy (labapp/mutants.py); only the mutants runner sets it

    @classmethod
    def from_env(cls, env: os._Environ | dict | None = None) -> Settings:
        env = os.environ if env is None else env
        window = env.get("LAB_RACE_WINDOW", "yield")
        if window not in RACE_WINDOWS:
            raise ValueError(f"LAB_RACE_WINDOW={window!r}: expected one of {', '.join(RACE_WINDOWS)}")
        kwargs = dict(
            instance=env.get("LAB_INSTANCE", "i1"),
            worker_class=env.get("LAB_WORKER_CLASS") or env.get("WORKER_CLASS") or "dev-server",
            race_window=window,
            redis_url=env.get("LAB_REDIS_URL") or None,
            memcached=env.get("LAB_MEMCACHED") or None,
            data_dir=env.get("LAB_DATA_DIR", "/tmp/worker-lab"),
            manager_address=env.get("LAB_MANAGER_ADDRESS") or None,
            manager_authkey=env.get("LAB_MANAGER_AUTHKEY") or None,
            postgres_url=env.get("LAB_POSTGRES_URL") or None,
            postgres_max_tries=int(env.get("LAB_POSTGRES_MAX_TRIES", "30")),
            session_dict_ttl=float(env.get("LAB_SESSION_DICT_TTL", "300")),
            mutant=check_name(env.get(MUTANT_ENV)),
        )
        if kwargs["postgres_max_tries"] < 1:
            raise ValueError(f"LAB_POSTGRES_MAX_TRIES={kwargs['postgres_max_tries']}: at least 1")
        if env.get("LAB_SECRET_KEY"):
            kwargs["secret_key"] = env["LAB_SECRET_KEY"]
        return cls(**kwargs)
