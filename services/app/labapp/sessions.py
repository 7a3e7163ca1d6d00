"""One app, three session stores: pick the session interface by URL.

Flask has one session interface per app; the lab needs the signed-cookie
session and two Flask-Session stores side by side, so this interface hands each
request to the store its strategy names. Server-side stores serialize with
msgpack (Flask-Session's default), so nothing a client sends is unpickled.
"""

from __future__ import annotations

import os

from flask import request
from flask.sessions import SecureCookieSessionInterface, SessionInterface


class SessionDispatch(SessionInterface):
    def __init__(self, default: SessionInterface, by_prefix: dict[str, SessionInterface]):
        self.default = default
        self.by_prefix = by_prefix

    def _pick(self, path: str) -> SessionInterface:
        for prefix, interface in self.by_prefix.items():
            if path.startswith(prefix):
                return interface
        return self.default

    def open_session(self, app, request_):
        return self._pick(request_.path).open_session(app, request_)

    def save_session(self, app, session, response):
        return self._pick(request.path).save_session(app, session, response)

    def is_null_session(self, obj):
        return self.default.is_null_session(obj)


class LazyRedisSessionInterface(SessionInterface):
    """Flask-Session's redis interface, built on first use so a missing redis is a 503, not a crash."""

    def __init__(self, app, res):
        self.app = app
        self.res = res
        self._inner = None

    def _interface(self):
        if self._inner is None:
            from flask_session.redis import RedisSessionInterface

            self._inner = RedisSessionInterface(self.app, client=self.res.redis, key_prefix="lab:session:")
        return self._inner

    def open_session(self, app, request_):
        return self._interface().open_session(app, request_)

    def save_session(self, app, session, response):
        return self._interface().save_session(app, session, response)


def install(app, res) -> None:
    from cachelib.file import FileSystemCache
    from flask_session.cachelib import CacheLibSessionInterface

    files = FileSystemCache(os.path.join(res.settings.data_dir, "flask-session"), threshold=100_000)
    app.session_interface = SessionDispatch(
        SecureCookieSessionInterface(),
        {
            "/s/server-session-redis": LazyRedisSessionInterface(app, res),
            "/s/server-session-fs": CacheLibSessionInterface(app, client=files, key_prefix="lab:session:"),
        },
    )
