"""Hostile input against a real gunicorn stack: every endpoint fuzzed from the app's own OpenAPI description.

schemathesis generates requests from /openapi.json with a fixed budget (FUZZ_EXAMPLES per
operation, derandomized, plus its deterministic coverage cases): valid ones, and in negative
mode everything the description rules out - malformed and huge parameters, bad or forged
session cookies. The app must answer each with JSON and never a 500; afterwards no worker
has crashed or been replaced and the users who had state before still have it intact. The
named cases below are the ones not left to chance: forged cookies and session ids,
oversized cookies, planted pickles.
"""

from __future__ import annotations

import base64
import json
import pickle
import secrets
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from labapp.openapi import describe
from schemathesis import GenerationMode

pytestmark = pytest.mark.stack

FUZZ_EXAMPLES = 100
MAX_TOKEN = 200  # labapp.factory.MAX_TOKEN
TIMEOUT = 10

schema = schemathesis.openapi.from_dict(describe(max_token=MAX_TOKEN))
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
schema = schema.exclude(path="/error")  # answers 500 on purpose
SENT: dict[str, int] = {}  # fuzzed requests by generation mode


def is_json(response) -> bool:
    headers = {k.lower(): v for k, v in response.headers.items()}
    value = headers.get("content-type") or ""
    if isinstance(value, list):  # schemathesis' responses keep every value of a header
        value = value[0] if value else ""
    return value.startswith("application/json")


class Victims:
    """State that users had before the fuzzing, checked again after it."""

    def __init__(self, url: str):
        self.url = url
        self.key = f"victim-{secrets.token_hex(8)}"
        self.cookies: dict[str, requests.Session] = {}

    def setup(self) -> None:
        for strategy in ("redis-incr", "sql-update", "memcached-incr", "mp-manager", "postgres-update"):
            for _ in range(5):
                assert requests.get(f"{self.url}/s/{strategy}/incr", params={"key": self.key},
                                    timeout=TIMEOUT).status_code == 200
        for strategy in ("cookie-session", "server-session-redis", "server-session-fs"):
            session = self.cookies[strategy] = requests.Session()
            for n in range(1, 4):
                r = session.get(f"{self.url}/s/{strategy}/incr", params={"client": "victim"}, timeout=TIMEOUT)
                assert r.status_code == 200 and r.json()["value"] == n, r.text

    def check(self) -> None:
        for strategy in ("redis-incr", "sql-update", "memcached-incr", "mp-manager", "postgres-update"):
            r = requests.get(f"{self.url}/s/{strategy}/read", params={"key": self.key}, timeout=TIMEOUT)
            assert r.status_code == 200 and r.json()["value"] == 5, (strategy, r.text)
        for strategy, session in self.cookies.items():
            r = session.get(f"{self.url}/s/{strategy}/incr", params={"client": "victim"}, timeout=TIMEOUT)
            assert r.status_code == 200, r.text
            assert (r.json()["value"], r.json()["owner"]) == (4, "victim"), (strategy, r.json())


@pytest.fixture(scope="module")
def app_url(gthread_stack):
    return gthread_stack.instance_urls[0]


@pytest.fixture(scope="module")
def before(gthread_stack, app_url):
    """Worker pids and victims' state, taken once before any hostile request."""
    victims = Victims(app_url)
    victims.setup()
    return {"workers": set(gthread_stack.app_worker_pids(0)), "victims": victims}


def test_served_description_is_the_one_fuzzed(app_url, before):
    served = requests.get(f"{app_url}/openapi.json", timeout=TIMEOUT).json()
    assert served == json.loads(json.dumps(describe(max_token=MAX_TOKEN)))
    assert {"/s/{name}/incr", "/s/{name}/read", "/s/{name}/echo", "/health"} <= set(served["paths"])


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz_every_endpoint(case, app_url, before):
    meta = getattr(case, "_meta", None)
    mode = str(meta.generation.mode) if meta is not None else "?"
    SENT[mode] = SENT.get(mode, 0) + 1
    response = case.call(base_url=app_url, timeout=TIMEOUT)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code} {response.text}"
    if case.method in ("OPTIONS", "HEAD"):  # Flask answers these itself, with no body
        assert response.status_code in (200, 405) and not response.text
        return
    assert is_json(response), f"not JSON: {case.method} {response.status_code} {response.text[:200]}"
    if response.status_code >= 400:
        body = response.json()
        assert body["error"] and body["message"], body
    assert "Traceback" not in response.text


