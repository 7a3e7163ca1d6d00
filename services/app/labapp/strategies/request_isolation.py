"""Per-request isolation: store a token, yield, read it back.

``iso-request``: ``request.args`` - Flask keeps the request in a context
variable behind a proxy, so each request sees its own.
``iso-contextvar``: a werkzeug ``LocalProxy`` over a ``ContextVar``, the way
Flask (and flask-jwt's ``current_identity``) do it.
``iso-thread-local``: a hand-made ``threading.local`` - per thread, per greenlet
when gevent patched ``threading``, but *shared by all greenlets of a thread*
when it did not.
``iso-module-global``: a module global "current user" assigned from the
request - leaks to any concurrent request.
``iso-flask-g``: ``flask.g``, per-request storage set up and torn down with it.
``iso-class-attribute``: the App Engine question - a value assigned per request to
a class attribute (``User.email = ...``). A class is one object per process, like a
module global, so it leaks the same way.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar

from flask import g, request
from werkzeug.local import LocalProxy

from .base import IsolationStrategy

_token_var: ContextVar[str] = ContextVar("lab_token")
current_token = LocalProxy(_token_var)
_thread_local = threading.local()
CURRENT_USER: str | None = None


class FromRequest(IsolationStrategy):
    def echo(self, token):
        self.window()
        return request.args["token"]


class FromContextVar(IsolationStrategy):
    def echo(self, token):
        _token_var.set(token)
        self.window()
        return str(current_token)


class FromThreadLocal(IsolationStrategy):
    def echo(self, token):
        _thread_local.token = token
        self.window()
        return _thread_local.token


class FromModuleGlobal(IsolationStrategy):
    def echo(self, token):
        global CURRENT_USER
        CURRENT_USER = token
        self.window()
        return CURRENT_USER


class User:
    email: str | None = None


class FromClassAttribute(IsolationStrategy):
    def echo(self, token):
        User.email = token
        self.window()
        return User.email


class FromFlaskG(IsolationStrategy):
    def echo(self, token):
        g.token = token
        self.window()
        return g.token


STRATEGIES = [
    FromRequest("iso-request", "isolation", "flask.request read back after a yield", question=3,
        lives="request", updates="context"),
    FromContextVar("iso-contextvar", "isolation", "werkzeug LocalProxy over a ContextVar", question=4,
        lives="request", updates="context"),
    FromThreadLocal("iso-thread-local", "isolation", "hand-made threading.local", question=3,
        lives="request", updates="thread"),
    FromModuleGlobal("iso-module-global", "isolation", "module global 'current user' set per request", question=4,
        lives="request", updates="process", store="global"),
    FromFlaskG("iso-flask-g", "isolation", "flask.g", question=5,
        lives="request", updates="context"),
    FromClassAttribute("iso-class-attribute", "isolation", "class attribute User.email assigned per request",
                       question=11,
        lives="request", updates="process", store="class"),
]
