"""The load generator's HTTP/1.1 client: one keep-alive connection per locust user, each request written as one
block of bytes, each answer parsed by httptools (llhttp, the parser uvicorn uses). Every request fires locust's
``events.request`` as FastHttpSession does, so locust's statistics, its web UI and the lab's recorder see the same.

Why not locust's FastHttpUser: on a two-core machine every microsecond of the generator's CPU is taken from the
server it measures (issue #13). Measured on one stack (sync-x4 behind nginx, /hello, 50 users, 5,000 requests;
generator CPU per request, user + system, from getrusage): FastHttpSession 560-610 µs, geventhttpclient's own
HTTPClient 280-320 µs, a bare gevent socket loop 120 µs. FastHttpSession's share goes to URL parsing, header
objects, the cookie jar and redirect handling on every request; this client does none of that per request.

What a browser or geventhttpclient would do that it does the same way:
- a connection found closed while idle (the server's keep-alive timeout) is opened again before sending;
- an idempotent request (RFC 9110 9.2.2: GET, HEAD, ...) whose connection closed (or was reset) before any
  byte of the answer is sent again once, on a new connection - so a worker killed mid-request is resent, as
  browsers resend it (the fault table counts what that does to an increment sent as a GET:
  workerlab/faults/coverage.py);
- cookies: each user keeps the ``name=value`` of every Set-Cookie a browser would keep (size rule below), one
  host, no paths; ``cookies = None`` turns that off for users that send their cookie by hand.
What it leaves out on purpose: redirects (an answer is recorded as it came), compression (no Accept-Encoding:
the body is what the app wrote), proxies, certificate checks on https targets (as locust's insecure default).
"""

from __future__ import annotations

import socket
import ssl
import time
from urllib.parse import urlsplit

import gevent
import httptools
from gevent.monkey import get_original

# The real select (never gevent's): a zero-timeout look at an idle socket, one system call, no greenlet switch.
_select = get_original("select", "select")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
RESENDS = 1  # times an idempotent request whose connection closed before any answer is sent again
READ_SIZE = 65536

# A browser keeps a cookie whose name plus value is at most 4096 bytes (its attributes - Path, HttpOnly,
# SameSite ... - do not count); a bigger Set-Cookie is ignored and the cookie it would have replaced stays.
# Chromium 156, measured in tests/browser/test_browser.py: name+value 4096 kept, 4097 ignored.
BROWSER_COOKIE_LIMIT = 4096


def browser_keeps(set_cookie: str | None) -> str | None:
    """The ``name=value`` a browser stores from a Set-Cookie header, or None when it would ignore it."""
    if not set_cookie:
        return None
    pair = set_cookie.split(";", 1)[0].strip()
    name, _, value = pair.partition("=")
    if len(name.strip().encode()) + len(value.strip().encode()) > BROWSER_COOKIE_LIMIT:
        return None
    return pair


def _expires_now(set_cookie: str) -> bool:
    """A Set-Cookie that deletes its cookie (Max-Age=0 or less; Flask's delete_cookie also sends it)."""
    for attribute in set_cookie.split(";")[1:]:
        key, _, value = attribute.strip().partition("=")
        if key.lower() == "max-age":
            try:
                return int(value) <= 0
            except ValueError:
                return False
    return False


class Headers:
    """An answer's headers, looked up by name in any case; a repeated header (Set-Cookie) keeps every value.
    Kept as the bytes that came (most answers are never asked for a header: decoding each would cost more)."""

    __slots__ = ("raw",)

    def __init__(self):
        self.raw: list[tuple[bytes, bytes]] = []

    def getlist(self, name: str) -> list[str]:
        wanted = name.lower().encode("latin-1")
        return [value.decode("latin-1") for key, value in self.raw if key.lower() == wanted]

    def get(self, name: str, default=None):
        values = self.getlist(name)
        return values[0] if values else default

    def __contains__(self, name: str) -> bool:
        return bool(self.getlist(name))

    def __len__(self) -> int:
        return len(self.raw)

    def items(self) -> list[tuple[str, str]]:
        return [(key.decode("latin-1").lower(), value.decode("latin-1")) for key, value in self.raw]


class Response:
    """What came back: ``status_code`` 0 when no answer came (then ``error`` says why)."""

    __slots__ = ("status_code", "headers", "content", "url", "error")

    def __init__(self, url: str):
        self.status_code = 0
        self.headers = Headers()
        self.content = b""
        self.url = url
        self.error: BaseException | None = None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class FailedStatus(Exception):
    """An answer with status 400 or more: what locust counts as a failure (its statistics, its web UI)."""


class ClosedBeforeAnswer(ConnectionError):
    """The connection closed before any byte of the answer (a resend may follow for an idempotent request)."""