# -- named hostile cases -------------------------------------------------------------------------

def get(url: str, path: str, **kwargs) -> requests.Response:
    return requests.get(f"{url}{path}", timeout=TIMEOUT, **kwargs)


def forged_cookie_session() -> str:
    """Looks like Flask's signed cookie (payload.timestamp.signature), signed with the wrong key."""
    payload = base64.urlsafe_b64encode(json.dumps({"owner": "admin", "n": 10**9}).encode()).decode().rstrip("=")
    return f"{payload}.ZZZZZZ.{secrets.token_urlsafe(20)}"


@pytest.mark.parametrize("cookie", [forged_cookie_session(), "garbage", ".eJyrVkrOz0tLTS4pSlWyUkpKTVGqBQA=.x.y",
                                    "a" * 4096], ids=["forged-signature", "garbage", "compressed-unsigned", "4096"])
def test_bad_or_forged_cookie_session_is_a_fresh_session(app_url, before, cookie):
    r = get(app_url, "/s/cookie-session/incr", params={"client": "mallory"}, headers={"Cookie": f"session={cookie}"})
    assert r.status_code == 200 and is_json(r)
    assert (r.json()["value"], r.json()["owner"]) == (1, "mallory")  # nothing of the forged payload was believed


@pytest.mark.parametrize("strategy", ["server-session-redis", "server-session-fs"])
@pytest.mark.parametrize("sid", ["made-up-session-id", "x" * 4000, "../../../../etc/passwd", "a;b=c", "%00%ff",
                                 "lab:counter:victim"],
                         ids=["made-up", "4000-chars", "path-traversal", "separator", "percent-bytes", "other-key"])
def test_forged_flask_session_id_gets_a_new_id(app_url, before, strategy, sid):
    r = get(app_url, f"/s/{strategy}/incr", params={"client": "mallory"}, headers={"Cookie": f'session="{sid}"'})
    assert r.status_code == 200 and is_json(r), r.text
    assert (r.json()["value"], r.json()["owner"]) == (1, "mallory")
    issued = r.cookies.get("session")
    assert issued and issued != sid  # the server never adopts an id it did not make (no fixation)


def test_oversized_session_cookie_is_a_json_400(app_url, before):
    for path in ("/s/cookie-session/incr?client=a", "/s/server-session-redis/incr?client=a", "/hello"):
        r = get(app_url, path, headers={"Cookie": "session=" + "A" * 5000})
        assert r.status_code == 400 and is_json(r), (path, r.status_code, r.text[:200])
        assert "session cookie" in r.json()["message"]


@pytest.mark.parametrize("params", [
    {"key": "k" * 3000}, {"key": "a b"}, {"key": "\x00"}, {"key": "é"}, {"key": ""}, {"client": "x" * 101},
    {"key": "../../etc"}, {"key": "'; DROP TABLE counters;--", "client": "'; DROP TABLE counters;--"},
], ids=["3000-chars", "space", "nul", "non-ascii", "empty", "101-chars", "traversal", "sql"])
def test_malformed_parameters_are_json_400(app_url, before, params):
    for strategy in ("sql-update", "server-session-fs", "memcached-incr"):
        r = get(app_url, f"/s/{strategy}/incr", params=params)
        assert r.status_code == 400 and is_json(r), (strategy, params, r.status_code, r.text[:200])


def test_raw_invalid_utf8_query_is_a_json_400(app_url, before):
    r = get(app_url, "/s/redis-incr/incr?key=%ff%fe%00")
    assert r.status_code == 400 and is_json(r)


