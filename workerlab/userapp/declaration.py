"""worker-lab.toml: the declaration beside a user's app - how to import it, what it needs, what to judge.

Read with the standard library's tomllib into dataclasses; every error names the file, the line where the
key stands (where it can be found) and the key, and a non-zero exit follows (DeclarationError). The
README's "Your own app" section shows a complete file; the schema is the dataclasses below.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.verdicts import MATRIX_WORDS

# The check kinds a user's endpoint may declare, and what each judges (the lab's own checkers).
CHECKS = {
    "counter": "every acknowledged increment counted; values distinct and in real-time order",
    "session": "each user's own sequence through its cookies: 1, 2, 3 ...",
    "isolation": "each answer carries the value its own request sent",
    "unique": "every answer's value distinct (ids, tokens)",
}
# Services the lab runs beside the app and the variable it fills in for each (workerlab/userapp/stack.py
# gives the URL). "postgres" comes with the PostgreSQL sidecar (branch postgres): DATABASE_URL.
SERVICES = {"redis": "REDIS_URL", "memcached": "MEMCACHED_SERVERS"}
PLANNED_SERVICES = {"postgres": "DATABASE_URL (the PostgreSQL sidecar is not in this version of the lab yet)"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SEND_IN = ("query", "header", "form", "json")
IMPORT_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*(\(.*\))?$")
VERDICT_WORDS = MATRIX_WORDS  # what an `expect` may name


class DeclarationError(ValueError):
    """A worker-lab.toml the lab cannot use; the message says where and why."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    check: str
    path: str
    value: dict  # {"json": pointer} | {"regex": pattern}
    method: str = "GET"
    query: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    form: dict = field(default_factory=dict)
    json: dict | None = None
    read: dict | None = None  # counter: {"path", "value"} read at rest
    send: dict | None = None  # isolation: {"in", "name"}
    login: dict | None = None  # session: one request first, as each user ({user} in its fields)
    owner: dict | None = None  # session: where the user's own name ({user}) comes back
    expect: dict = field(default_factory=dict)  # scenario -> verdict label: words of MATRIX_WORDS joined by +

    def request(self) -> dict:
        """The request spec the driver sends (loadtests/declared.py)."""
        spec = {"method": self.method, "path": self.path, "query": self.query, "headers": self.headers,
                "form": self.form, "json": self.json, "value": self.value, "send": self.send, "login": self.login,
                "owner": self.owner}
        return {k: v for k, v in spec.items() if v not in (None, {}, [])}


@dataclass(frozen=True)
class Declaration:
    path: Path  # the worker-lab.toml
    app_dir: Path  # the folder it sits in: the app's import root
    import_path: str  # "module:app" or "module:factory()"
    requirements: Path | None
    services: tuple[str, ...]
    env: dict
    endpoints: tuple[Endpoint, ...]
    health: str = "/"  # a GET that answers (any status) once the app is up
    served_by_header: str | None = None  # an answer header naming who served it, if the app sends one

    def endpoint(self, name: str) -> Endpoint:
        return next(e for e in self.endpoints if e.name == name)


# key -> (type, required); a dict type means a table, checked by its own schema where it has one
APP_KEYS = {"import": (str, True), "requirements": (str, False), "services": (list, False), "health": (str, False),
            "served_by_header": (str, False)}
ENDPOINT_KEYS = {"name": (str, True), "check": (str, True), "path": (str, True), "method": (str, False),
                 "json_pointer": (str, False), "regex": (str, False), "query": (dict, False),
                 "headers": (dict, False), "form": (dict, False), "json": (dict, False), "read": (str, False),
                 "read_json_pointer": (str, False), "read_regex": (str, False), "send": (dict, False),
                 "login": (dict, False), "owner_json_pointer": (str, False), "owner_regex": (str, False),
                 "expect": (dict, False)}
LOGIN_KEYS = {"method": (str, False), "path": (str, True), "query": (dict, False), "headers": (dict, False),
              "form": (dict, False), "json": (dict, False)}
SEND_KEYS = {"in": (str, True), "name": (str, True)}
TOP_KEYS = {"app": (dict, True), "env": (dict, False), "endpoint": (list, True)}


