"""Per-user counters kept in the user's session.

``cookie-session``: Flask's default session, signed and sent back in a cookie -
travels with every request, per user by construction, limited to about 4 KB.
``cookie-session-big``: the same, with every request adding 2048 bytes (hex), to show
what happens past the limit (a browser ignores a cookie whose name + value is
over 4096 bytes and keeps sending the old one, so the user's state silently
stops advancing; the load generator applies the same rule, checked against
Chromium in tests/browser).
``server-session-redis`` / ``server-session-fs``: Flask-Session keeps the data in
redis or a folder and only an id in the cookie. Per user, but two concurrent
requests of the *same* user both read, both write: the last write wins.
"""

from __future__ import annotations

import secrets

from flask import session

from .base import SessionStrategy

PAD_PER_REQUEST = 2048  # the cookie passes 4 KB at the 3rd request: seen even in a cell cut short by its time limit


class SessionCounter(SessionStrategy):
    def incr(self, client):
        session.setdefault("owner", client)
        value = int(session.get("n", 0))
        self.window()
        session["n"] = value + 1
        return {"value": value + 1, "owner": session["owner"]}

    def read(self):
        return {"value": int(session.get("n", 0)), "owner": session.get("owner")}


class GrowingCookieSession(SessionCounter):
    def incr(self, client):
        # Random bytes: Flask compresses the cookie, and repeated characters would hide the growth.
        session["pad"] = session.get("pad", "") + secrets.token_hex(PAD_PER_REQUEST // 2)
        answer = super().incr(client)
        answer["session_bytes"] = len(session["pad"])
        return answer


STRATEGIES = [
    SessionCounter("cookie-session", "session", "Flask's signed cookie session", question=7,
        lives="session", updates="per-user", store="the user's signed cookie"),
    GrowingCookieSession(
        "cookie-session-big", "session", f"cookie session growing {PAD_PER_REQUEST} B per request", question=7,
        lives="session", updates="per-user", store="the user's signed cookie"),
    SessionCounter("server-session-redis", "session", "Flask-Session, redis backend", ("redis",), question=7,
        lives="session", updates="per-user", store="redis"),
    SessionCounter("server-session-fs", "session", "Flask-Session, filesystem (cachelib) backend", question=7,
        lives="session", updates="per-user", store="session files", host_files="session folder"),
    SessionCounter(
        "server-session-redis-same-user",
        "same-user",
        "Flask-Session (redis), concurrent requests of one user",
        ("redis",),
        question=7,
        lives="session", updates="shared", store="redis"),
    SessionCounter(
        "server-session-fs-same-user", "same-user", "Flask-Session (files), concurrent requests of one user",
        question=7,
        lives="session", updates="shared", store="session files", host_files="session folder"),
]
