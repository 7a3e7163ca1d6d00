"""A graceful stop (locust's --stop-timeout, as the web UI's master runs) never cuts a request in flight.

locust kills a user it finds waiting between two tasks. With the lab's ``wait_time`` 0 that wait is a
``gevent.sleep(0)`` whose wake-up is queued before the kill: the user wakes, sends its next request, and the
kill lands on it - recorded as unanswered, a ``no-answer`` verdict where nothing went wrong (the Verdict
tab under distributed locust, tests/test_webui_distributed.py). The race is forced here: the user is asked
to stop exactly while it waits, the way locust's ``stop_users`` asks every user (``User.stop(force=False)``).
"""

from __future__ import annotations

import json
import subprocess
import sys

from labtools import ROOT, wait_for

from workerlab.procs import free_port

RACE = """
import json, sys
import gevent
from locust import events
from locust.env import Environment
from loadtests import locustfile as lf

lf.Cell.path = "/"
stops = []

class Racing(lf.PathUser):
    abstract = False

    def wait_time(self):  # called inside TaskSet.wait(), the user's state already "waiting"
        if lf.RECORDER.load_count >= 3 and not stops:
            stops.append(self._state)
            gevent.spawn(self.stop)  # as locust's stop_users does with a stop timeout: force=False
        return 0

env = Environment(user_classes=[Racing], events=events, host=sys.argv[1], stop_timeout=10)
runner = env.create_local_runner()
runner.start(1, spawn_rate=1)
deadline = gevent.time.monotonic() + 20
while (not stops or runner.user_count) and gevent.time.monotonic() < deadline:
    gevent.sleep(0.01)
gevent.sleep(0.5)  # a kill that was going to land has landed
print(json.dumps({"state_at_stop": stops[0] if stops else None, "users_left": runner.user_count,
                  "sent": lf.RECORDER.load_count, "unanswered": lf.RECORDER.unanswered}))
"""


def test_a_stop_while_the_user_waits_lets_no_request_go_unanswered(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import urllib.request

        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200, 30,
                 "a plain HTTP server")
        out = subprocess.run([sys.executable, "-c", RACE, f"http://127.0.0.1:{port}"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=15)
    assert result["state_at_stop"] == "waiting", result  # the race really was run
    assert result["users_left"] == 0, result  # the user did stop
    assert result["unanswered"] == 0, result  # ... and cut no request on its way out
