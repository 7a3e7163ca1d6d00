"""A multiprocessing.Manager server holding counters for every process on this host.

Run it with ``python -m labapp.manager --address 127.0.0.1:PORT``; the authkey
comes from LAB_MANAGER_AUTHKEY (never argv, where ``ps`` would show it). The app
connects by address and authkey.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from multiprocessing.managers import BaseManager


class CounterStore:
    """Lives in the manager server; each call runs there under one lock."""

    def __init__(self):
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def incr(self, key: str) -> int:
        with self._lock:
            self._values[key] = self._values.get(key, 0) + 1
            return self._values[key]

    def read(self, key: str) -> int:
        with self._lock:
            return self._values.get(key, 0)


_STORE = CounterStore()


def _store() -> CounterStore:
    return _STORE


class CounterManager(BaseManager):
    pass


CounterManager.register("counters", callable=_store)


class ClientManager(BaseManager):
    pass


ClientManager.register("counters")


# multiprocessing's manager Server listens with a backlog of 16 (Lib/multiprocessing/managers.py). A client
# opens about three connections per new proxy, and a thread-per-request server (the Flask dev server's
# threaded mode) makes a new proxy per request: at 50 concurrent users the accept queue overflows, the kernel
# drops the SYNs (TcpExtListenOverflows counted 588 in one 2,000-request cell), and clients retry after 1, 3,
# 7, 15 s - requests stalled past the cell's limit. A server meant for many clients listens with room.
LISTEN_BACKLOG = 1024


def widen_backlog(server) -> None:
    """Listen again with LISTEN_BACKLOG (Linux updates the backlog of a listening socket in place)."""
    sock = getattr(getattr(server.listener, "_listener", None), "_socket", None)
    if sock is not None:
        sock.listen(LISTEN_BACKLOG)


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="host:port to listen on")
    args = parser.parse_args(argv)
    authkey = os.environ.get("LAB_MANAGER_AUTHKEY")
    if not authkey:
        print("LAB_MANAGER_AUTHKEY is not set", file=sys.stderr)
        return 2
    manager = CounterManager(address=parse_address(args.address), authkey=authkey.encode())
    server = manager.get_server()
    widen_backlog(server)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"manager listening on {args.address}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
