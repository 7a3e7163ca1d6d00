"""`--target URL`: a deployment the lab did not start. Nothing is started or stopped; the URL must answer,
and a non-loopback one is refused unless its owner says so (--i-own-this-target): the lab sends load."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ..procs import ManagedStack, StackError
from ..scenarios import Scenario
from .stack import answers

# Caps on what a target run sends, whatever is asked: per endpoint, and seconds per endpoint's load.
MAX_TARGET_REQUESTS = 10_000
MAX_TARGET_CELL_SECONDS = 60.0


class TargetRefused(ValueError):
    """A target the lab will not load (not loopback without the owner's word, not an http URL)."""


def check_target(url: str, i_own_it: bool) -> str:
    """The target's base URL (no trailing '/'), or TargetRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"--target {url!r}: give an http(s) URL, e.g. http://127.0.0.1:8080")
    if parts.query or parts.fragment:
        raise TargetRefused(f"--target {url!r}: a base URL without ?query or #fragment")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 80)}
    except OSError as exc:
        raise TargetRefused(f"--target {url!r}: cannot resolve {parts.hostname}: {exc}") from None
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if remote and not i_own_it:
        raise TargetRefused(f"--target {url!r} resolves to {', '.join(remote)}, not loopback: the lab sends load "
                            "there. Add --i-own-this-target if it is yours to load.")
    return url.rstrip("/")


def target_scenario(url: str) -> Scenario:
    """The one column of a target run: what runs there is not known to the lab."""
    return Scenario(name="target", description=f"a deployment the lab did not start: {url}", server="target",
                    worker_class="unknown")


class TargetStack(ManagedStack):
    def __init__(self, url: str, health: str, folder):
        self.url = url
        self.health = health
        self.instance_urls = [url]  # final reads go through the URL (its instances are not known)
        self.run_dir = folder  # the driver's logs and histories

    def start(self) -> None:
        if not answers(self.url + self.health):
            raise StackError(f"the target {self.url} does not answer {self.health}")

    def stop(self) -> None:
        pass