class _Reader:
    """Errors that name the file and the line of the key in question."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, key: str, table: str | None = None, index: int = 0) -> int | None:
        """The line where `key` is set inside the `index`-th [table] / [[table]] (or at the top)."""
        start, seen = 0, -1
        if table is not None:
            header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
            for number, line in enumerate(self.lines):
                if header.match(line):
                    seen += 1
                    if seen == index:
                        start = number
                        break
            else:
                return None
        key_line = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for number in range(start, len(self.lines)):
            line = self.lines[number]
            if number > start and table is not None and line.lstrip().startswith("["):
                break
            if key_line.match(line) or (table is not None and key == table and number == start):
                return number + 1
        return start + 1 if table is not None else None

    def error(self, message: str, key: str = "", table: str | None = None, index: int = 0) -> DeclarationError:
        line = self.line_of(key, table, index) if key else None
        where = f"{self.path}:{line}" if line else str(self.path)
        return DeclarationError(f"{where}: {message}")

    def check_keys(self, values: dict, schema: dict, what: str, table: str | None, index: int = 0) -> None:
        for key, value in values.items():
            if key not in schema:
                near = difflib.get_close_matches(key, schema, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else f" (known: {', '.join(schema)})"
                raise self.error(f"{what}: unknown key '{key}'{hint}", key, table, index)
            kind, _ = schema[key]
            if not isinstance(value, kind):
                raise self.error(f"{what}: '{key}' must be a {kind.__name__}, not {type(value).__name__}",
                                 key, table, index)
        for key, (_, required) in schema.items():
            if required and key not in values:
                raise self.error(f"{what}: missing '{key}'", table or key, table, index)


def _where(values: dict, json_key: str, regex_key: str) -> dict | None:
    if json_key in values:
        return {"json": values[json_key]}
    if regex_key in values:
        return {"regex": values[regex_key]}
    return None


def _endpoint(reader: _Reader, raw: dict, index: int, scenarios: list[str] | None) -> Endpoint:
    what = f"endpoint {raw.get('name') or index + 1}"

    def fail(message: str, key: str) -> DeclarationError:
        return reader.error(f"{what}: {message}", key, "endpoint", index)

    reader.check_keys(raw, ENDPOINT_KEYS, what, "endpoint", index)
    check = raw["check"]
    if check not in CHECKS:
        raise fail(f"unknown check '{check}'; one of: {', '.join(CHECKS)}", "check")
    method = raw.get("method", "GET").upper()
    if method not in METHODS:
        raise fail(f"method '{raw['method']}': one of {', '.join(METHODS)}", "method")
    for key in ("path", "read"):
        if key in raw and not raw[key].startswith("/"):
            raise fail(f"'{key}' must start with '/': {raw[key]!r}", key)
    if "json_pointer" in raw and "regex" in raw:
        raise fail("give either 'json_pointer' or 'regex', not both", "regex")
    value = _where(raw, "json_pointer", "regex")
    if value is None:
        raise fail("where is the value in the answer? give 'json_pointer' (e.g. \"/count\") or 'regex' "
                   "(its first group)", "name")
    for key, where in (("json_pointer", raw.get("json_pointer")), ("read_json_pointer", raw.get("read_json_pointer")),
                       ("owner_json_pointer", raw.get("owner_json_pointer"))):
        if where is not None and where != "" and not where.startswith("/"):
            raise fail(f"'{key}' is a JSON pointer: \"\" or starting with '/', not {where!r}", key)
    for key in ("regex", "read_regex", "owner_regex"):
        if key in raw:
            try:
                re.compile(raw[key])
            except re.error as exc:
                raise fail(f"'{key}' is not a regular expression: {exc}", key) from None
    kind_keys = {"read": "counter", "read_json_pointer": "counter", "read_regex": "counter", "send": "isolation",
                 "login": "session", "owner_json_pointer": "session", "owner_regex": "session"}
    for key, kind in kind_keys.items():
        if key in raw and check != kind:
            raise fail(f"'{key}' is for check = \"{kind}\", not \"{check}\"", key)
    read = None
    if "read" in raw:
        read = {"path": raw["read"], "value": _where(raw, "read_json_pointer", "read_regex") or value}
    send = raw.get("send")
    if check == "isolation":
        if send is None:
            raise fail("an isolation check sends a value: send = { in = \"query\", name = \"q\" }", "check")
        reader.check_keys(send, SEND_KEYS, f"{what}: send", "endpoint", index)
        if send["in"] not in SEND_IN:
            raise fail(f"send.in '{send['in']}': one of {', '.join(SEND_IN)}", "send")
    login = raw.get("login")
    if login is not None:
        reader.check_keys(login, LOGIN_KEYS, f"{what}: login", "endpoint", index)
        login = {**login, "method": login.get("method", "GET").upper()}
    expect = raw.get("expect", {})
    for scenario, label in expect.items():
        if scenarios is not None and scenario not in scenarios:
            raise fail(f"expect: unknown scenario '{scenario}'; scenarios: {', '.join(scenarios)}", "expect")
        unknown = [w for w in str(label).split("+") if w not in VERDICT_WORDS]
        if unknown:
            raise fail(f"expect.{scenario}: unknown verdict word(s) {', '.join(unknown)}; words: "
                       f"{', '.join(VERDICT_WORDS)} (joined with '+')", "expect")
    return Endpoint(name=raw["name"], check=check, path=raw["path"], value=value, method=method,
                    query=raw.get("query", {}), headers=raw.get("headers", {}), form=raw.get("form", {}),
                    json=raw.get("json"), read=read, send=send, login=login,
                    owner=_where(raw, "owner_json_pointer", "owner_regex"), expect=dict(expect))


def load(path: Path, scenarios: list[str] | None = None) -> Declaration:
    """Read and check `path`; `scenarios`: the names an `expect` may use (None: not checked)."""
    path = Path(path)
    if path.is_dir():
        path = path / "worker-lab.toml"
    try:
        text = path.read_text()
    except OSError as exc:
        raise DeclarationError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError(f"{path}: not valid TOML: {exc}") from None
    reader = _Reader(path, text)
    reader.check_keys(data, TOP_KEYS, "top level", None)
    app = data["app"]
    reader.check_keys(app, APP_KEYS, "[app]", "app")
    if not IMPORT_PATTERN.match(app["import"]):
        raise reader.error(f"[app]: import {app['import']!r}: write 'module:app' or 'module:create_app()'",
                           "import", "app")
    requirements = None
    if "requirements" in app:
        requirements = (path.parent / app["requirements"]).resolve()
        if not requirements.is_file():
            raise reader.error(f"[app]: requirements file {requirements} does not exist", "requirements", "app")
    services = tuple(app.get("services", []))
    for name in services:
        if name in PLANNED_SERVICES:
            raise reader.error(f"[app]: service '{name}' would fill {PLANNED_SERVICES[name]}", "services", "app")
        if name not in SERVICES:
            raise reader.error(f"[app]: unknown service {name!r}; the lab runs: {', '.join(SERVICES)}",
                               "services", "app")
    env = data.get("env", {})
    for key, value in env.items():
        if key in SERVICES.values() or key in ("PYTHONPATH",):
            raise reader.error(f"[env]: {key} is the lab's to set (from [app] services)", key, "env")
        if not isinstance(value, (str, int, float, bool)):
            raise reader.error(f"[env]: {key} must be a string or a number", key, "env")
    raw_endpoints = data["endpoint"]
    if not raw_endpoints or not all(isinstance(e, dict) for e in raw_endpoints):
        raise reader.error("declare endpoints as [[endpoint]] tables", "endpoint")
    endpoints = tuple(_endpoint(reader, raw, i, scenarios) for i, raw in enumerate(raw_endpoints))
    names = [e.name for e in endpoints]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise reader.error(f"endpoint name '{name}' is declared twice", "name", "endpoint", i)
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", name):
            raise reader.error(f"endpoint name '{name}': letters, digits, '-', '_' and '.' only", "name",
                               "endpoint", i)
    health = app.get("health", "/")
    if not health.startswith("/"):
        raise reader.error(f"[app]: health must start with '/': {health!r}", "health", "app")
    return Declaration(path=path.resolve(), app_dir=path.parent.resolve(), import_path=app["import"],
                       requirements=requirements, services=services,
                       env={k: str(v) for k, v in env.items()}, endpoints=endpoints, health=health,
                       served_by_header=app.get("served_by_header"))
