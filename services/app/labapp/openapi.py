"""The app's OpenAPI 3.0 description, served at /openapi.json.

Built from the strategy registry, so a new strategy module shows up here without an edit.
The fuzz tests (tests/test_fuzz.py) generate requests from it - valid ones and, in
negative mode, everything the description rules out - and hold the app to it: every
answer is JSON, every refusal a 4xx with ``error`` and ``message``, never a 500.
"""

from __future__ import annotations

from .errors import KEY_PATTERN
from .strategies import REGISTRY, CounterStrategy, IsolationStrategy, SessionStrategy

SESSION_COOKIE_MAX = 4096  # browsers keep no larger cookie; sessions.py refuses larger ones

_SERVED_BY = {
    "pid": {"type": "integer"},
    "tid": {"type": "integer"},
    "greenlet": {"type": "integer", "nullable": True},
    "worker_class": {"type": "string"},
    "instance": {"type": "string"},
}


def _answer(extra: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": {**extra, **_SERVED_BY}, "required": ["pid", "instance", *required]}


def _json(schema_ref: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


ERRORS = {
    "400": _json("#/components/schemas/Error", "bad input: unknown strategy, malformed or missing parameter, "
                                                "session cookie too large"),
    "404": _json("#/components/schemas/Error", "no such path"),
    "405": _json("#/components/schemas/Error", "method not allowed"),
    "503": _json("#/components/schemas/Error", "a sidecar (redis, memcached, the manager) is unreachable, "
                                                "or a lock was not acquired in time"),
}


def _names(kind) -> list[str]:
    return [name for name, s in REGISTRY.items() if isinstance(s, kind)]


def _name_param(names: list[str]) -> dict:
    return {"name": "name", "in": "path", "required": True, "description": "a strategy (see /strategies)",
            "schema": {"type": "string", "enum": names}}


def _ident_param(name: str, what: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": what,
            "schema": {"type": "string", "pattern": KEY_PATTERN.pattern, "minLength": 1, "maxLength": 100}}


SESSION_COOKIE = {
    "name": "session", "in": "cookie", "required": False,
    "description": "Flask's signed session cookie, or a Flask-Session id for the server-session strategies",
    "schema": {"type": "string", "maxLength": SESSION_COOKIE_MAX},
}


def _get(summary: str, parameters: list[dict], ok: dict, *, errors: tuple[str, ...] = ("400", "404", "405", "503"),
         extra: dict | None = None) -> dict:
    responses = {"200": {"description": "ok", "content": {"application/json": {"schema": ok}}}}
    responses.update({code: ERRORS[code] for code in errors})
    responses.update(extra or {})
    return {"get": {"summary": summary, "parameters": parameters, "responses": responses}}


def describe(max_token: int) -> dict:
    """The OpenAPI document; ``max_token``: the longest token /echo takes."""
    value_ok = _answer({"value": {"type": "integer"}, "owner": {"type": "string", "nullable": True}}, ("value",))
    stateful = _names(CounterStrategy) + _names(SessionStrategy)
    ident = [_ident_param("key", "the counter's name (counter strategies)"),
             _ident_param("client", "who is asking (session strategies)"), SESSION_COOKIE]
    return {
        "openapi": "3.0.3",
        "info": {"title": "worker-lab app", "version": "1",
                 "description": "Shared-state strategies under test. Every answer is JSON and says who served it."},
        "paths": {
            "/health": _get("liveness", [], _answer({"status": {"type": "string"}}), errors=("405",)),
            "/hello": _get("a fixed answer (throughput baseline)", [], _answer({"value": {"type": "string"}}),
                           errors=("405",)),
            "/strategies": _get("the strategies", [], _answer({"strategies": {"type": "array"}}), errors=("405",)),
            "/error": _get("raises on purpose: a plain JSON 500, never a traceback", [], _answer({}),
                           errors=("405",), extra={"500": _json("#/components/schemas/Error", "raised on purpose")}),
            "/s/{name}/incr": _get("increment the counter (key=) or the user's session counter (client=)",
                                   [_name_param(stateful), *ident], value_ok),
            "/s/{name}/read": _get("read the counter (key=) or the user's session counter", [_name_param(stateful),
                                                                                             *ident], value_ok),
            "/s/{name}/echo": _get("store a token, yield, read it back", [
                _name_param(_names(IsolationStrategy)),
                {"name": "token", "in": "query", "required": True,
                 "schema": {"type": "string", "minLength": 1, "maxLength": max_token}},
            ], _answer({"value": {"type": "string"}, "sent": {"type": "string"}}, ("value",))),
            "/openapi.json": {"get": {"summary": "this description", "responses": {
                "200": {"description": "the OpenAPI document", "content": {"application/json": {
                    "schema": {"type": "object"}}}}}}},
        },
        "components": {"schemas": {"Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}, **_SERVED_BY},
            "required": ["error", "message"],
        }}},
    }
