"""worker-lab's locust scenarios: one user class per kind of check.

Run by the lab's driver (loadtests/driver.py) cell after cell, or by hand:

    LAB_STRATEGY=naive-global locust -f loadtests/locustfile.py --host http://127.0.0.1:8080

Every request is recorded through locust's ``events.request`` hook as a history
entry (see history.py): who asked, when, what came back, who served it.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import secrets
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from locust import User, constant, events, task
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING

try:  # `locust -f loadtests/locustfile.py` loads this file outside the package, with its folder on sys.path
    from . import declared
    from .arrivals import Schedule
    from .protocol import USER_CLASS_NAMES
    from .wire import WireClient, browser_keeps
except ImportError:
    import declared
    from arrivals import Schedule
    from protocol import USER_CLASS_NAMES
    from wire import WireClient, browser_keeps

def set_cookie_of(response) -> str | None:
    """The Set-Cookie header of a locust response (None when there is no answer or no such header)."""
    return response.headers.get("Set-Cookie") if response is not None and response.headers else None


class NoSessionCookie(RuntimeError):
    """The same-user set-up request got no session cookie back."""


def shared_session_cookie(response) -> str:
    """The ``name=value`` of the session cookie the same-user set-up request got back.

    Every user of a same-user cell sends this one cookie. Without it each would get a session of its
    own, which a counter check would also read as lost updates: no cookie is an error, never a verdict.
    """
    set_cookie = set_cookie_of(response)
    if not set_cookie:
        status = getattr(response, "status_code", 0)
        raise NoSessionCookie(
            f"same-user set-up: the request as user 'shared' got no session cookie "
            f"({f'HTTP {status}' if status else 'no answer'}); without it every user would get a session of its own"
        )
    return set_cookie.split(";", 1)[0].strip()


class Budget:
    """How many requests a cell may send; None means unbounded (interactive use).

    ``held`` (faults): while it returns True the budget is not spent - the load goes on past ``total`` until
    the fault has run its course (a killed worker's replacement has served), however long the machine takes.
    """

    def __init__(self, total: int | None, held: Callable[[], bool] | None = None):
        self.total = total
        self.issued = 0
        self.held = held

    def holding(self) -> bool:
        return self.held is not None and self.held()

    def take(self) -> bool:
        if self.total is not None and self.issued >= self.total and not self.holding():
            return False
        self.issued += 1
        return True


class Recorder:
    """Collects history entries; cheap appends, written out once per cell."""

    def __init__(self):
        self.entries: list[dict] = []
        self.load_count = 0
        self.t0 = time.monotonic()
        self.req_ids = itertools.count()
        self.enabled = True
        self.load_ok = 0  # load-phase answers with status 200, counted even when not recording (bench)
        self.unanswered = 0  # requests still in flight when the cell ended (recorded as errors)

    def reset(self) -> None:
        self.entries = []
        self.load_count = 0
        self.load_ok = 0
        self.unanswered = 0
        self.t0 = time.monotonic()
        self.req_ids = itertools.count()

    def now(self) -> float:
        return time.monotonic() - self.t0


RECORDER = Recorder()


class Cell:
    """What the current cell exercises; the driver sets it, or LAB_* variables do for plain locust."""

    strategy = os.environ.get("LAB_STRATEGY", "naive-global")
    key = os.environ.get("LAB_KEY") or f"manual-{secrets.token_hex(4)}"
    budget = Budget(int(os.environ["LAB_REQUESTS"]) if os.environ.get("LAB_REQUESTS") else None)
    per_user = int(os.environ.get("LAB_PER_USER", "20"))
    shared_cookie: str | None = None
    clients = itertools.count()
    # A locust worker's name and "-" (set where workers run: loadtests/distributed.py, webui.py): a user id is what
    # the server keys a user's state by, so it must be unique across workers - two workers' u0 would be one user.
    client_prefix = ""
    path = os.environ.get("LAB_PATH", "/hello")  # what PathUser requests (the bench's plain-throughput cell)
    schedule: Schedule | None = None  # fixed-rate load: each request waits for its scheduled start
    # A user's declared endpoint (loadtests/declared.py): the request, where its value is, the read at rest.
    request: dict | None = None
    read: dict | None = None
    baseline = 0  # a declared counter's value before the load (subtracted: values count from 1)
    served_by_header: str | None = None  # a declared app's header naming who served (else not known)


def answer_body(op: str, status: int, headers, raw: bytes) -> dict | None:
    """What an answer says, as the history's fields: the lab's app answers JSON with them; a declared
    endpoint's value is where its declaration says (a counter's shifted by its baseline)."""
    if Cell.request is None:
        try:
            body = json.loads(raw)
        except ValueError:  # a body that is not JSON is itself the evidence
            return None
        return body if isinstance(body, dict) else None
    if op == "login":  # a session's login step: only whether it succeeded
        return {} if 200 <= status < 300 else {"error": f"HTTP {status}", "message": declared.shown(raw)}
    spec = Cell.read if op == "read" and Cell.read else Cell.request
    fields = declared.answer_fields(spec["value"], status, raw)
    if spec.get("owner") and "value" in fields:
        try:
            fields["owner"] = declared.extract(spec["owner"], raw)
        except declared.ValueNotFound:
            pass  # no owner in this answer: the session check counts it as another user's
    if isinstance(fields.get("value"), int) and Cell.baseline and op in ("incr", "read"):
        fields["value"] -= Cell.baseline
    served_by = headers.get(Cell.served_by_header) if Cell.served_by_header and headers else None
    if served_by:
        fields["instance"] = served_by
    return fields


class Unanswered(Exception):
    """A request still in flight when its cell ended (time limit): sent, never answered."""


def make_entry(lab: dict, status: int, body, exception: BaseException | None = None) -> dict:
    """A history entry from what was sent (``lab``) and what came back."""
    entry = dict(lab)
    entry["complete"] = RECORDER.now()
    entry["status"] = status
    if isinstance(body, dict):
        for field in ("value", "owner", "pid", "tid", "greenlet", "instance", "worker_class"):
            if field in body:
                entry[field] = body[field]
        if "error" in body:
            entry["error"] = f"{body.get('error')}: {body.get('message', '')}"
    if exception is not None and "error" not in entry:
        entry["error"] = f"{type(exception).__name__}: {exception}"[:300]
    elif not 200 <= status < 300 and "error" not in entry:
        entry["error"] = f"HTTP {status}"
    return entry


def add_entry(entry: dict) -> None:
    RECORDER.entries.append(entry)
    if entry["phase"] == "load":
        RECORDER.load_count += 1
        if 200 <= entry["status"] < 300:
            RECORDER.load_ok += 1


def read_at_rest(instance_url: str, path: str, headers: dict, client: str) -> None:
    """One quiescent read on a fresh connection, straight to an app instance (phase 'final').

    Used by the driver and by the web UI's Verdict tab after the load has stopped.
    """
    lab = {"client": client, "req": next(RECORDER.req_ids), "op": "read", "phase": "final",
           "invoke": RECORDER.now()}
    parsed = urlsplit(instance_url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        conn.request("GET", path, headers={**headers, "Connection": "close"})
        response = conn.getresponse()
        add_entry(make_entry(lab, response.status, answer_body("read", response.status, response.headers,
                                                              response.read())))
    except OSError as exc:
        add_entry(make_entry(lab, 0, None, exc))
    finally:
        conn.close()


@events.request.add_listener
def record(request_type, name, response_time, response_length, response=None, context=None, exception=None, **_):
    lab = (context or {}).get("lab")
    if lab is None:
        return
    status = getattr(response, "status_code", 0) or 0
    if not RECORDER.enabled:
        # Measuring the cost of recording (workerlab bench, cell "record": false): count the
        # request so the driver still stops at its budget, but parse and keep nothing.
        if lab["phase"] == "load":
            RECORDER.load_count += 1
            RECORDER.load_ok += 200 <= status < 300
        lab["recorded"] = True
        return
    body = None
    if response is not None and status:
        body = answer_body(lab["op"], status, response.headers, response.content or b"")
    # An answered request's error is its status or its body's, not the client's FailedStatus.
    add_entry(make_entry(lab, status, body, None if status else exception))
    lab["recorded"] = True  # (after make_entry copied it) LabUser.send: this request is accounted for


class LabUser(User):
    """A locust user with the lab's own HTTP client (loadtests/wire.py: a keep-alive connection of its own,
    a fraction of FastHttpUser's CPU per request) and its recording."""

    abstract = True
    wait_time = constant(0)
    # Short timeouts bound every cell.
    network_timeout = 30.0
    connection_timeout = 5.0

    def __init__(self, environment):
        super().__init__(environment)
        if not self.host:
            raise ValueError("no host to send to: set the user class's host or pass --host")
        self.client = WireClient(self.host, environment.events.request, connect_timeout=self.connection_timeout,
                                 network_timeout=self.network_timeout)

    def on_start(self):
        self.client_id = f"{Cell.client_prefix}u{next(Cell.clients)}"

    def stop(self, force: bool = False):
        """A graceful stop (``force=False``: locust's ``--stop-timeout``) never cuts a request in flight.

        locust kills a user it finds waiting between tasks - but with ``wait_time`` 0 that wait is a
        ``gevent.sleep(0)`` whose wake-up is already queued ahead of the kill: the user wakes, sends its next
        request, and the kill lands on that request (recorded as unanswered, a ``no-answer`` verdict on a
        clean run). Marked stopping instead, the user stops at the end of its wait, before sending anything.
        A forced stop (the driver's ``runner.quit()``, a time limit) still kills at once.
        """
        if not force and self._state in (LOCUST_STATE_WAITING, LOCUST_STATE_STOPPING):
            self._state = LOCUST_STATE_STOPPING  # TaskSet.wait() raises StopUser once the sleep returns
            return False
        return super().stop(force)

    def send(self, op: str, path: str, sent: str | None = None, headers: dict | None = None, phase: str = "load",
             method: str = "GET", body: bytes | None = None):
        lab = {"client": self.client_id, "req": next(RECORDER.req_ids), "op": op, "phase": phase,
               "invoke": RECORDER.now()}
        if sent is not None:
            lab["sent"] = sent
        if self.scheduled is not None:  # latency counts from here (corrected for coordinated omission)
            lab["scheduled"], self.scheduled = self.scheduled, None
            Cell.schedule.started(lab["scheduled"], lab["invoke"])
        try:
            return self.client.request(method, path, name=f"{Cell.strategy}/{op}", headers=headers, data=body,
                                       context={"lab": lab})
        finally:
            if "recorded" not in lab:  # cut off (the cell ended, its greenlet killed): sent and never answered
                RECORDER.unanswered += 1
                if RECORDER.enabled:
                    entry = make_entry(lab, 0, None, Unanswered("in flight when the cell ended"))
                    entry["unanswered"] = True
                    add_entry(entry)

    scheduled: float | None = None  # the scheduled start of the request about to be sent (fixed-rate load)

    def take_or_stop(self) -> None:
        if not Cell.budget.take():
            raise StopUser()
        if Cell.schedule is not None:
            slot = Cell.schedule.take()
            if slot is None:
                raise StopUser()
            wait = slot - RECORDER.now()
            if wait > 0:
                time.sleep(wait)  # gevent's: the other users go on meanwhile
            self.scheduled = slot


