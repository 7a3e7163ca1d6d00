"""The lab itself: bad input, a sidecar that is down, loopback only, no debugger (Ctrl-C: test_interrupt.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import psutil
import pytest
from labtools import ROOT, descendants, run_lab

pytestmark = pytest.mark.stack


def lab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workerlab", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args, named", [
    (["run", "-s", "no-such-scenario"], "valid scenarios: dev-single"),
    (["run", "-t", "no-such-strategy"], "valid strategys: naive-global"),
    (["serve", "nope"], "valid scenarios"),
    (["expected", "-s", "x"], "valid scenarios"),
])
def test_unknown_names_list_the_valid_ones_and_exit_2(args, named):
    proc = lab(*args)
    assert proc.returncode == 2
    assert named in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_numbers_are_refused_with_exit_2():
    proc = lab("run", "--requests", "-5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def http_get(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, body.decode(errors="replace")


def test_an_error_is_a_plain_json_500_never_the_debugger(gthread_stack):
    status, body = http_get(f"{gthread_stack.url}/error")
    assert status == 500
    assert body["error"] == "internal" and "Traceback" not in json.dumps(body)
    status, _ = http_get(f"{gthread_stack.url}/console")
    assert status == 404


@pytest.mark.parametrize("path", ["/s/naive-global/incr?key=../../etc", "/s/naive-global/incr",
                                  "/s/nope/incr?key=a", "/s/iso-request/echo?token=" + "x" * 500,
                                  "/s/naive-global/echo?token=a"])
def test_malformed_requests_get_a_4xx_json_error(gthread_stack, path):
    status, body = http_get(gthread_stack.url + path)
    assert 400 <= status < 500
    assert isinstance(body, dict) and body["error"] and body["pid"]


def test_every_service_listens_on_loopback_only(gthread_stack):
    pids = {gthread_stack_pid for gthread_stack_pid in gthread_stack.pids.values()}
    pids |= {d for pid in list(pids) for d in descendants(pid)}
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert len(listening) >= 6  # redis, memcached, manager, postgres, app, nginx
    assert all(c.laddr.ip == "127.0.0.1" for c in listening), listening


def test_services_start_with_sigint_and_sigterm_deliverable(gthread_stack):
    """The lab holds SIGINT/SIGTERM while it forks; its children must not inherit that mask."""
    pids = set(gthread_stack.pids.values())
    pids |= {d for pid in list(pids) for d in descendants(pid)}
    held = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    for pid in pids:
        status = open(f"/proc/{pid}/status").read()
        blocked = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
        assert not blocked & held, (pid, psutil.Process(pid).cmdline(), hex(blocked))


def test_a_sidecar_that_dies_is_named_in_a_503(gthread_stack):
    status, body = http_get(f"{gthread_stack.url}/s/redis-incr/incr?key=before")
    assert status == 200
    redis = next(c for c in gthread_stack.children.children if c.name == "redis")
    redis.stop()
    status, body = http_get(f"{gthread_stack.url}/s/redis-incr/incr?key=after")
    assert status == 503 and body["error"] == "sidecar-unreachable"
    assert "redis unreachable" in body["message"]
    status, _ = http_get(f"{gthread_stack.url}/s/naive-global/incr?key=still-works")
    assert status == 200


@pytest.mark.parametrize("sidecar, strategy, said", [
    ("redis", "redis-incr", "redis unreachable"),
    ("postgres", "postgres-update", "postgres unreachable: LAB_POSTGRES_URL is not set"),
])
def test_run_goes_on_when_a_sidecar_is_down(tmp_path, sidecar, strategy, said):
    proc, data = run_lab(["-s", "sync-x1", "-t", f"{strategy},naive-global", "-n", "100", "-u", "10",
                          "--without", sidecar], tmp_path)
    assert proc.returncode == 1, proc.stderr  # a cell differs from its expectation
    cells = {c["strategy"]: c for c in data["cells"]}
    assert cells[strategy]["observed"]["verdict"] == ["error"]
    assert said in json.dumps(cells[strategy]["examples"])
    assert cells["naive-global"]["observed"]["verdict"] == ["correct"]
    assert "MISMATCH" in proc.stdout or "!!" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_port_taken_between_pick_and_bind_gets_another(tmp_path, scenarios, monkeypatch):
    """The first port handed to the app is already taken: the stack retries on fresh ports."""
    import socket

    from workerlab.stacks import native as stack_module
    from workerlab.stacks.native import NativeStack

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real_free_port = stack_module.free_port
    handed = []

    def free_port_once_taken():
        port = taken if not handed else real_free_port()
        handed.append(port)
        return port

    monkeypatch.setattr(stack_module, "free_port", free_port_once_taken)
    try:
        with NativeStack(scenarios["sync-x1"], tmp_path, direct=True, sidecars=()) as stack:
            assert stack.app_ports[0] != taken
            status, body = http_get(f"{stack.url}/hello")
            assert status == 200 and body["value"] == "hello"
    finally:
        squatter.close()
