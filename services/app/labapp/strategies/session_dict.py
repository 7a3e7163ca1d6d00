"""A module-level dict keyed by session id, with expiry of idle entries.

The session id is a random value kept in Flask's cookie session. Single dict
operations are atomic under the GIL, so one process serves each user right;
but every process has its own dict, so a user whose requests reach several
processes sees several counters. Idle entries expire so the dict does not grow
forever.
"""

from __future__ import annotations

import secrets
import time

from flask import session

from .base import SessionStrategy


class SessionDict(SessionStrategy):
    entries: dict[str, dict] = {}
    _last_sweep = 0.0

    def _sweep(self, now: float) -> None:
        ttl = self.res.settings.session_dict_ttl
        if now - self._last_sweep < min(ttl, 10.0):
            return
        type(self)._last_sweep = now
        for sid, entry in list(self.entries.items()):
            if now - entry["seen"] > ttl:
                self.entries.pop(sid, None)

    def _entry(self, client: str | None) -> dict:
        now = time.monotonic()
        self._sweep(now)
        sid = session.get("sid")
        if sid is None:
            sid = session["sid"] = secrets.token_urlsafe(16)
        entry = self.entries.get(sid)
        if entry is None:
            entry = self.entries.setdefault(sid, {"n": 0, "owner": client, "seen": now})
        entry["seen"] = now
        return entry

    def incr(self, client):
        entry = self._entry(client)
        entry["n"] += 1  # one user's requests come one at a time
        return {"value": entry["n"], "owner": entry["owner"], "dict_size": len(self.entries)}

    def read(self):
        entry = self._entry(None)
        return {"value": entry["n"], "owner": entry["owner"], "dict_size": len(self.entries)}


STRATEGIES = [SessionDict("session-dict", "session", "module dict keyed by session id, with expiry", question=8,
        lives="process", updates="per-user")]
