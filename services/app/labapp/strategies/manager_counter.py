"""A counter held by a multiprocessing.Manager server that the runner starts.

Shared by every process of one host (the manager is reached over a socket);
a proxy must not be shared between threads, so each thread connects on its own.
Under patched gevent, ``threading.local`` is per greenlet, so every request
opens a fresh connection - fragile, and the lab reports what really happens.
"""

from __future__ import annotations

import threading

from ..errors import SidecarUnreachable
from ..manager import ClientManager, parse_address
from .base import CounterStrategy


class ManagerCounter(CounterStrategy):
    _local = threading.local()

    def _proxy(self):
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            settings = self.res.settings
            if not settings.manager_address or not settings.manager_authkey:
                raise SidecarUnreachable("manager unreachable: LAB_MANAGER_ADDRESS/LAB_MANAGER_AUTHKEY not set")
            manager = ClientManager(
                address=parse_address(settings.manager_address), authkey=settings.manager_authkey.encode()
            )
            try:
                manager.connect()
            except OSError as exc:
                raise SidecarUnreachable(f"manager unreachable: {exc}") from exc
            proxy = manager.counters()
            self._local.proxy = proxy
        return proxy

    def incr(self, key):
        return int(self._proxy().incr(key))

    def read(self, key):
        return int(self._proxy().read(key))


STRATEGIES = [
    ManagerCounter(
        "mp-manager", "counter", "multiprocessing.Manager server, one locked incr per call", ("manager",), question=6,
        lives="store", updates="atomic", store="the manager server (under its lock)")
]