class CounterUser(LabUser):
    """Shared counter: every request increments one key; values must be unique and none lost."""

    @task
    def increment(self):
        self.take_or_stop()
        self.send("incr", f"/s/{Cell.strategy}/incr?key={Cell.key}")


class SameUserUser(LabUser):
    """Many concurrent users carrying one session cookie: one user, many tabs."""

    def on_start(self):
        super().on_start()
        self.client.cookies = None  # the shared cookie is sent by hand

    @task
    def increment(self):
        self.take_or_stop()
        headers = {"Cookie": Cell.shared_cookie} if Cell.shared_cookie else None
        self.send("incr", f"/s/{Cell.strategy}/incr?client=shared", headers=headers)


class SessionUser(LabUser):
    """One user, one session, requests one after another; keeps cookies the way a browser does."""

    def on_start(self):
        super().on_start()
        self.client.cookies = None
        self.cookie: str | None = None
        self.done = 0

    @task
    def increment(self):
        if self.done >= Cell.per_user:
            raise StopUser()
        self.take_or_stop()
        self.done += 1
        headers = {"Cookie": self.cookie} if self.cookie else None
        response = self.send("incr", f"/s/{Cell.strategy}/incr?client={self.client_id}", headers=headers)
        self.cookie = browser_keeps(set_cookie_of(response)) or self.cookie


