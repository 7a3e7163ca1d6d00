"""The same-user set-up must get its shared session cookie, or the cell is an error - never a verdict.

Every user of a ``*-same-user`` cell sends the one session cookie the driver's set-up request got back
(loadtests/driver.py ``prepare_same_user``). Were it missing, every user would silently get a session of
its own, and the counter check would read that as the expected lost updates. Here the real app (Flask's
threaded server, the dev-threaded model) is driven by the real driver and judged by the real matrix code,
once as it is and once behind a proxy that drops Set-Cookie (as nginx's ``proxy_hide_header Set-Cookie``
would). The same cells on the full stacks are in test_verdicts.py.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from labapp.factory import create_app
from labapp.settings import Settings
from rich.console import Console
from werkzeug.serving import make_server

from workerlab.matrix import Matrix, RunSettings
from workerlab.present.terminal import TerminalReport
from workerlab.runner import run_steps
from workerlab.strategies import STRATEGIES

STRATEGY = "server-session-fs-same-user"
REQUESTS, USERS = 200, 20


def without_set_cookie(app):
    """A WSGI wrapper that drops every Set-Cookie header: the app still answers 200, with no cookie."""
    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [(k, v) for k, v in headers if k.lower() != "set-cookie"], exc_info)
        return app(environ, start)
    return wrapped


@dataclass
class OneServer:
    """The stack the matrix runs against: one app server in this process (no nginx, no sidecars)."""

    url: str
    run_dir: Path

    @property
    def instance_urls(self) -> list[str]:
        return [self.url]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class OneServerMatrix(Matrix):
    """The real matrix (plan, driver, judging, results.json), run against OneServer."""

    stack: OneServer

    def open_stack(self, step):
        return self.stack


def judged_cell(tmp_path, scenarios, strip_cookies: bool) -> dict:
    app = create_app(Settings(data_dir=str(tmp_path / "data"), worker_class="dev-server"))
    server = make_server("127.0.0.1", 0, without_set_cookie(app) if strip_cookies else app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scenario = scenarios["dev-threaded"]
    (tmp_path / "run").mkdir()
    report = TerminalReport(1, console=Console(file=io.StringIO()), mode="quiet")
    matrix = OneServerMatrix({scenario.name: scenario}, {STRATEGY: STRATEGIES[STRATEGY]},
                             RunSettings(requests=REQUESTS, users=USERS), tmp_path / "run", report)
    matrix.stack = OneServer(f"http://127.0.0.1:{server.server_port}", tmp_path / "run" / scenario.name)
    try:
        run_steps(matrix)
    finally:
        server.shutdown()
        thread.join(10)
    data = json.loads((tmp_path / "run" / "results.json").read_text())  # what the run wrote
    [cell] = data["cells"]
    assert data["summary"]["errors"] == (1 if strip_cookies else 0)
    return cell


def test_same_user_setup_with_its_cookie_is_judged(tmp_path, scenarios):
    cell = judged_cell(tmp_path, scenarios, strip_cookies=False)
    assert cell["error"] is None, cell
    assert cell["observed"]["verdict"] == ["lost-updates"], cell
    # One shared session: its value at rest is far past what any one user's own session could count.
    assert cell["counts"]["final"] > REQUESTS // USERS, cell["counts"]


def test_same_user_setup_without_a_cookie_is_an_error_not_a_verdict(tmp_path, scenarios):
    cell = judged_cell(tmp_path, scenarios, strip_cookies=True)
    assert cell["observed"]["verdict"] == ["error"] and not cell["match"], cell
    assert "lost-updates" not in cell["observed"]["verdict"]
    assert "NoSessionCookie" in cell["error"], cell["error"]
    assert "got no session cookie (HTTP 200)" in cell["error"], cell["error"]
    assert "every user would get a session of its own" in cell["error"]
    assert cell["throughput"] is None and cell["counts"] == {}
