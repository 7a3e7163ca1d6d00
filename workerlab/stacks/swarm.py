"""The swarm engine (`run --engine swarm`): the compose stack of a scenario deployed as a Docker Swarm stack
on a single-node swarm of the lab's engine.

The stack file is compose/compose.yaml (+ compose.lab.yaml) as the compose CLI renders it for the scenario,
adapted to what `docker stack deploy` takes (swarm_file): the images built first (swarm ignores `build:`),
`depends_on` (ignored by swarm) replaced by an order - the app's replicas and sidecars healthy first, then
nginx scaled from 0 to 1, because nginx resolves every replica once, when it starts - every service behind
DNS round robin (`endpoint_mode: dnsrr`: each task's address, as compose's DNS gives them, no virtual IP),
the /tmp tmpfs as a tmpfs mount.
Nothing is published by swarm (its ports bind every interface); a relay container (compose/swarm/gateway.py)
on the stack's edge network, published on 127.0.0.1 only, is the way in: nginx, and each app replica.

Stopping removes the stack and the relay, waits until their containers and networks are gone, and leaves
the swarm when the lab initialised it - on the run's end, on Ctrl-C and when start-up fails.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time

import yaml

from .. import interrupt
from ..paths import ROOT
from ..procs import StackError, free_port, tail
from .compose import ComposeStack
from .docker_cli import EngineMissing, docker, engine_env

GATEWAY = ROOT / "compose" / "swarm" / "gateway.py"
GATEWAY_IMAGE = "python:3.11-slim-bookworm"  # a base image the project names: there for every engine
UP_TIMEOUT_S = 300
FIRST = ("app", "redis", "memcached", "manager")  # healthy before nginx starts (compose's depends_on)
SECRETS = ("LAB_SECRET_KEY", "LAB_MANAGER_AUTHKEY")  # interpolated by `docker stack deploy`: not in the file


def swarm_file(rendered: dict) -> dict:
    """The compose CLI's rendered file as a swarm stack file (see the module's doc)."""
    services = {}
    for name, service in rendered["services"].items():
        # No ports: the gateway publishes, on 127.0.0.1 only.
        spec = {k: v for k, v in service.items() if k not in ("build", "depends_on", "tmpfs", "ports")}
        env = {k: v for k, v in (spec.get("environment") or {}).items() if v is not None}
        env.update({k: f"${{{k}}}" for k in SECRETS if k in env})
        spec["environment"] = env
        spec["volumes"] = [*spec.get("volumes", []), *({"type": "tmpfs", "target": t.split(":")[0],
                                                          "tmpfs": {"size": 256 * 1024 * 1024}}
                                                         for t in service.get("tmpfs", []))]
        deploy = dict(spec.get("deploy") or {})
        deploy.setdefault("replicas", 1)
        deploy["restart_policy"] = {"condition": "on-failure", "max_attempts": 3}
        # A name resolves to every task's own address, as compose's DNS answers - not to a virtual IP, which
        # needs the kernel's IPVS (this lab's VM has none) and would balance connections, not nginx.
        deploy["endpoint_mode"] = "dnsrr"
        if name == "nginx":
            deploy["replicas"] = 0  # scaled to 1 once the replicas are healthy
        spec["deploy"] = deploy
        services[name] = spec
    networks = {name: {**(net or {}), "driver": "overlay", "attachable": True}
                for name, net in rendered.get("networks", {}).items()}
    return {"version": "3.8", "services": services, "networks": networks}


class SwarmStack(ComposeStack):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.namespace = self.project
        self.initialised_swarm = False
        self.made_gwbridge = False  # the bridge `swarm init` makes, removed when the lab leaves the swarm
        self.deployed = False
        self.gateway: str | None = None
        self.secrets = {k: secrets.token_hex(32) for k in SECRETS}
        self.docker_env: dict[str, str] = {}

    # -- docker, logged ---------------------------------------------------------------------------------
    def _docker(self, *args: str, timeout: float = 120, log: bool = True) -> subprocess.CompletedProcess:
        out = docker(self.docker_env, *args, timeout=timeout)
        if log:
            with open(self.run_dir / "logs" / "swarm.log", "a") as f:
                f.write(f"$ docker {' '.join(args)}\n{out.stdout}{out.stderr}(exit {out.returncode})\n")
        return out

    def _services(self) -> dict[str, str]:
        """service (without the namespace) -> 'running/desired' as `docker service ls` says."""
        out = self._docker("service", "ls", "--filter", f"label=com.docker.stack.namespace={self.namespace}",
                           "--format", "{{.Name}} {{.Replicas}}", log=False)
        return {name.removeprefix(self.namespace + "_"): replicas
                for name, replicas, *_ in (line.split() for line in out.stdout.splitlines() if line.strip())}

    def _containers(self, service: str) -> list[str]:
        out = self._docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.namespace}_{service}",
                           log=False)
        return out.stdout.split()

    # -- start --------------------------------------------------------------------------------------------
    def start(self) -> None:
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.started = True
        try:
            self.docker_env = engine_env()
        except EngineMissing as exc:
            raise StackError(f"no Docker engine for the swarm: {exc}") from None
        self._join_swarm()
        build_log = self.run_dir / "logs" / "swarm-build.log"
        if self._script("compose", "build", log=build_log, timeout=900).returncode != 0:
            raise StackError(f"the images did not build (swarm ignores build:); last lines of {build_log}:\n"
                             f"{tail(build_log, 30)}")
        rendered = self._script("config", self.scenario.name)
        if rendered.returncode != 0:
            raise StackError(f"the compose file did not render for {self.scenario.name}:\n{rendered.stderr[-2000:]}")
        stack_file = self.run_dir / "swarm-stack.json"
        stack_file.write_text(json.dumps(swarm_file(yaml.safe_load(rendered.stdout)), indent=2) + "\n")
        self.deployed = True
        env = {**self.docker_env, **self.secrets}
        out = docker(env, "stack", "deploy", "--resolve-image", "never", "--detach=true", "-c", str(stack_file),
                     self.namespace, timeout=180)
        with open(self.run_dir / "logs" / "swarm.log", "a") as f:  # what swarm ignored, among the rest
            f.write(f"$ docker stack deploy ... {self.namespace}\n{out.stdout}{out.stderr}(exit {out.returncode})\n")
        if out.returncode != 0:
            raise StackError(f"docker stack deploy failed:\n{(out.stdout + out.stderr)[-2000:]}")
        self._wait_running(FIRST)
        self._docker("service", "scale", "--detach=true", f"{self.namespace}_nginx=1")
        self._wait_running(("nginx",))
        self._start_gateway()

    def _join_swarm(self) -> None:
        state = self._docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
        if state == "active":
            return  # a swarm someone else made: used, never left
        if state != "inactive":
            raise StackError(f"the engine's swarm is '{state}': neither inactive nor active; see `docker info`")
        self.made_gwbridge = self._docker("network", "inspect", "docker_gwbridge").returncode != 0
        with interrupt.shielded():  # a swarm made is a swarm the lab knows it must leave
            out = self._docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
            self.initialised_swarm = out.returncode == 0
        if out.returncode != 0:
            said = " ".join((out.stdout + out.stderr).split())[-1000:]
            raise StackError(f"docker swarm init failed (a single-node swarm on 127.0.0.1:2377): {said}")

    def _wait_running(self, names: tuple[str, ...]) -> None:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while True:
            replicas = self._services()
            pending = {n: replicas.get(n, "absent") for n in names
                       if replicas.get(n, "0/1").split("/")[0] != replicas.get(n, "0/1").split("/")[1]}
            if not pending:
                return
            if time.monotonic() > deadline:
                tasks = "\n".join(self._docker("service", "ps", "--no-trunc", "--format",
                                               "{{.Name}} {{.CurrentState}} {{.Error}}", f"{self.namespace}_{n}",
                                               log=False).stdout for n in pending)
                raise StackError(f"swarm stack {self.namespace}: {pending} not running and healthy after "
                                 f"{UP_TIMEOUT_S}s:\n{tasks[-3000:]}")
            time.sleep(2)

    def _start_gateway(self) -> None:
        edge = f"{self.namespace}_edge"
        routes = [f"{self.http_port}=nginx:8080"]
        for container in self._containers("app"):
            address = self._docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{edge}").IPAddress}}}}',
                                   container).stdout.strip()
            port = free_port()
            routes.append(f"{port}={address}:8000")
            self.app_ports.append(port)
        listens = [route.split("=")[0] for route in routes]
        publish = [arg for port in listens for arg in ("-p", f"127.0.0.1:{port}:{port}")]
        self.gateway = f"{self.namespace}-gateway"
        out = self._docker("run", "-d", "--name", self.gateway, "--label", f"worker-lab.swarm={self.namespace}",
                           "--network", edge, "--read-only", "--cap-drop", "ALL", "--security-opt",
                           "no-new-privileges:true", "--user", "65534:65534", "--init", *publish,
                           "-v", f"{GATEWAY}:/gateway.py:ro", GATEWAY_IMAGE, "python", "/gateway.py", *routes)
        if out.returncode != 0:
            raise StackError(f"the gateway did not start:\n{(out.stdout + out.stderr)[-2000:]}")
        deadline = time.monotonic() + 60
        while "gateway:" not in self._docker("logs", self.gateway, log=False).stdout:
            if time.monotonic() > deadline:
                raise StackError(f"the gateway did not listen within 60s: {self._docker('logs', self.gateway).stderr}")
            time.sleep(0.5)

    # -- stop ---------------------------------------------------------------------------------------------
    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        if self.gateway:
            self._docker("rm", "-f", self.gateway)
        if self.deployed:
            for service in self._services():
                with open(self.run_dir / "logs" / f"swarm-{service}.log", "w") as f:
                    out = self._docker("service", "logs", "--no-task-ids", f"{self.namespace}_{service}",
                                       timeout=60, log=False)
                    f.write(out.stdout + out.stderr)
            self._docker("stack", "rm", self.namespace, timeout=120)
            self._wait_removed()
        if self.initialised_swarm:
            self._docker("swarm", "leave", "--force", timeout=120)
            if self.made_gwbridge:
                self._docker("network", "rm", "docker_gwbridge")

    def _wait_removed(self) -> None:
        """`docker stack rm` returns before the tasks and networks are gone; a swarm left meanwhile would
        leave them behind."""
        deadline = time.monotonic() + 120
        label = f"label=com.docker.stack.namespace={self.namespace}"
        while time.monotonic() < deadline:
            left = (self._docker("ps", "-aq", "--filter", label, log=False).stdout.split()
                    + self._docker("network", "ls", "-q", "--filter", label, log=False).stdout.split())
            if not left:
                return
            time.sleep(1)

    # -- what the matrix asks of a stack ---------------------------------------------------------------------
    def exec_in(self, service: str, argv: list[str]) -> subprocess.CompletedProcess:
        containers = self._containers(service)
        if not containers:
            return subprocess.CompletedProcess(argv, 1, "", f"no running task of {service}")
        return self._docker("exec", containers[0], *argv, timeout=60, log=False)

    def live_processes(self) -> set[str] | None:
        live: set[str] = set()
        probe = "import os; print(os.uname().nodename, *(p for p in os.listdir('/proc') if p.isdigit()))"
        for container in self._containers("app"):
            words = self._docker("exec", container, "python", "-c", probe, timeout=60, log=False).stdout.split()
            if not words:
                return None
            live |= {f"{words[0]}/{pid}" for pid in words[1:]}
        return live

