"""Ceilings: nginx answering by itself (a stack for the run loop, workerlab/bench/run.py: wrk, then the lab's
generator against it), and redis INCR with redis-benchmark."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import jinja2

from .. import procs
from ..paths import NGINX_DIR
from ..procs import Child, free_port
from ..stacks.native import find_binary
from .cpu import CpuWindow, pin, preexec
from .measure import run_wrk
from .parse import parse_redis_benchmark, parse_wrk, spread, us_per_request


def _wait_port(port: int, child: Child, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if not child.alive():
                raise child.failure("exited during start-up") from None
            time.sleep(0.05)
    raise child.failure(f"not listening after {timeout:.0f}s")


def nginx_alone_conf(folder: Path, port: int) -> str:
    """services/nginx/alone.conf.j2, rendered as workerlab.stacks.native renders native.conf.j2."""
    template = jinja2.Environment(loader=jinja2.FileSystemLoader(NGINX_DIR), autoescape=False,
                                  keep_trailing_newline=True).get_template("alone.conf.j2")
    return template.render(run_dir=folder, listen=f"127.0.0.1:{port}")


class NginxAlone:
    """nginx answering by itself (services/nginx/alone.conf.j2): a stack of one process for the run loop."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.child: Child | None = None

    @property
    def pid(self) -> int:
        return self.child.proc.pid

    def __enter__(self) -> NginxAlone:
        (self.folder / "tmp").mkdir(parents=True, exist_ok=True)
        conf = self.folder / "nginx.conf"
        conf.write_text(nginx_alone_conf(self.folder, self.port))
        self.child = Child("nginx-alone", [find_binary("nginx"), "-p", str(self.folder), "-c", str(conf), "-e",
                                           str(self.folder / "error.log")], self.folder / "nginx.log")
        try:
            self.child.start()
            _wait_port(self.port, self.child)
        except BaseException:
            self.child.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.child.stop()

    def wrk_ceiling(self, opts: dict) -> dict:
        """wrk against nginx alone, --repeat times: the most any scenario's nginx could pass on."""
        run_wrk(f"{self.url}/", opts["users"], 1, opts["generator_cpus"], opts["nice"])  # warm-up
        runs = []
        for rep in range(opts["repeat"]):
            window = CpuWindow({"nginx": [self.pid]}).start()
            output, wall, cpu, _ = run_wrk(f"{self.url}/", opts["users"], opts["duration"], opts["generator_cpus"],
                                           opts["nice"])
            (self.folder / f"wrk-r{rep}.txt").write_text(output)
            w = parse_wrk(output)
            runs.append({"rps": round(w["rps"], 1), "p50_ms": w.get("p50_ms"), "p99_ms": w.get("p99_ms"),
                         "generator_cpu": round(cpu / wall, 3), **window.stop().figures(cpu)})
        return {"runs": runs, "rps": spread(r["rps"] for r in runs), "lab": None}


def lab_ceiling_summary(runs: list[dict]) -> dict:
    """The lab's driver against nginx alone: nginx answers far faster than one Python core can ask,
    so this is what the lab's generator can do at most, with and without recording."""
    ok = [r for r in runs if not r.get("error")]

    def cost_us(r):  # generator CPU per request, in microseconds
        return us_per_request(r["generator_cpu"], r.get("driver_rps"))

    return {
        "runs": runs,
        "rps_recording": spread(r["driver_rps"] for r in ok if r["record"]),
        "rps_not_recording": spread(r["driver_rps"] for r in ok if not r["record"]),
        "generator_cpu": spread(r["generator_cpu"] for r in ok),
        "cpu_us_per_request_recording": spread(cost_us(r) for r in ok if r["record"]),
        "cpu_us_per_request_not_recording": spread(cost_us(r) for r in ok if not r["record"]),
    }


def redis_ceiling(run_dir: Path, opts: dict) -> dict:
    folder = run_dir / "redis-alone"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    child = Child("redis-alone", [find_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", str(folder), "--logfile", ""],
                  folder / "redis.log")
    child.start()
    runs = []
    bench_bin = shutil.which("redis-benchmark")
    if not bench_bin:
        child.stop()
        return {"error": "redis-benchmark not found (Debian package redis-tools)"}
    try:
        _wait_port(port, child)
        pin([child.proc.pid], opts["server_cpus"], opts["nice"])
        cpus = opts["generator_cpus"]
        for rep in range(opts["repeat"]):
            out = procs.run([bench_bin, "-h", "127.0.0.1", "-p", str(port), "-t", "incr", "-q",
                             "-n", str(opts["redis_requests"]), "-c", str(opts["users"])],
                            text=True, timeout=120, preexec_fn=preexec(cpus, opts["nice"]))
            (folder / f"redis-benchmark-r{rep}.txt").write_text(out.stdout + out.stderr)
            runs.append(parse_redis_benchmark(out.stdout))
    finally:
        child.stop()
    return {"runs": runs, "ops": spread(r["ops"] for r in runs), "requests": opts["redis_requests"]}
