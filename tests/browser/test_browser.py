"""What people look at, looked at in a real browser: report.html and locust's live Verdict tab - and the
one browser rule the load generator applies itself, the cookie-size limit, checked against Chromium.

Headless Debian Chromium (/usr/bin/chromium) driven by Playwright; skipped without them
(`make browser-test` installs both). Screenshots go to test-output/ (and to docs/img/ with LAB_UPDATE_DOCS_IMG=1).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "results-sample" / "results.json"
SHOTS = ROOT / "test-output"
DOCS_IMG = ROOT / "docs" / "img"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (make browser-test)")

from labtools import get_json, post, run_lab, wait_for  # noqa: E402

from workerlab.present.html import VERDICT_TINTS, render_report  # noqa: E402
from workerlab.procs import free_port  # noqa: E402


def rgb(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(h[i:i + 2], 16) for i in (0, 2, 4)))


def shot(page, name: str, docs: bool = False, **kwargs) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), **kwargs)
    if docs and os.environ.get("LAB_UPDATE_DOCS_IMG"):  # refresh the README's pictures on request only
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / name)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


# -- report.html ---------------------------------------------------------------------------------------------------
def test_report_in_chromium(page, tmp_path):
    data = json.loads(FIXTURE.read_text())
    run = tmp_path / data["run_id"]
    run.mkdir()
    shutil.copy(FIXTURE, run / "results.json")
    page.goto(render_report(run).as_uri())

    cells = page.locator("#verdict-grid td.cell[data-index]")
    assert cells.count() == len(data["cells"])
    shown = {}
    for i in range(cells.count()):
        td = cells.nth(i)
        key = (td.get_attribute("data-strategy"), td.get_attribute("data-scenario"))
        shown[key] = (td.locator(".obs").inner_text().replace("!!", "").strip(),
                      td.evaluate("e => getComputedStyle(e).backgroundColor"))
    for c in data["cells"]:
        label, background = shown[(c["strategy"], c["scenario"])]
        assert label == c["observed"]["label"], c
        if len(c["observed"]["verdict"]) == 1:
            assert background == rgb(VERDICT_TINTS[c["observed"]["verdict"][0]])

    charts = page.locator("figure svg")
    assert charts.count() == 3
    for i in range(3):
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 150

    # hover shows the reason and evidence; click pins every count and example
    target = page.locator('td.cell[data-strategy="naive-global"][data-scenario="gevent-x1"]')
    target.hover()
    tip = target.locator(".tip")
    assert tip.is_visible()
    naive = next(c for c in data["cells"] if (c["strategy"], c["scenario"]) == ("naive-global", "gevent-x1"))
    assert naive["expected"]["reason"] in tip.inner_text()
    assert f"lost={naive['counts']['lost']}" in tip.inner_text()
    page.locator("#verdicts h2").scroll_into_view_if_needed()
    shot(page, "report.png", docs=True)
    target.click()
    detail = page.locator("#detail")
    assert detail.is_visible()
    assert "evidence counts" in detail.inner_text() and str(naive["counts"]["acknowledged"]) in detail.inner_text()
    page.mouse.move(0, 0)
    shot(page, "report-full.png", full_page=True)

def test_the_verdict_grid_of_every_scenario_fits_a_1400_px_window(page, tmp_path):
    """Every scenario of the lab as a column, every strategy as a row, and the widest labels a run shows: no
    column is cut and the page does not scroll sideways at 1,400 px (long labels wrap after '+' and hyphens)."""
    from workerlab.scenarios import load_scenarios
    from workerlab.strategies import STRATEGIES

    data = json.loads(FIXTURE.read_text())
    template = data["cells"][0]
    widest = ["lost-updates", "diverges", "error", "inconclusive"]
    data["scenarios"] = {name: copy.deepcopy(next(iter(data["scenarios"].values()))) for name in load_scenarios()}
    data["cells"] = []
    for i, (strategy, scenario) in enumerate((st, sc) for st in STRATEGIES for sc in data["scenarios"]):
        cell = copy.deepcopy(template)
        cell.update(strategy=strategy, scenario=scenario, match=i % 7 != 0)
        if i % 7 == 0:  # a mismatch with the longest label
            cell["observed"] = {**cell["observed"], "verdict": widest, "label": "+".join(widest)}
        data["cells"].append(cell)
    run = tmp_path / data["run_id"]
    run.mkdir()
    (run / "results.json").write_text(json.dumps(data))
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(render_report(run).as_uri())

    headers = page.locator("#verdict-grid thead th")
    assert headers.count() == 1 + len(data["scenarios"])
    last = headers.nth(headers.count() - 1).bounding_box()
    assert last["x"] + last["width"] <= 1401, last
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400



def test_mismatch_in_chromium(page, tmp_path):
    data = json.loads(FIXTURE.read_text())
    bad = copy.deepcopy(data)
    cell = bad["cells"][1]
    cell["observed"] = {"verdict": ["leaks"], "label": "leaks"}
    cell["match"] = False
    run = tmp_path / "r"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(bad))
    page.goto(render_report(run).as_uri())
    td = page.locator(f'td.cell[data-strategy="{cell["strategy"]}"][data-scenario="{cell["scenario"]}"]')
    assert td.get_attribute("data-match") == "false"
    assert td.evaluate("e => getComputedStyle(e).borderTopColor") == rgb("#c62828")
    assert td.evaluate("e => getComputedStyle(e).backgroundColor") == rgb(VERDICT_TINTS["leaks"])
    assert f"want {cell['expected']['label']}" in td.inner_text()
    assert page.locator("td.cell.mismatch").count() == 1


# -- locust's Verdict tab, through `python -m workerlab ui` ------------------------------------------------------
def _row_value(page, name: str) -> str:
    """The "So far" column of the Verdict tab's row whose "Measure" is exactly name ('' if absent)."""
    return page.evaluate("""name => {
        for (const tr of document.querySelectorAll('tbody tr')) {
            const td = tr.querySelectorAll('td');
            if (td.length > 1 && td[0].textContent.trim() === name) return td[1].textContent.trim();
        }
        return '';
    }""", name)


