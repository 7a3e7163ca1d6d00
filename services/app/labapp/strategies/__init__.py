"""The registry of state strategies: one module each, collected in declaration order."""

from __future__ import annotations

from . import (
    cache_counter,
    fork_safety,
    gunicorn_stash,
    locked_global,
    manager_counter,
    memcached_counter,
    naive_global,
    postgres_counter,
    redis_counter,
    request_isolation,
    seed_counter,
    session_counter,
    session_dict,
    sql_counter,
    sqlalchemy_fork,
)
from .base import CHECKS, CounterStrategy, IsolationStrategy, SessionStrategy, Strategy

MODULES = (
    naive_global,
    seed_counter,
    locked_global,
    redis_counter,
    memcached_counter,
    sql_counter,
    postgres_counter,
    manager_counter,
    cache_counter,
    session_dict,
    session_counter,
    request_isolation,
    fork_safety,
    sqlalchemy_fork,
    gunicorn_stash,
)

REGISTRY: dict[str, Strategy] = {s.name: s for module in MODULES for s in module.STRATEGIES}

__all__ = ["CHECKS", "REGISTRY", "CounterStrategy", "IsolationStrategy", "SessionStrategy", "Strategy"]