class _Reading:
    """httptools' callbacks for one answer."""

    __slots__ = ("headers", "body", "headers_done", "done", "parser", "keep_alive")

    def __init__(self, headers: Headers):
        self.headers = headers
        self.body: list[bytes] = []
        self.headers_done = self.done = self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.raw.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()  # llhttp knows it only until the answer is complete

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class WireClient:
    """A locust user's connection to one base URL (``http://host:port[/prefix]`` or https)."""

    def __init__(self, base_url: str, request_event, *, connect_timeout: float = 5.0, network_timeout: float = 30.0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.tls = parts.scheme == "https"
        self.address = (parts.hostname, parts.port or (443 if self.tls else 80))
        self.host_header = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.request_event = request_event
        self.connect_timeout, self.network_timeout = connect_timeout, network_timeout
        self.cookies: dict[str, str] | None = {}
        self.sock = None

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def request(self, method: str, path: str, *, name: str | None = None, headers: dict | None = None,
                data: bytes | str | None = None, context: dict | None = None) -> Response:
        """Send one request, wait for its answer and fire locust's request event; never raises for what the
        network or the server did (that is the response's ``error``, status 0)."""
        method = method.upper()
        response = Response(self.base_url + path)
        start_time = time.time()
        started = time.perf_counter()
        # One timer for the whole exchange (a socket timeout would make one at every wait: 25-40 µs a request,
        # measured). A new one each time: a gevent Timeout started again keeps its first deadline.
        deadline = gevent.Timeout(self.network_timeout)
        deadline.start()
        try:
            self._exchange(method, path, headers or {}, data, response)
        except (OSError, httptools.HttpParserError, ValueError) as exc:  # refused, reset, malformed
            self.close()
            response.status_code, response.error = 0, exc
        except gevent.Timeout as timeout:
            if timeout is not deadline:
                raise
            self.close()
            response.status_code = 0
            response.error = TimeoutError(f"no answer within {self.network_timeout:g} s")
        except BaseException:  # the user's greenlet killed mid-request: the connection's state is unknown
            self.close()
            raise
        finally:
            deadline.close()
        self.request_event.fire(request_type=method, name=name or path, context=context or {}, response=response,
                                response_time=(time.perf_counter() - started) * 1000,
                                response_length=len(response.content),
                                exception=response.error or (FailedStatus(f"HTTP {response.status_code}")
                                                             if response.status_code >= 400 else None),
                                start_time=start_time, url=response.url)
        return response

    def _exchange(self, method: str, path: str, headers: dict, data, response: Response) -> None:
        request = self._request_bytes(method, path, headers, data)
        for attempt in range(RESENDS + 1):
            try:
                self._send(request)
                self._read(response, head=method == "HEAD")
                break
            except ClosedBeforeAnswer:
                self.close()
                if method not in IDEMPOTENT or attempt == RESENDS:
                    raise
        else:  # pragma: no cover - the loop always breaks or raises
            raise AssertionError
        if self.cookies is not None:
            for set_cookie in response.headers.getlist("set-cookie"):
                self._keep(set_cookie)

    def _request_bytes(self, method: str, path: str, headers: dict, data) -> bytes:
        body = data.encode() if isinstance(data, str) else (data or b"")
        lines = [f"{method} {self.prefix}{path} HTTP/1.1", f"Host: {self.host_header}", "User-Agent: worker-lab"]
        named = {key.lower() for key in headers}
        if self.cookies and "cookie" not in named:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{key}: {value}" for key, value in headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _send(self, request: bytes) -> None:
        if self.sock is not None and _select([self.sock], [], [], 0)[0]:
            self.close()  # readable while idle: the server closed it (or sent what nobody asked for)
        if self.sock is None:
            self.sock = self._connect()
        try:
            self.sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClosedBeforeAnswer(f"the connection closed while the request was sent ({exc})") from exc

    def _connect(self):
        sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=self.address[0])
        sock.settimeout(None)  # the exchange's deadline bounds the rest
        return sock

    def _read(self, response: Response, head: bool = False) -> None:
        reading = _Reading(response.headers)
        parser = reading.parser
        received = False
        while not (reading.done or head and reading.headers_done):  # an answer to HEAD has no body
            try:
                chunk = self.sock.recv(READ_SIZE)
            except ConnectionResetError as exc:  # closed with a reset: the request was left unread, or not
                if received:
                    raise
                raise ClosedBeforeAnswer(f"the connection was reset before the answer ({exc})") from exc
            if not chunk:
                if not received:
                    raise ClosedBeforeAnswer("the connection closed before the answer")
                length = response.headers.get("content-length")
                body = sum(len(part) for part in reading.body)
                if not reading.headers_done or (length is not None and body < int(length)):
                    raise ConnectionError("the connection closed in the middle of the answer")
                self.close()  # an answer whose body runs to the end of the connection (HTTP/1.0 style)
                break
            received = True
            parser.feed_data(chunk)
        response.status_code = parser.get_status_code()
        response.content = b"".join(reading.body)
        if not reading.keep_alive:
            self.close()

    def _keep(self, set_cookie: str) -> None:
        pair = browser_keeps(set_cookie)
        if pair is None:
            return
        name, _, value = pair.partition("=")
        if _expires_now(set_cookie):
            self.cookies.pop(name.strip(), None)
        else:
            self.cookies[name.strip()] = value.strip()
