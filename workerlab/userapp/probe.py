"""The start-up check of a declaration against a running app: every declared request once, as the load will
send it, with the same extraction - so a path that does not answer 2xx, or a value that is not where the
declaration says, is a clear error (with the answer shown) before any load, never a matrix of errors."""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.request

from loadtests import declared

from .declaration import Declaration, Endpoint

TIMEOUT_S = 10.0


class ProbeError(RuntimeError):
    """A declared endpoint does not answer as declared; the message shows what came back."""


def _send(opener, base: str, spec: dict, endpoint: Endpoint, what: str) -> bytes:
    method, path, headers, body = declared.build(spec, "probe", "probe-token")
    request = urllib.request.Request(base + path, data=body, headers=headers, method=method)
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise ProbeError(f"endpoint '{endpoint.name}': {what} {method} {path} answered HTTP {exc.code}, not 2xx: "
                         f"{declared.shown(exc.read())!r}") from None
    except OSError as exc:
        raise ProbeError(f"endpoint '{endpoint.name}': {what} {method} {path} got no answer: {exc}") from None


def _value(endpoint: Endpoint, where: dict, raw: bytes, what: str):
    try:
        return declared.extract(where, raw)
    except declared.ValueNotFound as exc:
        raise ProbeError(f"endpoint '{endpoint.name}': {what}: {exc}") from None


def probe(base: str, declaration: Declaration, counters: bool = True) -> dict[str, object]:
    """Each endpoint's value in one answer (its read's, for a counter that has one). `counters=False` sends a
    counter's increment only where it has no read (a deployment: the load's own first answers tell)."""
    values = {}
    for endpoint in declaration.endpoints:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        spec = endpoint.request()
        if endpoint.login:
            _send(opener, base, endpoint.login, endpoint, "login")
        if counters or not endpoint.read:
            value = _value(endpoint, endpoint.value, _send(opener, base, spec, endpoint, "request"), "the answer")
            if endpoint.check == "isolation" and value != "probe-token":
                raise ProbeError(f"endpoint '{endpoint.name}': sent 'probe-token' in {endpoint.send['in']} "
                                 f"'{endpoint.send['name']}' and read back {value!r} at the declared place")
            if endpoint.check in ("counter", "session") and not isinstance(value, int):
                raise ProbeError(f"endpoint '{endpoint.name}': a {endpoint.check} check needs an integer there, "
                                 f"found {value!r}")
            values[endpoint.name] = value
        if endpoint.read:
            read = _value(endpoint, endpoint.read["value"],
                          _send(opener, base, {"path": endpoint.read["path"]}, endpoint, "read"), "the read")
            if not isinstance(read, int):
                raise ProbeError(f"endpoint '{endpoint.name}': the read finds {read!r}, not an integer")
            values[endpoint.name] = read
    return values