def test_unknown_strategy_and_wrong_method_are_json(app_url, before):
    assert get(app_url, "/s/no-such-thing/incr", params={"key": "k"}).status_code == 400
    assert get(app_url, "/s/iso-request/incr", params={"key": "k"}).status_code == 400
    r = requests.post(f"{app_url}/s/naive-global/incr?key=k", data=b"x" * 10_000, timeout=TIMEOUT)
    assert r.status_code == 405 and is_json(r)
    r = get(app_url, "/nope")
    assert r.status_code == 404 and is_json(r)


def test_past_the_servers_limits_is_a_4xx_from_the_server_and_nothing_dies(gthread_stack, app_url, before):
    """Past gunicorn's limits (request line 4094 B, header 8190 B) gunicorn answers itself, with a
    plain-text 400; through nginx (8 KB header buffers) nginx does, with its own page. No JSON there -
    the app never sees the request - but a 4xx, and every worker lives."""
    for url in (app_url, gthread_stack.url):
        r = get(url, "/s/redis-incr/incr", params={"key": "k" * 9000})
        assert 400 <= r.status_code < 500, (url, r.status_code)
        r = get(url, "/hello", headers={"Cookie": "session=" + "A" * 9000})
        assert 400 <= r.status_code < 500, (url, r.status_code)
    assert get(app_url, "/health").status_code == 200


def _pickle_bomb(marker: Path) -> bytes:
    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # unpickling creates the marker file

    return pickle.dumps(Bomb())


def test_server_sessions_never_unpickle_what_is_stored(gthread_stack, app_url, before, tmp_path):
    """Plant a pickle where a session's data lives - as someone who can write to redis or the
    session folder could - and ask for that session: the app must treat it as no session."""
    import hashlib

    import redis as redis_lib

    marker_redis = tmp_path / "unpickled-from-redis"
    sid = "planted-" + secrets.token_hex(8)
    client = redis_lib.Redis(port=gthread_stack.ports["redis"])
    client.set(f"lab:session:{sid}", _pickle_bomb(marker_redis))
    r = get(app_url, "/s/server-session-redis/incr", params={"client": "x"}, headers={"Cookie": f"session={sid}"})
    assert r.status_code == 200 and r.json()["value"] == 1
    assert not marker_redis.exists(), "Flask-Session unpickled data from redis"

    marker_fs = tmp_path / "unpickled-from-file"
    sid = "planted-" + secrets.token_hex(8)
    folder = gthread_stack.run_dir / "data" / "flask-session"
    name = hashlib.sha256(f"lab:session:{sid}".encode()).hexdigest()
    (folder / name).write_bytes(b"\x00\x00\x00\x00" + _pickle_bomb(marker_fs))  # no expiry, then the payload
    r = get(app_url, "/s/server-session-fs/incr", params={"client": "x"}, headers={"Cookie": f"session={sid}"})
    assert r.status_code == 200 and r.json()["value"] == 1
    assert not marker_fs.exists(), "cachelib unpickled a session file"

    # What the stores hold is data: msgpack in redis, JSON in the session files.
    stored = [v for k in client.scan_iter("lab:session:*") if not k.decode().endswith(sid)
              for v in [client.get(k)] if v and not v.startswith(b"\x80")]
    assert stored, "no msgpack session found in redis"
    files = [p for p in folder.iterdir() if p.name != name and p.stat().st_size > 4]
    assert any(p.read_bytes()[4:5] == b"{" for p in files)


def test_after_the_hostile_requests_no_worker_died_and_state_is_intact(gthread_stack, app_url, before):
    print(f"fuzzed requests by mode: {SENT}")
    if SENT:  # the fuzz test ran in this session
        assert SENT.get("negative", 0) >= 50 and SENT.get("positive", 0) >= 50, SENT
    assert set(gthread_stack.app_worker_pids(0)) == before["workers"], "a worker crashed or was replaced"
    before["victims"].check()
    log = (gthread_stack.run_dir / "logs" / "app-i1.log").read_text(errors="replace")
    for sign in ("Traceback", "WORKER TIMEOUT", "unexpected error", "was sent SIGKILL", "Worker exiting"):
        assert sign not in log, f"{sign!r} in the app log:\n{log[-3000:]}"
