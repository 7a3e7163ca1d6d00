"""The load generator's HTTP client (loadtests/wire.py) against a real server that answers each way HTTP allows:
kept alive, chunked, to the end of the connection, closed while idle, closed before an answer, too slow; cookies
kept as a browser keeps them. The client runs as the lab runs it - in a process gevent has patched."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from labtools import ROOT, wait_for

from workerlab.procs import free_port

# A raw HTTP server: each path is one way of answering; it counts the requests it read per path.
SERVER = r"""
import socketserver, sys, time, threading, json
counts, lock, conns = {}, threading.Lock(), iter(range(1, 10**6))
class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        conn = next(conns)
        while True:
            line = self.rfile.readline()
            if not line:
                return
            method, target, _ = line.decode().split(" ", 2)
            headers = {}
            while (h := self.rfile.readline()) not in (b"\r\n", b""):
                k, _, v = h.decode().partition(":"); headers[k.strip().lower()] = v.strip()
            self.rfile.read(int(headers.get("content-length", 0)))
            path = target.split("?")[0]
            with lock:
                counts[path] = counts.get(path, 0) + 1; n = counts[path]
            w = self.wfile.write
            if path == "/counts":
                body = json.dumps(counts).encode()
                w(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif path == "/keep":
                w(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Conn: %d\r\n\r\nkept" % conn)
            elif path == "/chunked":
                w(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
            elif path == "/to-the-end":
                w(b"HTTP/1.0 200 OK\r\n\r\nall of it"); return
            elif path == "/idle-close":
                w(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Conn: %d\r\n\r\nok" % conn); self.wfile.flush()
                time.sleep(0.2); return
            elif path == "/cookie":
                big = "x" * 5000
                w(("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: a=1; Path=/\r\n"
                   f"Set-Cookie: big={big}\r\nSet-Cookie: b=; Max-Age=0\r\n\r\n").encode())
            elif path == "/set-b":
                w(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: b=2\r\n\r\n")
            elif path == "/echo-cookie":
                body = headers.get("cookie", "").encode()
                w(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif path == "/die" or (path == "/die-once" and n == 1):
                return  # read the request, close without a byte of answer (a worker killed mid-request)
            elif path == "/die-once":
                w(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
            elif path == "/reset" or (path == "/reset-once" and n == 1):
                import socket, struct  # close with a reset (RST), as a killed worker's kernel does with unread data
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close(); return
            elif path == "/reset-once":
                w(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter")
            elif path == "/slow":
                time.sleep(3); return
            elif path == "/missing":
                w(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            elif path == "/torn":
                w(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"); return
class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address, daemon_threads = True, True
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

CLIENT = r"""
import gevent.monkey; gevent.monkey.patch_all()
import json, sys, time
from locust.event import EventHook
from loadtests.wire import WireClient
fired = []
hook = EventHook(); hook.add_listener(lambda **kw: fired.append(kw))
def client():
    return WireClient(sys.argv[1], hook, connect_timeout=2, network_timeout=1)
def show(r):
    return {"status": r.status_code, "body": r.content.decode(), "conn": r.headers.get("x-conn"),
            "error": f"{type(r.error).__name__}: {r.error}" if r.error else None}
out = {}
c = client(); out["keep"] = [show(c.request("GET", "/keep")) for _ in range(2)]
c = client(); out["spread"] = [show(c.request("GET", "/keep")) for _ in range(7) if time.sleep(0.25) is None]
out["chunked"] = show(client().request("GET", "/chunked"))
c = client(); out["to_the_end"] = [show(c.request("GET", "/to-the-end")), show(c.request("GET", "/keep"))]
c = client(); first = show(c.request("GET", "/idle-close")); time.sleep(0.6)
out["idle_close"] = [first, show(c.request("GET", "/idle-close"))]
c = client(); c.request("GET", "/set-b"); c.request("GET", "/cookie")
out["cookies"] = show(c.request("GET", "/echo-cookie"))
c = client(); c.cookies = None; c.request("GET", "/cookie"); out["no_jar"] = show(c.request("GET", "/echo-cookie"))
out["die_get"] = show(client().request("GET", "/die"))
out["die_post"] = show(client().request("POST", "/die", data=b"x"))
out["die_once_get"] = show(client().request("GET", "/die-once"))
out["reset_get"] = show(client().request("GET", "/reset"))
out["reset_post"] = show(client().request("POST", "/reset"))
out["reset_once_get"] = show(client().request("GET", "/reset-once"))
out["slow"] = show(client().request("GET", "/slow"))
fired.clear(); out["missing"] = show(client().request("GET", "/missing"))
out["torn"] = show(client().request("GET", "/torn"))
out["failed_status"] = [e["exception"] is not None for e in fired]
out["refused"] = show(WireClient("http://127.0.0.1:" + sys.argv[2], hook).request("GET", "/keep"))
out["counts"] = json.loads(client().request("GET", "/counts").content)
out["events"] = [{"name": e["name"], "length": e["response_length"], "exception": e["exception"] is not None}
                 for e in fired[:2]]
out["fired"] = len(fired)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    port, closed_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stderr=subprocess.DEVNULL)
    try:
        import socket

        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, 20, "the server")
        done = subprocess.run([sys.executable, "-c", CLIENT, f"http://127.0.0.1:{port}", str(closed_port)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.kill()
        server.wait()


def test_one_connection_is_kept_for_a_users_requests(answers):
    first, second = answers["keep"]
    assert first["body"] == second["body"] == "kept" and first["error"] is None
    assert first["conn"] == second["conn"]  # the second request came on the first one's connection


def test_the_network_timeout_bounds_each_request_not_the_connection(answers):
    # seven requests on one connection over 1.75 s, each answered at once, with a 1 s timeout
    assert [a["status"] for a in answers["spread"]] == [200] * 7


def test_every_way_a_body_can_end(answers):
    assert answers["chunked"]["body"] == "abcdefg"
    to_the_end, after = answers["to_the_end"]
    assert to_the_end == {"status": 200, "body": "all of it", "conn": None, "error": None}
    assert after["status"] == 200  # the closed connection was opened again


def test_a_connection_the_server_closed_while_idle_is_opened_again_before_sending(answers):
    first, second = answers["idle_close"]
    assert first["status"] == second["status"] == 200 and second["error"] is None
    assert first["conn"] != second["conn"]
    assert answers["counts"]["/idle-close"] == 2  # nothing sent into the closed connection and sent again


def test_cookies_are_kept_as_a_browser_keeps_them(answers):
    # a=1 kept; the 5,000-byte cookie ignored (over 4,096 bytes); b deleted by Max-Age=0
    assert answers["cookies"]["body"] == "a=1"
    assert answers["no_jar"]["body"] == ""  # a user that sends its cookie by hand keeps none


def test_an_idempotent_request_closed_before_its_answer_is_sent_again_once_and_a_post_never(answers):
    assert answers["counts"]["/die"] == 3  # GET: sent, and sent again once; POST: sent once
    assert answers["die_get"]["status"] == 0 and "ClosedBeforeAnswer" in answers["die_get"]["error"]
    assert answers["die_post"]["status"] == 0 and "ClosedBeforeAnswer" in answers["die_post"]["error"]
    assert answers["die_once_get"] == {"status": 200, "body": "second", "conn": None, "error": None}
    assert answers["counts"]["/die-once"] == 2
    # the same when the connection is reset rather than closed
    assert answers["counts"]["/reset"] == 3
    assert answers["reset_get"]["status"] == answers["reset_post"]["status"] == 0
    assert "reset before the answer" in answers["reset_post"]["error"]
    assert answers["reset_once_get"]["status"] == 200 and answers["counts"]["/reset-once"] == 2


def test_what_went_wrong_is_the_answers_error_never_an_exception(answers):
    assert answers["slow"]["status"] == 0 and answers["slow"]["error"] == "TimeoutError: no answer within 1 s"
    assert answers["counts"]["/slow"] == 1  # a timeout is not resent
    assert answers["torn"]["status"] == 0 and "middle of the answer" in answers["torn"]["error"]
    assert answers["refused"]["status"] == 0 and "ConnectionRefusedError" in answers["refused"]["error"]
    # an answer of 400 or more is an answer (no error of its own) that locust counts as failed
    assert answers["missing"] == {"status": 404, "body": "", "conn": None, "error": None}
    assert answers["failed_status"] == [True, True]  # /missing, then /torn


def test_every_request_fires_locusts_request_event(answers):
    assert answers["events"] == [{"name": "/missing", "length": 0, "exception": True},
                                 {"name": "/torn", "length": 0, "exception": True}]
    assert answers["fired"] == 4  # one per request() call since /missing, a resend inside its request
