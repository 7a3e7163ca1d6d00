"""create_app(): the Flask app factory."""

from __future__ import annotations

import copy
import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from . import faultpoints, mutants, openapi, sessions
from .errors import BadInput, LabError, SidecarUnreachable, valid_key
from .resources import Resources, unreachable_errors
from .served_by import served_by
from .settings import Settings
from .strategies import REGISTRY, CounterStrategy, IsolationStrategy, SessionStrategy

log = logging.getLogger("labapp")
MAX_TOKEN = 200


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("labapp")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # The lab never runs the debugger, whatever FLASK_DEBUG says.
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
        JSON_SORT_KEYS=False,
    )
    res = Resources(settings)
    app.extensions["lab"] = res
    strategies = {}
    for name, template in REGISTRY.items():
        strategy = copy.copy(template)  # module-level state stays shared; the binding is per app
        strategy.bind(res)
        strategies[name] = strategy
    # Inert unless the mutants runner set LAB_MUTANT: then one strategy's method is its broken twin.
    armed = app.extensions["lab_mutant"] = mutants.arm(settings.mutant, strategies)
    _init_caches(app, settings, strategies)
    sessions.install(app, res)

    def answer(payload: dict, status: int = 200):
        body = {**payload, **served_by(settings)}
        return jsonify(body), status

    def strategy_or_404(name: str, kind):
        strategy = strategies.get(name)
        if strategy is None or not isinstance(strategy, kind):
            raise BadInput(f"unknown strategy {name!r} for this endpoint; see /strategies")
        return strategy

    @app.get("/health")
    def health():
        return answer({"status": "ok", "race_window": settings.race_window, **({"mutant": armed} if armed else {})})

    @app.get("/hello")
    def hello():
        return answer({"value": "hello"})

    @app.get("/error")
    def error():
        """Raises on purpose: shows that an unhandled error is a plain JSON 500, never a debugger page."""
        raise RuntimeError("raised on purpose by /error")

    @app.get("/openapi.json")
    def openapi_json():
        return jsonify(openapi.describe(max_token=MAX_TOKEN))

    @app.get("/strategies")
    def list_strategies():
        return answer(
            {
                "strategies": [
                    {"name": s.name, "check": s.check, "summary": s.summary, "needs": list(s.needs)}
                    for s in strategies.values()
                ]
            }
        )

    @app.get("/s/<name>/incr")
    def incr(name):
        strategy = strategies.get(name)
        if isinstance(strategy, CounterStrategy):
            payload = {"value": strategy.incr(valid_key(request.args.get("key")))}
        elif isinstance(strategy, SessionStrategy):
            payload = strategy.incr(valid_key(request.args.get("client"), "client"))
        else:
            raise BadInput(f"unknown strategy {name!r} for incr; see /strategies")
        faultpoints.reach("incr-answering")  # workerlab faults: a worker kill lands here, after the write
        faultpoints.served()  # workerlab faults: a killed worker's replacement has served
        return answer(payload)

    @app.get("/s/<name>/read")
    def read(name):
        strategy = strategies.get(name)
        if isinstance(strategy, CounterStrategy):
            return answer({"value": strategy.read(valid_key(request.args.get("key")))})
        if isinstance(strategy, SessionStrategy):
            return answer(strategy.read())
        raise BadInput(f"unknown strategy {name!r} for read; see /strategies")

    @app.get("/s/<name>/echo")
    def echo(name):
        strategy = strategy_or_404(name, IsolationStrategy)
        token = request.args.get("token")
        if not token or len(token) > MAX_TOKEN:
            raise BadInput(f"token must be 1..{MAX_TOKEN} characters")
        return answer({"value": strategy.echo(token), "sent": token})

    @app.errorhandler(LabError)
    def lab_error(exc: LabError):
        return answer({"error": exc.code, "message": exc.message}, exc.status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if getattr(exc, "original_exception", None) is not None:
            # An error outside the view (opening or saving a server-side session) that Flask wrapped as a
            # 500: judge the original, so a session store that is down is a 503 naming it, like in a view.
            return unexpected(exc)
        return answer({"error": exc.name.lower().replace(" ", "-"), "message": exc.description}, exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        # Sidecar failures surface as client-library exceptions; name the sidecar.
        original = getattr(exc, "original_exception", exc)
        if isinstance(original, LabError):
            return lab_error(original)
        if isinstance(original, unreachable_errors()):
            sidecar = _sidecar_for(request.path, strategies)
            wrapped = SidecarUnreachable(f"{sidecar} unreachable: {type(original).__name__}: {original}")
            return lab_error(wrapped)
        log.exception("unexpected error on %s", request.path)
        # A plain JSON 500: never a traceback, never the debugger.
        return answer({"error": "internal", "message": type(original).__name__}, 500)

    return app


def _sidecar_for(path: str, strategies: dict) -> str:
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "s" and parts[2] in strategies:
        needs = strategies[parts[2]].needs
        if needs:
            return needs[0]
    return "a sidecar"


def _init_caches(app: Flask, settings: Settings, strategies: dict) -> None:
    from flask_caching import Cache

    from .strategies.cache_counter import CacheCounter, cache_config

    caches = {}
    for strategy in strategies.values():
        if isinstance(strategy, CacheCounter):
            if strategy.backend not in caches:
                caches[strategy.backend] = Cache(app, config=cache_config(strategy.backend, settings))
            strategy.cache = caches[strategy.backend]
