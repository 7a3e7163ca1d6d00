"""A user's declared request (worker-lab.toml, workerlab/userapp/declaration.py), as the driver sends it and
reads its answer: the one place that builds the request and finds the value in the answer.

Pure: the standard library only. The runner probes an app with it at start-up (the same request, the same
extraction, so a value the probe finds is one the load will find) and the driver's declared users send it.

A request spec is a dict (JSON in plan.json):

    {"method": "POST", "path": "/cart/add", "query": {...}, "headers": {...}, "form": {...}, "json": {...},
     "value": {"json": "/items"} | {"regex": "Items: (\\d+)"},
     "send": {"in": "query" | "header" | "form" | "json", "name": "name"}}   # isolation: where the token goes

Strings in query, headers, form and json may hold ``{user}`` (the load user's name) and ``{token}`` (the
isolation token of this request).
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

SHOWN_ANSWER_CHARS = 300  # how much of an answer an error shows


class ValueNotFound(ValueError):
    """The declared place holds no value in this answer; the message shows the answer."""


def _fill(value, user: str, token: str):
    if isinstance(value, str):
        return value.replace("{user}", user).replace("{token}", token)
    if isinstance(value, dict):
        return {k: _fill(v, user, token) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, user, token) for v in value]
    return value


def build(spec: dict, user: str = "", token: str = "") -> tuple[str, str, dict, bytes | None]:
    """(method, path with query, headers, body) of one request of `spec` for `user`, carrying `token`."""
    query = dict(_fill(spec.get("query") or {}, user, token))
    headers = dict(_fill(spec.get("headers") or {}, user, token))
    form = dict(_fill(spec.get("form") or {}, user, token))
    body_json = _fill(spec.get("json"), user, token)
    send = spec.get("send")
    if send:
        where, name = send["in"], send["name"]
        if where == "query":
            query[name] = token
        elif where == "header":
            headers[name] = token
        elif where == "form":
            form[name] = token
        else:
            body_json = {**(body_json or {}), name: token}
    path = spec["path"]
    if query:
        path += ("&" if "?" in path else "?") + urlencode(query)
    body = None
    if form:
        body = urlencode(form).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif body_json is not None:
        body = json.dumps(body_json).encode()
        headers.setdefault("Content-Type", "application/json")
    return spec.get("method", "GET"), path, headers, body


def shown(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= SHOWN_ANSWER_CHARS else text[:SHOWN_ANSWER_CHARS] + "..."


def json_pointer(document, pointer: str):
    """RFC 6901: "" is the whole document, "/a/0/b" walks objects and arrays ("~1" is "/", "~0" is "~")."""
    if pointer == "":
        return document
    node = document
    for part in pointer[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(pointer)
    return node


def extract(where: dict, raw: bytes):
    """The value at `where` ({"json": pointer} or {"regex": pattern, first group or the whole match}) in the
    answer body `raw`; an integer where it reads as one (a counter), else the text. ValueNotFound otherwise."""
    if "json" in where:
        try:
            value = json_pointer(json.loads(raw), where["json"])
        except ValueError:
            raise ValueNotFound(f"the answer is not JSON: {shown(raw)!r}") from None
        except KeyError:
            raise ValueNotFound(f"no {where['json']!r} in the answer: {shown(raw)!r}") from None
    else:
        match = re.search(where["regex"], raw.decode("utf-8", errors="replace"))
        if match is None:
            raise ValueNotFound(f"regex {where['regex']!r} does not match the answer: {shown(raw)!r}")
        value = match.group(1) if match.groups() else match.group(0)
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return value if not isinstance(value, (dict, list)) else json.dumps(value, sort_keys=True)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return value


def answer_fields(where: dict, status: int, raw: bytes) -> dict:
    """The history fields of an answer: its value, or the error (a value not found names the answer)."""
    if status < 200 or status >= 300:
        return {"error": f"HTTP {status}", "message": shown(raw)}
    try:
        return {"value": extract(where, raw)}
    except ValueNotFound as exc:
        return {"error": "value-not-found", "message": str(exc)}