@pytest.mark.stack
def test_locust_verdict_tab(page, tmp_path):
    port = free_port()
    log = open(tmp_path / "ui.log", "w+")
    ui = subprocess.Popen(
        [sys.executable, "-m", "workerlab", "ui", "gevent-x1", "--strategy", "naive-global", "--port", str(port),
         "-u", "5", "-r", "5"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: ui.poll() is not None or "live verdict" in (tmp_path / "ui.log").read_text(), 60, "locust")
        assert ui.poll() is None, (tmp_path / "ui.log").read_text()

        # a bounded load: a few users through the REST API the start form uses, then /stop below
        started = post(f"{base}/swarm", {"user_count": 5, "spawn_rate": 5})
        assert started["success"], started
        page.goto(f"{base}/?tab=verdict")  # locust shows its tabs once a test runs
        tab = page.get_by_role("tab", name="Verdict")
        tab.wait_for()
        assert tab.get_attribute("aria-selected") == "true"
        # the tab refreshes itself from /stats/requests every 2 s while users run
        wait_for(lambda: int(_row_value(page, "requests recorded") or 0) >= 300, 40, "300 recorded requests")
        wait_for(lambda: int(_row_value(page, "duplicates") or 0) > 0, 20, "duplicates in the tab")
        assert "lost-updates" in _row_value(page, "verdict so far")
        # Lost updates need the counter at rest: before Stop there is no final read, and nothing stands in for it.
        assert _row_value(page, "lost updates") == "-"
        assert _row_value(page, "strategy / check") == "naive-global / counter"
        shot(page, "locust-verdict.png", docs=True)

        post(f"{base}/stop")
        final = wait_for(lambda: (d := get_json(f"{base}/verdict.json"))["snapshot"]["final_reads"].startswith("done")
                      and d, 30, "final reads")
        snap = final["snapshot"]
        assert snap["label"] == "lost-updates"
        assert snap["counts"]["processes_read_at_end"] == 1
        assert snap["counts"]["lost"] > 0 and snap["counts"]["final"] < snap["counts"]["acknowledged"]

        page.goto(f"{base}/verdict")
        page.wait_for_function("document.querySelector('#counts tbody').children.length > 3")
        assert page.locator("#verdict").inner_text() == "lost-updates"
        assert "done" in page.locator("#meta").inner_text()
        shot(page, "locust-verdict-page.png")
    finally:
        if ui.poll() is None:
            ui.send_signal(signal.SIGINT)  # what Ctrl-C does
        try:
            code = ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ui.kill()
            raise
        log.seek(0)
        output = log.read()
        log.close()
    assert code == 130, output  # Ctrl-C: 128 + SIGINT, the one signal policy (workerlab/interrupt.py)
    assert "stopping" in output
    with pytest.raises((urllib.error.URLError, OSError)):
        urllib.request.urlopen(f"{base}/", timeout=2)


# -- the cookie-size rule: what Chromium really does, and the load generator's copy of it -----------------------
FLASK_COOKIE_ATTRIBUTES = "; HttpOnly; Path=/; SameSite=Lax"  # what the lab's app adds to its session cookie
BIG_SESSION_STEPS = 15


def locust_keeps(set_cookies: list[str | None]) -> list[str | None]:
    """The locust users' rule (loadtests/locustfile.py browser_keeps) on each Set-Cookie header.

    In a child process: importing locust monkey-patches the whole process with gevent.
    """
    code = ("import json, sys\nfrom loadtests.locustfile import browser_keeps\n"
            "print(json.dumps([browser_keeps(h) for h in json.load(sys.stdin)]))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(set_cookies), cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


class _CookieServer(BaseHTTPRequestHandler):
    """GET /set?h=HEADER answers with that Set-Cookie; every answer echoes the Cookie header it was sent."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        body = json.dumps({"cookie": self.headers.get("Cookie")}).encode()
        self.send_response(200)
        if "h" in query:
            self.send_header("Set-Cookie", query["h"][0])
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_chromium_cookie_limit_is_name_plus_value_4096_bytes(page, browser):
    """Chromium keeps a cookie whose name+value is at most 4096 bytes, whatever its attributes add; so does locust.

    The rule the load generator used before counted the whole Set-Cookie header (attributes included): it
    dropped cookies of 4057..4089 bytes of value that Chromium keeps (the 4070 + Flask's attributes case).
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CookieServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    cases = [(size, attributes) for attributes in ("", FLASK_COOKIE_ATTRIBUTES) for size in (4070, 4095, 4096, 4097)]
    headers = [f"session={'v' * (size - len('session'))}{attributes}" for size, attributes in cases]
    try:
        kept_by_chromium = []
        for header in headers:
            browser.clear_cookies()
            page.goto(f"{base}/set?h={urllib.parse.quote(header)}")
            page.goto(f"{base}/echo")
            kept_by_chromium.append(json.loads(page.inner_text("body"))["cookie"])
    finally:
        server.shutdown()
        browser.clear_cookies()
    measured = {(size, attributes): cookie is not None for (size, attributes), cookie in zip(cases, kept_by_chromium,
                                                                                                 strict=True)}
    assert measured == {(size, attributes): size <= 4096 for size, attributes in cases}, measured
    for header, cookie in zip(headers, kept_by_chromium, strict=True):
        assert cookie is None or cookie == header.split(";")[0]  # kept whole, never cut short
    assert locust_keeps(headers) == kept_by_chromium


@pytest.mark.stack
def test_cookie_session_big_stops_advancing_in_chromium_as_in_the_lab(page, browser, gthread_stack, tmp_path):
    """cookie-session-big in Chromium: past 4096 bytes the new cookie is ignored, the old one is sent again, and
    the counter stops advancing. The locust users' rule keeps exactly the cookies Chromium kept, and the lab's
    own history for the strategy shows the same sequence of values."""
    browser.clear_cookies()
    sent, set_cookies, values = [], [], []
    for _ in range(BIG_SESSION_STEPS):
        response = page.goto(f"{gthread_stack.url}/s/cookie-session-big/incr?client=x")
        assert response.status == 200, response.text()
        sent.append(response.request.all_headers().get("cookie"))
        set_cookies.append(response.all_headers().get("set-cookie"))
        values.append(response.json()["value"])
    browser.clear_cookies()

    sizes = [len(h.split(";")[0]) - 1 for h in set_cookies]  # name + value, without the "="
    first_too_big = next(i for i, size in enumerate(sizes) if size > 4096)
    assert all(size <= 4096 for size in sizes[:first_too_big]), sizes
    plateau = first_too_big + 1
    # 1, 2, ... up to the request whose cookie was ignored; then that value again and again.
    assert values == [min(i + 1, plateau) for i in range(BIG_SESSION_STEPS)], (values, sizes)
    assert BIG_SESSION_STEPS - plateau >= 3, "too few requests past the limit to show the plateau"
    # What Chromium sent: nothing first, then the last cookie it kept - the one before the limit, over and over.
    kept = set_cookies[first_too_big - 1].split(";")[0]
    assert sent[0] is None and sent[first_too_big + 1:] == [kept] * (BIG_SESSION_STEPS - first_too_big - 1)

    # The load generator's rule on the very answers Chromium got: the same cookie sent on every request.
    jar, rule_sent = None, []
    for keep in locust_keeps(set_cookies):
        rule_sent.append(jar)
        jar = keep or jar
    assert rule_sent == sent

    # And the lab itself (locust's SessionUser through the driver): every user's values, the same sequence.
    proc, data = run_lab(["-s", "gthread-2x8", "-t", "cookie-session-big", "-n", "200", "-u", "10"], tmp_path)
    assert data is not None, proc.stderr[-3000:]
    [cell] = data["cells"]
    assert cell["observed"]["verdict"] == ["lost-updates"] and cell["match"], cell
    by_user: dict[str, list] = {}
    for line in (tmp_path / data["run_id"] / cell["history"]).read_text().splitlines():
        entry = json.loads(line)
        if entry.get("phase", "load") == "load" and entry["status"] == 200:
            by_user.setdefault(entry["client"], []).append((entry["req"], entry["value"]))
    assert by_user
    for user, entries in by_user.items():
        lab_values = [v for _, v in sorted(entries)]
        assert len(lab_values) > plateau, (user, lab_values)
        assert lab_values == [min(i + 1, plateau) for i in range(len(lab_values))], (user, lab_values, values)
