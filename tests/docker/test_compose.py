"""The compose stacks, for real: build, start, hammer through nginx, tear down.

Marked ``docker`` and skipped unless LAB_DOCKER_TESTS=1 (``make docker-test`` sets
it). The engine and the base images come from conftest.py's ``docker_env``. Each
stack gets a compose project name unique to this run and is removed with its volumes afterwards. nginx is reached on
127.0.0.1:8080 (another free port if 8080 is taken; LAB_TEST_HTTP_PORT overrides).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dockertools import run as _run

ROOT = Path(__file__).resolve().parents[2]
LAB_COMPOSE = ROOT / "compose" / "lab-compose.sh"

N = 200  # concurrent increments per check
POOL = 32

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(os.environ.get("LAB_DOCKER_TESTS") != "1", reason="set LAB_DOCKER_TESTS=1 (make docker-test)"),
]

RUN_ID = uuid.uuid4().hex[:8]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(preferred: int) -> int:
    if _port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ports():
    http = int(os.environ.get("LAB_TEST_HTTP_PORT") or _pick_port(8080))
    locust = int(os.environ.get("LAB_TEST_LOCUST_PORT") or _pick_port(8089))
    return http, locust


@contextlib.contextmanager
def stack(scenario: str, docker_env, ports):
    """`lab-compose.sh up SCENARIO` under a project name unique to this run; always `down` (-v)."""
    http, locust = ports
    env = dict(docker_env)
    env.update(
        LAB_COMPOSE_PROJECT=f"wltest-{RUN_ID}-{scenario}",
        LAB_HTTP_PORT=str(http),
        LAB_LOCUST_PORT=str(locust),
        LAB_UP_TIMEOUT="240",
    )
    t0 = time.monotonic()
    try:
        up = _run([str(LAB_COMPOSE), "up", scenario], env)
        if up.returncode != 0:
            # lab-compose.sh prints the failing services' state and logs on stderr.
            pytest.fail(f"stack {scenario} did not come up (exit {up.returncode}):\n{up.stderr[-20000:]}")
        print(f"\n[docker tests] {scenario} up in {time.monotonic() - t0:.0f}s")
        yield f"http://127.0.0.1:{http}", f"http://127.0.0.1:{locust}", env
    finally:
        down = _run([str(LAB_COMPOSE), "down"], env, timeout=300)
        leftovers = _run(
            ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={env['LAB_COMPOSE_PROJECT']}"], env
        ).stdout.split()
        assert down.returncode == 0 and not leftovers, f"down failed for {scenario}:\n{down.stdout}\n{down.stderr}"


def containers(env) -> list[dict]:
    ids = _run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={env['LAB_COMPOSE_PROJECT']}"], env
    ).stdout.split()
    return json.loads(_run(["docker", "inspect", *ids], env, check=True).stdout)


# ------------------------------------------------------------------ HTTP helpers
def get(url: str, timeout: float = 30) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.loads(resp.read())
            body["_status"] = resp.status
    except urllib.error.HTTPError as exc:
        body = {"_status": exc.code, "_body": exc.read()[:500].decode("utf-8", "replace")}
    return body


def burst(base: str, strategy: str, key: str, n: int = N) -> list[dict]:
    """n concurrent increments (POOL at a time); every one must be answered 200."""
    url = f"{base}/s/{strategy}/incr?key={key}"
    with ThreadPoolExecutor(POOL) as pool:
        answers = list(pool.map(lambda _: get(url), range(n)))
    bad = [a for a in answers if a["_status"] != 200]
    assert not bad, f"{len(bad)} of {n} increments failed, e.g. {bad[:3]}"
    return answers


def final_reads(base: str, strategy: str, key: str, n: int = 64) -> dict[tuple, set]:
    """Reads after the load (no increment in flight): the values each (instance, pid) reports.

    Sent 16 at a time: nginx reuses keep-alive connections, so sequential reads could
    all land on the one gevent worker that holds that connection.
    """
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: get(f"{base}/s/{strategy}/read?key={key}"), range(n)))
    seen: dict[tuple, set] = defaultdict(set)
    for a in answers:
        assert a["_status"] == 200, a
        seen[(a["instance"], a["pid"])].add(a["value"])
    return seen


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def assert_atomic_counter(base: str) -> None:
    """redis INCR and PostgreSQL's UPDATE ... RETURNING: one store for every process and every replica."""
    for strategy in ("redis-incr", "postgres-update"):
        key = fresh(strategy)
        values = sorted(a["value"] for a in burst(base, strategy, key))
        assert values == list(range(1, N + 1)), f"{strategy} must hand out 1..N exactly once each"
        reads = final_reads(base, strategy, key, n=10)
        assert {v for vs in reads.values() for v in vs} == {N}, (strategy, dict(reads))


def by_process(answers: list[dict]) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = defaultdict(list)
    for a in answers:
        out[(a["instance"], a["pid"])].append(a["value"])
    return out