class IsolationUser(LabUser):
    """Every request sends its own token and must get that token back."""

    @task
    def echo(self):
        self.take_or_stop()
        token = f"{self.client_id}-{secrets.token_hex(6)}"
        self.send("echo", f"/s/{Cell.strategy}/echo?token={token}", sent=token)


class NonceUser(IsolationUser):
    """The same requests as IsolationUser; the token is a nonce the server writes to a store under a key of its
    own and reads back, and the judge looks for answers that belong to another request (crossed)."""


class PathUser(LabUser):
    """Plain throughput: GET one fixed path (``Cell.path``, /hello by default); nothing is checked.

    Used by ``workerlab bench`` to compare the lab's measurement with wrk's on the same URL.
    """

    @task
    def get(self):
        self.take_or_stop()
        self.send("get", Cell.path)


class DeclaredBase(LabUser):
    """A user's declared endpoint: sends its declared request (locust collects every @task a class inherits,
    so the tasks are on the leaf classes only)."""

    abstract = True
    op = "incr"

    def send_declared(self, headers: dict | None = None):
        token = f"{self.client_id}-{secrets.token_hex(6)}" if Cell.request.get("send") else None
        method, path, declared_headers, body = declared.build(Cell.request, self.client_id, token or "")
        return self.send(self.op, path, sent=token, headers={**declared_headers, **(headers or {})} or None,
                         method=method, body=body)


