"""What people look at, looked at in a real browser: report.html and locust's live Verdict tab.

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
import urllib.error
import urllib.parse
import urllib.request
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

from labtools import get_json, post, wait_for  # noqa: E402

from workerlab.html_report import VERDICT_TINTS, render_report  # noqa: E402
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
        assert int(_row_value(page, "lost updates")) > 0
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
    assert code == 0, output
    assert "stopping" in output
    with pytest.raises((urllib.error.URLError, OSError)):
        urllib.request.urlopen(f"{base}/", timeout=2)