# ------------------------------------------------------------------------ tests
def test_gevent_x4(docker_env, ports):
    with stack("gevent-x4", docker_env, ports) as (base, locust_ui, env):
        health = get(f"{base}/health")
        assert health["_status"] == 200 and health["worker_class"] == "gevent", health

        key = fresh("naive")
        answers = burst(base, "naive-global", key)
        procs = by_process(answers)
        values = [a["value"] for a in answers]
        assert len(procs) >= 2, f"one gunicorn process served all {N} requests: {list(procs)}"
        assert all(a["greenlet"] for a in answers), "gevent workers answer from request greenlets"
        assert len(set(values)) < N, "naive-global handed out unique values across 4 processes"
        # Every process keeps its own count: the reads can only add up to at most N, and
        # each process reads back a single, stable value.
        reads = final_reads(base, "naive-global", key)
        assert all(len(vs) == 1 for vs in reads.values()), dict(reads)
        assert sum(v for vs in reads.values() for v in vs) <= N, dict(reads)

        assert_atomic_counter(base)

        # The locust master's web UI, published on 127.0.0.1 only.
        with urllib.request.urlopen(locust_ui + "/", timeout=10) as resp:
            assert resp.status == 200

        # Hardening, as the engine sees it: non-root, read-only root, no new privileges,
        # an init, and host ports on 127.0.0.1 only (nginx and the locust UI).
        published = []
        for c in containers(env):
            name, host = c["Name"], c["HostConfig"]
            assert c["Config"]["User"] not in ("", "root", "0", "0:0"), f"{name} runs as root"
            assert host["ReadonlyRootfs"], f"{name} has a writable root"
            assert "no-new-privileges:true" in (host["SecurityOpt"] or []), name
            assert host["Init"], name
            for bindings in (host["PortBindings"] or {}).values():
                published += [(name, b["HostIp"]) for b in bindings]
        assert sorted(ip for _, ip in published) == ["127.0.0.1", "127.0.0.1"], published


def test_sync_x4(docker_env, ports):
    with stack("sync-x4", docker_env, ports) as (base, _, _env):
        key = fresh("naive")
        answers = burst(base, "naive-global", key)
        procs = by_process(answers)
        assert len(procs) >= 2, f"one sync worker served all {N} requests: {list(procs)}"
        assert {a["worker_class"] for a in answers} == {"sync"}
        values = [a["value"] for a in answers]
        assert len(set(values)) < N, "values must collide across the four processes"
        # One request at a time per process: each counts its own requests exactly (no lost
        # update), and the processes diverge from each other.
        for proc, vals in procs.items():
            assert sorted(vals) == list(range(1, len(vals) + 1)), f"{proc} lost or repeated an update"
        reads = final_reads(base, "naive-global", key)
        for proc, vals in reads.items():
            assert vals == {len(procs.get(proc, []))}, f"{proc} reads {vals}, served {len(procs.get(proc, []))}"
        assert len({v for vs in reads.values() for v in vs}) >= 2 or len(reads) == 1, dict(reads)

        assert_atomic_counter(base)


def test_scale_out_3(docker_env, ports):
    with stack("scale-out-3", docker_env, ports) as (base, _, _env):
        key = fresh("naive")
        answers = burst(base, "naive-global", key)
        instances = {a["instance"] for a in answers}
        assert len(instances) >= 3, f"nginx spread {N} requests over {instances} only"
        assert {a["worker_class"] for a in answers} == {"gthread"}

        by_instance: dict[str, int] = defaultdict(int)
        for a in answers:
            by_instance[a["instance"]] += 1
        # Round robin: every replica takes a real share, not a stray request.
        assert min(by_instance.values()) >= N // 10, dict(by_instance)

        reads = final_reads(base, "naive-global", key)
        assert len({inst for inst, _ in reads}) >= 3, f"final reads reached {list(reads)}"
        final = {v for vs in reads.values() for v in vs}
        assert len(final) >= 2, f"naive-global agrees across separate instances: {dict(reads)}"
        assert max(final) < N, "one instance saw every increment"

        assert_atomic_counter(base)


def test_broken_stack_fails_loudly_with_logs(docker_env, ports):
    """A stack that cannot become healthy fails `up` and shows the failing service's logs."""
    env = dict(docker_env)
    env.update(
        LAB_COMPOSE_PROJECT=f"wltest-{RUN_ID}-broken",
        LAB_HTTP_PORT=str(ports[0]),
        LAB_LOCUST_PORT=str(ports[1]),
        LAB_RACE_WINDOW="no-such-window",  # the app refuses to start
        LAB_UP_TIMEOUT="120",
    )
    try:
        up = _run([str(LAB_COMPOSE), "up", "sync-x1"], env)
        assert up.returncode == 1, up.stderr[-5000:]
        assert "_app_1 |" in up.stderr or "-app-1 |" in up.stderr, up.stderr[-5000:]
        assert "LAB_RACE_WINDOW='no-such-window'" in up.stderr
    finally:
        _run([str(LAB_COMPOSE), "down"], env, timeout=300)


