"""gunicorn worker classes the lab adds.

``labapp.workers.UnpatchedGeventWorker``: gunicorn's gevent worker without
``monkey.patch_all()``. Requests still run in greenlets (gevent's server), but
``threading``, ``time`` and ``socket`` stay the real ones - the setup in which a
hand-made ``threading.local`` is shared by every greenlet of the worker.
"""

from __future__ import annotations

from gevent import socket
from gunicorn.workers.ggevent import GeventWorker


class UnpatchedGeventWorker(GeventWorker):
    def patch(self):
        # Only what gunicorn needs to serve: its listening sockets as gevent sockets.
        self.sockets = [
            socket.socket(s.FAMILY, socket.SOCK_STREAM, fileno=s.sock.detach()) for s in self.sockets
        ]
