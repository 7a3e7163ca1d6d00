"""What a fault run covers: blocks of (scenario, route) x faults x strategies, and the default one.

By default (``make faults``) every gunicorn scenario runs: the whole table (every fault, every strategy)
under ``FULL_TABLE_SCENARIO``, and the faults that restart gunicorn's processes under every other one,
with one strategy per place state lives (``REPRESENTATIVE``) - what differs between worker classes is
how each restarts, not where a strategy keeps its state, and the run stays about half an hour.
``--scenario``, ``--fault``, ``--strategy`` and ``--route`` narrow it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..scenarios import Scenario
from .table import FAULT_STRATEGIES, FAULTS, Fault


@dataclass(frozen=True)
class Route:
    """How the load reaches gunicorn."""

    name: str
    direct: bool  # straight to the first app instance's port, no nginx in between
    summary: str


NGINX = Route("nginx", False, "through nginx, which keeps its own connections to the workers alive (keepalive 64)")
DIRECT = Route("direct", True, "straight to gunicorn: the load generator's kept-alive connections end in a worker")
ROUTES = {r.name: r for r in (NGINX, DIRECT)}

FULL_TABLE_SCENARIO = "sync-x4"
# One strategy per place state lives, for the worker faults under the other scenarios: a worker's globals
# (locked-global: its lock keeps it correct under threads and greenlets, so the fault alone decides), a
# store outside gunicorn (redis), the user's cookie, gunicorn's dirty arbiter (where the scenario runs one).
REPRESENTATIVE = ("locked-global", "redis-incr", "cookie-session", "gunicorn-stash")
# Worker classes whose workers keep a client's connection open between requests, run straight to gunicorn
# as well by default: a restart then meets connections that are idle but open. (sync closes each connection;
# gevent keeps them too - run it with --route direct.)
DIRECT_BY_DEFAULT = ("gthread",)


# gunicorn's worker classes whose workers keep a connection open after an answer (sync closes every one).
KEEPS_ALIVE = ("gthread", "gevent", "gevent-unpatched")


def resent_by(scenario: Scenario, route: Route) -> str | None:
    """Who sends again a GET whose connection died before its answer (RFC 9110 lets a client retry an
    idempotent method; the lab's increments are GETs): None when the request just fails."""
    if route.direct:
        return ("the load generator (loadtests/wire.py, as browsers and geventhttpclient, resends a GET whose "
                "connection closed before the answer)")
    if scenario.worker_class in KEEPS_ALIVE:
        return "nginx (a request that fails on a kept-alive upstream connection is retried on a new one)"
    return None  # sync closes each connection, so nginx's was new: it answers 502


@dataclass(frozen=True)
class Block:
    """One stack set-up: a scenario reached by a route, and the faults and strategies run on it."""

    scenario: Scenario
    route: Route
    faults: tuple[Fault, ...]
    strategies: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.scenario.name if self.route is NGINX else f"{self.scenario.name} ({self.route.name})"

    def as_dict(self) -> dict:
        return {"scenario": self.scenario.name, "worker_class": self.scenario.worker_class, "route": self.route.name,
                "label": self.label,
                "faults": [f.name for f in self.faults], "strategies": list(self.strategies)}


def restarts_gunicorn(fault: Fault) -> bool:
    """Does the fault replace gunicorn's workers (a kill, recycling, HUP, a new master)?"""
    return fault.hits in ("process", "master")


def routes_for(scenario: Scenario, asked: list[str] | None = None) -> tuple[Route, ...]:
    """The routes ``scenario`` runs by: nginx; also direct for a DIRECT_BY_DEFAULT worker class. A direct
    route needs one instance (it reaches the first only). ``asked``: the routes the user named instead."""
    possible = (NGINX, DIRECT) if scenario.instances == 1 else (NGINX,)
    if asked:
        return tuple(r for r in possible if r.name in asked)
    return tuple(r for r in possible if not r.direct or scenario.worker_class in DIRECT_BY_DEFAULT)


def default_scenarios(scenarios: dict[str, Scenario]) -> list[str]:
    """What ``make faults`` runs without --scenario: every gunicorn scenario."""
    return [name for name, s in scenarios.items() if s.server == "gunicorn"]


def default_blocks(scenarios: dict[str, Scenario], *, faults: list[str] | None = None,
                   strategies: list[str] | None = None, routes: list[str] | None = None) -> list[Block]:
    """The default coverage of ``scenarios``; named faults / strategies / routes replace the defaults."""
    blocks = []
    for scenario in scenarios.values():
        whole = scenario.name == FULL_TABLE_SCENARIO or scenario.server != "gunicorn"
        fault_list = ([FAULTS[n] for n in faults] if faults else
                      list(FAULTS.values()) if whole else [f for f in FAULTS.values() if restarts_gunicorn(f)])
        names = strategies or (list(FAULT_STRATEGIES) if whole else list(REPRESENTATIVE))
        blocks += [Block(scenario, route, tuple(fault_list), tuple(names)) for route in routes_for(scenario, routes)]
    return blocks


def every(scenarios: dict[str, Scenario], faults: list[Fault], strategies: list[str],
          route: Route = NGINX) -> list[Block]:
    """Every (fault x strategy) under each scenario, by one route."""
    return [Block(s, route, tuple(faults), tuple(strategies)) for s in scenarios.values()]