def test_runner_compose_engine_matches_native_verdicts(docker_env, tmp_path):
    """`workerlab run --engine compose` judges containers with the same checkers and results format."""
    import json
    import sys

    args = ["-s", "sync-x4,gevent-x4", "-t", "naive-global,redis-incr,iso-thread-local", "-n", "300", "-u", "20"]
    proc = subprocess.run(
        [sys.executable, "-m", "workerlab", "run", "--engine", "compose", "--quiet", "--output", str(tmp_path), *args],
        cwd=ROOT, env=docker_env, capture_output=True, text=True, timeout=1200,
    )
    results = sorted(tmp_path.glob("*/results.json"))
    assert results, f"no results.json\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    data = json.loads(results[-1].read_text())
    assert data["settings"]["engine"] == "compose"
    verdicts = {(c["scenario"], c["strategy"]): c["observed"]["label"] for c in data["cells"]}
    assert verdicts[("sync-x4", "naive-global")] == "diverges"
    assert verdicts[("gevent-x4", "naive-global")] == "lost-updates+diverges"
    assert verdicts[("sync-x4", "redis-incr")] == verdicts[("gevent-x4", "redis-incr")] == "correct"
    assert verdicts[("gevent-x4", "iso-thread-local")] == "correct"
    assert proc.returncode == 0, proc.stdout[-3000:]
    leftover = subprocess.run(["docker", "ps", "-q", "--filter", "label=com.docker.compose.project"],
                              env=docker_env, capture_output=True, text=True).stdout.split()
    assert not [c for c in leftover if "wl-" in subprocess.run(
        ["docker", "inspect", "-f", "{{index .Config.Labels \"com.docker.compose.project\"}}", c],
        env=docker_env, capture_output=True, text=True).stdout]


def test_compose_run_records_the_versions_its_containers_run(docker_env, tmp_path):
    """`run --engine compose` records what served, asked of the scenario's containers - not the host's versions.

    Checked two ways that do not share the probe: the app's pins (services/app/requirements.txt), and each
    server image run on its own (`docker run IMAGE --version`), which on a machine with stand-in base images
    (make images-offline) answers Debian's versions, not the tag's.
    """
    import platform
    import re
    import sys

    from workerlab.results import APP_PACKAGES, SERVERS

    proc = subprocess.run(
        [sys.executable, "-m", "workerlab", "run", "--engine", "compose", "--quiet", "--output", str(tmp_path),
         "-s", "sync-x1", "-t", "naive-global", "-n", "50", "-u", "5"],
        cwd=ROOT, env=docker_env, capture_output=True, text=True, timeout=1200,
    )
    results = sorted(tmp_path.glob("*/results.json"))
    assert results, f"no results.json\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    data = json.loads(results[-1].read_text())
    served = data["scenarios"]["sync-x1"]["served_versions"]
    assert data["versions"]["python"] == platform.python_version()  # the host's, beside what served

    pins = {name.lower(): version for name, version in
            re.findall(r"^([A-Za-z][\w-]*)==(\S+)", (ROOT / "services" / "app" / "requirements.txt").read_text(), re.M)}
    for label, dist in APP_PACKAGES:
        assert served[label] == pins[dist], (label, served)
    app_image = f"worker-lab/app:{os.environ.get('LAB_IMAGE_TAG', 'local')}"
    app_python = _run(["docker", "run", "--rm", "--entrypoint", "python", app_image, "-c",
                       "import platform; print(platform.python_version())"], docker_env, check=True).stdout.strip()
    assert served["python"] == app_python, served

    compose_yaml = (ROOT / "compose" / "compose.yaml").read_text()
    for label, service, (binary, *args), pattern in SERVERS:
        image = re.search(rf"image: ({service}:\S+)", compose_yaml).group(1)
        out = _run(["docker", "run", "--rm", "--entrypoint", binary, image, *args], docker_env, check=True)
        assert served[label] == re.search(pattern, out.stdout + out.stderr).group(1), (label, image, served)


def test_host_local_cells_of_scale_out_agree_across_engines(docker_env, tmp_path):
    """SQLite, FileSystemCache and filesystem sessions under scale-out-3: the same verdicts natively and in compose."""
    from labtools import run_lab

    from workerlab.expected import HOST_FILES  # kept in the host's files (LAB_DATA_DIR)

    args = ["-s", "scale-out-3", "-t", ",".join(HOST_FILES), "-n", "700", "-u", "20"]
    observed = {}
    for engine in ("native", "compose"):
        proc, data = run_lab([*args, "--engine", engine], tmp_path / engine, timeout=1200, env=docker_env)
        assert data is not None, f"{engine}: no results.json\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert data["settings"]["engine"] == engine
        observed[engine] = {c["strategy"]: c["observed"]["label"] for c in data["cells"]}
        mismatched = {c["strategy"]: (c["observed"]["label"], c["expected"]["label"])
                      for c in data["cells"] if not c["match"]}
        assert not mismatched and proc.returncode == 0, (engine, mismatched, proc.stdout[-3000:])
    assert observed["compose"] == observed["native"]
    # Matched their declared expectations above; none of them is right across hosts.
    assert "correct" not in observed["native"].values(), observed