class DeclaredUser(DeclaredBase):
    """A declared counter or unique endpoint: its request, as fast as answers come."""

    @task
    def request(self):
        self.take_or_stop()
        self.send_declared()


class DeclaredIsolationUser(DeclaredUser):
    """A declared isolation endpoint: each request carries its own token where the declaration puts it."""

    op = "echo"


class DeclaredSessionUser(DeclaredBase):
    """A declared session endpoint: one user, its cookies kept as a browser keeps them, a login step first
    (when declared; not judged), then its requests one after another."""

    def on_start(self):
        super().on_start()
        self.client.cookies = None
        self.cookie: str | None = None
        self.done = 0
        login = Cell.request.get("login")
        if login:
            method, path, headers, body = declared.build(login, self.client_id)
            self.keep_cookie(self.send("login", path, headers=headers or None, phase="setup", method=method,
                                       body=body))

    def keep_cookie(self, response) -> None:
        self.cookie = browser_keeps(set_cookie_of(response)) or self.cookie

    @task
    def request(self):
        if self.done >= Cell.per_user:
            raise StopUser()
        self.take_or_stop()
        self.done += 1
        self.keep_cookie(self.send_declared({"Cookie": self.cookie} if self.cookie else None))


USER_CLASSES = {check: globals()[name] for check, name in USER_CLASS_NAMES.items()}
DECLARED_USER_CLASSES = {"counter": DeclaredUser, "unique": DeclaredUser, "isolation": DeclaredIsolationUser,
                         "session": DeclaredSessionUser}

try:  # the live "Verdict" tab of locust's web UI (loadtests/webui.py); `locust -f` loads this file outside the package
    from . import webui  # noqa: E402,F401
except ImportError:
    import webui  # noqa: E402,F401
