"""One app, three session stores: pick the session interface by URL.

Flask has one session interface per app; the lab needs the signed-cookie
session and two Flask-Session stores side by side, so this interface hands each
request to the store its strategy names.

Hostile input: nothing here unpickles. Flask-Session 0.8 encodes redis sessions with
msgpack (msgspec) but, for sessions written by 0.7, falls back to ``pickle.loads`` on
whatever msgpack and JSON cannot decode; the lab installs a msgpack-only decoder, so
undecodable data is no session. Its cachelib backend does not use that serializer at
all: it hands the session dict to cachelib's FileSystemCache, which pickles it; the lab
gives that cache cachelib's JSON serializer instead. A client only chooses the session
id, which becomes a redis key under ``lab:session:`` or a sha256 file name - never the
bytes that are decoded. A session cookie over 4096 bytes (no browser sends one) is a
400, before any store is asked.
"""

from __future__ import annotations

import os

from flask import request
from flask.sessions import SecureCookieSessionInterface, SessionInterface

from .errors import BadInput

SESSION_COOKIE_MAX = 4096


def _oversized_cookie(app, request_) -> int:
    """The session cookie's length when it is over the limit, else 0."""
    value = request_.cookies.get(app.config["SESSION_COOKIE_NAME"])
    return len(value) if value is not None and len(value) > SESSION_COOKIE_MAX else 0


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
        if _oversized_cookie(app, request_):
            return None  # a null session: the request is refused before it runs (see install)
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
            self._inner.serializer = msgpack_only(self.app)
        return self._inner

    def open_session(self, app, request_):
        return self._interface().open_session(app, request_)

    def save_session(self, app, session, response):
        return self._interface().save_session(app, session, response)


def msgpack_only(app):
    """Flask-Session's msgpack serializer without its pickle fallback."""
    import msgspec
    from flask_session.base import MsgSpecSerializer

    class MsgpackOnly(MsgSpecSerializer):
        def decode(self, serialized_data: bytes):
            try:
                data = self.decoder.decode(serialized_data)
            except msgspec.DecodeError:
                data = None
            if not isinstance(data, dict):
                self.app.logger.warning("stored session data is not a msgpack map; treated as no session")
                return None
            return data

    return MsgpackOnly(app=app, format="msgpack")


def install(app, res) -> None:
    from cachelib.file import FileSystemCache
    from cachelib.serializers import JSONSerializer
    from flask_session.cachelib import CacheLibSessionInterface

    class JsonFileSystemCache(FileSystemCache):
        serializer = JSONSerializer()  # not pickle: what is read back is data, never code

    files = JsonFileSystemCache(os.path.join(res.settings.data_dir, "flask-session"), threshold=100_000)

    @app.before_request
    def refuse_oversized_session_cookie():
        size = _oversized_cookie(app, request)
        if size:
            raise BadInput(f"session cookie is {size} bytes; over {SESSION_COOKIE_MAX} (no browser sends one)")

    app.session_interface = SessionDispatch(
        SecureCookieSessionInterface(),
        {
            "/s/server-session-redis": LazyRedisSessionInterface(app, res),
            "/s/server-session-fs": CacheLibSessionInterface(app, client=files, key_prefix="lab:session:"),
        },
    )
