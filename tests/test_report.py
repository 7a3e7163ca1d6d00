"""report.html and compare.html, rendered from a stored results.json of a real run.

The fixture (tests/fixtures/results-sample/results.json) came from
``python -m workerlab run -s sync-x4,gevent-x1 -t naive-global,redis-incr,iso-thread-local,cookie-session
-n 300 -u 20``. No server is started here.
"""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from workerlab import report_cli
from workerlab.cli import main
from workerlab.present import html as html_report
from workerlab.present.html import VERDICT_TINTS, compare, load_results, render_report

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "results-sample" / "results.json"


class Cells(HTMLParser):
    """Collects the verdict grid's <td class="cell"> attributes, and the ids of figures holding an <svg>."""

    def __init__(self):
        super().__init__()
        self.cells: list[dict] = []
        self.figures: dict[str, int] = {}
        self._figure: str | None = None
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "cell" in (a.get("class") or "").split():
            self.cells.append(a)
        if tag == "figure":
            self._figure = a.get("id")
            self.figures[self._figure] = 0
        if tag == "svg" and self._figure:
            self.figures[self._figure] += 1
        if tag in ("script", "img", "iframe") and a.get("src") or tag == "link" and a.get("href"):
            self.external.append(f"{tag} {a}")

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None


def parse(text: str) -> Cells:
    p = Cells()
    p.feed(text)
    return p


@pytest.fixture(scope="module")
def sample() -> dict:
    return load_results(FIXTURE)


def write_run(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def mismatched(data: dict) -> dict:
    """The sample with one cell judged differently: gevent-x1/redis-incr observed lost-updates."""
    data = copy.deepcopy(data)
    for c in data["cells"]:
        if (c["scenario"], c["strategy"]) == ("gevent-x1", "redis-incr"):
            c["observed"] = {"verdict": ["lost-updates"], "label": "lost-updates"}
            c["match"] = False
            c["counts"]["lost"] = 17
            c["throughput"]["rps"] = c["throughput"]["rps"] / 2
    data["summary"]["matched"] -= 1
    data["summary"]["mismatched"] += 1
    data["run_id"] = "later-run"
    return data


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, sample) -> tuple[Path, str]:
    run = write_run(tmp_path_factory.mktemp("run") / sample["run_id"], mismatched(sample))
    out = render_report(run)
    return out, out.read_text()


def test_fixture_is_a_real_run(sample):
    assert sample["status"] == "complete"
    assert {c["scenario"] for c in sample["cells"]} == {"sync-x4", "gevent-x1"}
    assert len(sample["cells"]) == 8
    assert all(c["throughput"]["rps"] for c in sample["cells"])


def test_report_written_next_to_results(rendered):
    out, _ = rendered
    assert out.name == "report.html"
    assert (out.parent / "results.json").exists()


def test_every_cell_in_the_grid_with_its_verdict(rendered, sample):
    _, text = rendered
    cells = {(c["data-strategy"], c["data-scenario"]): c for c in parse(text).cells}
    data = mismatched(sample)
    assert len(cells) == len(data["cells"])
    for c in data["cells"]:
        td = cells[(c["strategy"], c["scenario"])]
        assert td["data-observed"] == c["observed"]["label"]
        assert td["data-expected"] == c["expected"]["label"]
        assert td["data-match"] == ("true" if c["match"] else "false")
        assert VERDICT_TINTS[c["observed"]["verdict"][0]] in td["style"]  # coloured by the observed verdict


def test_mismatch_is_marked(rendered):
    _, text = rendered
    cells = parse(text).cells
    bad = [c for c in cells if "mismatch" in c["class"].split()]
    assert [(c["data-strategy"], c["data-scenario"]) for c in bad] == [("redis-incr", "gevent-x1")]
    assert VERDICT_TINTS["lost-updates"] in bad[0]["style"]
    assert "≠ want correct" in re.sub(r"<[^>]+>", "", text)
    assert "1 differ" in text
    assert "td.cell.mismatch { border: 3px solid var(--bad)" in text


def test_hover_holds_reason_and_evidence(rendered, sample):
    _, text = rendered
    naive = next(c for c in sample["cells"] if (c["scenario"], c["strategy"]) == ("gevent-x1", "naive-global"))
    assert naive["expected"]["reason"] in text
    assert f"lost={naive['counts']['lost']}" in text
    assert 'role="tooltip"' in text
    data = json.loads(re.search(r'<script type="application/json" id="cells-data">(.*?)</script>', text, re.S)[1])
    assert len(data) == 8 and all("counts" in c and "examples" in c for c in data)


def test_charts_are_inline_svg(rendered, sample):
    _, text = rendered
    page = parse(text)
    assert page.figures == {"chart-throughput-scenarios": 1, "chart-throughput-cells": 1, "chart-latency": 1}
    cells_svg = text[text.index('id="chart-throughput-cells"'):text.index('id="chart-latency"')]
    for strategy in ("naive-global", "redis-incr", "iso-thread-local", "cookie-session"):
        assert strategy in cells_svg
    assert "p95" in text[text.index('id="chart-latency"'):]


def test_self_contained(rendered):
    _, text = rendered
    assert parse(text).external == []
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text)  # nothing fetched from a network


def test_ceilings_absent_says_not_measured(rendered):
    _, text = rendered
    assert "not measured" in text
    assert 'id="ceilings-table"' not in text


def test_ceilings_present_are_drawn(tmp_path, sample):
    data = copy.deepcopy(sample)
    data["ceilings"] = {"hello_rps": 2345.0, "nginx_rps": {"value": 9000}, "redis_incr_ops": {"sync-x4": 4000.0}}
    text = render_report(write_run(tmp_path / "r", data)).read_text()
    assert 'id="ceilings-table"' in text and "not measured" not in text
    assert "ceiling hello_rps" in text and "2,345" in text
    assert "ceiling nginx_rps" in text and "9,000" in text
    assert "sync-x4: 4,000" in text


def test_partial_run_renders(tmp_path, sample):
    """A run cut short: a cell that could not run, a scenario that never started, no throughput."""
    data = copy.deepcopy(sample)
    data["status"] = "interrupted"
    data["scenarios"]["dev-single"] = {"description": "x", "error": "nginx exited during start-up"}
    broken = data["cells"][0]
    broken.update({"error": "stack did not start: boom", "throughput": None, "match": False, "counts": {},
                   "examples": [], "observed": {"verdict": ["error"], "label": "error"}})
    text = render_report(write_run(tmp_path / "r", data)).read_text()
    assert "nginx exited during start-up" in text
    assert "stack did not start: boom" in text
    cells = parse(text).cells
    assert sum(1 for c in cells if "empty" in c["class"]) == 4  # dev-single column: nothing ran


def test_interrupted_run_says_how_many_planned_cells_it_judged(tmp_path, sample):
    data = copy.deepcopy(sample)
    data["status"] = "interrupted"
    data["summary"]["planned"] = 20
    text = render_report(write_run(tmp_path / "r", data)).read_text()
    assert re.search(r'<span class="badge part" id="planned">\s*8 of 20 planned cells run\s*</span>', text)


def test_complete_run_shows_no_planned_badge(rendered, tmp_path, sample):
    _, text = rendered  # no "planned" in the fixture: an older results.json
    assert 'id="planned"' not in text
    data = copy.deepcopy(sample)
    data["summary"]["planned"] = 8
    assert 'id="planned"' not in render_report(write_run(tmp_path / "r", data)).read_text()


def test_compose_run_shows_the_versions_that_served_beside_the_hosts(tmp_path, sample):
    data = copy.deepcopy(sample)
    data["settings"]["engine"] = "compose"
    served = {**{k: v for k, v in data["versions"].items() if k != "locust"}, "nginx": "1.27.5", "python": "3.11.13"}
    for name in ("sync-x4", "gevent-x1"):
        data["scenarios"][name]["served_versions"] = served
    text = render_report(write_run(tmp_path / "r", data)).read_text()
    assert "versions on this host (the load generator)" in text
    table = text[text.index('id="served-versions"'):text.index("</table>", text.index('id="served-versions"'))]
    assert "<th>sync-x4</th><th>gevent-x1</th>" in table
    assert "<tr><td>nginx</td><td>1.27.5</td><td>1.27.5</td></tr>" in table
    assert "<tr><td>python</td><td>3.11.13</td><td>3.11.13</td></tr>" in table


def test_native_run_has_no_served_versions_table(rendered):
    _, text = rendered
    assert 'id="served-versions"' not in text and "on this host" not in text


def test_machine_shows_the_cpus_usable(tmp_path, sample):
    data = copy.deepcopy(sample)
    data["machine"].update(cpu_affinity=[1], cpu_quota={"cgroup": "v1", "path": "/sys/fs/cgroup/cpu", "quota_us":
                                                        150000, "period_us": 100000, "cpus": 1.5})
    text = render_report(write_run(tmp_path / "r", data)).read_text()
    assert "1 of 2 by affinity (CPUs 1); quota 1.5 CPUs (cgroup v1: 150000 µs per 100000 µs)" in text
    data["machine"]["cpu_quota"] = {"cgroup": "v1", "quota_us": None, "period_us": 100000, "cpus": None}
    text = render_report(write_run(tmp_path / "r", data)).read_text()
    assert "no CPU quota (cgroup v1)" in text


def test_compare_finds_changes(sample):
    later = mismatched(sample)
    result = compare(sample, later)
    assert result["summary"]["verdict_changes"] == 1
    assert result["summary"]["match_changes"] == 1
    assert result["summary"]["common"] == 8
    row = result["grid"][("redis-incr", "gevent-x1")]
    assert (row["verdict_a"], row["verdict_b"]) == ("correct", "lost-updates")
    assert row["rps_delta_pct"] == pytest.approx(-50.0, abs=0.2)
    assert result["grid"][("naive-global", "sync-x4")]["rps_delta_pct"] == 0.0


def test_cli_report_and_compare(tmp_path, sample, monkeypatch):
    a = write_run(tmp_path / "results" / "20260101-000000", sample)
    b = write_run(tmp_path / "results" / "20260102-000000", mismatched(sample))
    runner = CliRunner()

    monkeypatch.setattr(report_cli, "RESULTS_DIR", tmp_path / "results")
    res = runner.invoke(main, ["report"])  # newest run
    assert res.exit_code == 0, res.output
    assert res.output.strip().endswith(str(b / "report.html"))
    assert (b / "report.html").exists()

    res = runner.invoke(main, ["report", str(a / "results.json")])
    assert res.exit_code == 0, res.output
    assert (a / "report.html").exists()

    res = runner.invoke(main, ["report", str(a), str(b)], env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "correct -> lost-updates" in res.output
    assert "-50.0%" in res.output
    assert "1 verdict changes" in res.output
    html = (b / "compare.html").read_text()
    assert html.count('data-changed="true"') == 1
    assert 'id="chart-compare"' in html and "<svg" in html

    res = runner.invoke(main, ["report", str(a), str(b), "--changes-only", "-o", str(tmp_path / "c.html")],
                        env={"COLUMNS": "160"})
    assert res.exit_code == 0 and (tmp_path / "c.html").exists()
    assert "naive-global" not in res.output.split("\n", 3)[-1].split("verdict changes")[0]


def test_cli_rejects_other_files(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    res = CliRunner().invoke(main, ["report", str(bad)])
    assert res.exit_code == 1
    assert "not a worker-lab results file" in res.output
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(html_report.ResultsError):
        html_report.newest_run(empty)


def test_fixture_copy_rerenders_identically_but_for_the_time(tmp_path):
    """Any stored run can be rendered again: only the rendering time differs."""
    run = tmp_path / "old"
    run.mkdir()
    shutil.copy(FIXTURE, run / "results.json")
    first = render_report(run).read_text()
    second = render_report(run).read_text()
    strip = re.compile(r"at \d{4}-\d\d-\d\dT[\d:]+\+00:00\.")
    assert strip.sub("", first) == strip.sub("", second)


# -- the terminal grid and the Markdown grid ------------------------------------------------------------------------
def full_matrix(sample: dict) -> dict:
    """The sample's run spread over every scenario and strategy (each cell observed as declared), with two
    mismatches, one of them of four words: the widest grid the terminal has to show."""
    from workerlab.expected import expect
    from workerlab.scenarios import load_scenarios
    from workerlab.strategies import STRATEGIES

    data = copy.deepcopy(sample)
    template = data["cells"][0]
    scenarios = load_scenarios()
    data["scenarios"] = {n: {"description": s.description, "error": None} for n, s in scenarios.items()}
    data["cells"] = []
    for strategy in STRATEGIES:
        for name, scenario in scenarios.items():
            e = expect(strategy, scenario)
            data["cells"].append({**copy.deepcopy(template), "scenario": name, "strategy": strategy, "match": True,
                                  "expected": {"verdict": sorted(e.verdict), "label": e.label, "reason": e.reason},
                                  "observed": {"verdict": sorted(e.verdict), "label": e.label}})
    by = {(c["strategy"], c["scenario"]): c for c in data["cells"]}
    by[("redis-incr", "gevent-x1")].update(match=False,
                                           observed={"verdict": ["lost-updates"], "label": "lost-updates"})
    words = ["diverges", "error", "leaks", "lost-updates"]
    by[("server-session-redis-same-user", "scale-out-3")].update(
        match=False, observed={"verdict": words, "label": "lost-updates+diverges+leaks+error"})
    return data


def terminal(renderable, width: int) -> list[str]:
    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def test_terminal_grid_is_readable_at_80_columns(sample):
    from workerlab.present.terminal import short_names, verdict_grid

    data = full_matrix(sample)
    lines = terminal(verdict_grid(data), 80)
    text = "\n".join(lines)
    assert "…" not in text  # no cell, header or name cut short
    assert max(len(line) for line in lines) <= 80
    headers = [line.split() for line in lines if line.lstrip().startswith("strategy")]
    short = short_names(list(data["scenarios"]))
    # Every column has its header, in order (in one table, or several side by side in turn when they do not fit).
    assert all(h[0] == "strategy" for h in headers) and [x for h in headers for x in h[1:]] == list(short.values())
    for name, key in short.items():  # and the legend says which scenario it is
        assert re.search(rf"(^|\s){re.escape(key)} {re.escape(name)}(\s|$)", text, re.M), (key, name)
    rows: dict[str, list[str]] = {}
    for line in lines:  # a strategy's cells across the tables, in order
        if line.split() and line.split()[0] in {c["strategy"] for c in data["cells"]}:
            rows.setdefault(line.split()[0], []).extend(line.split()[1:])
    column = {name: i for i, name in enumerate(short)}
    assert len(rows) == len({c["strategy"] for c in data["cells"]}) and all(len(cells) == len(short)
                                                                              for cells in rows.values())
    naive = {"dev-single": "✓", "dev-threaded": "L", "dev-processes": "L", "sync-x1": "✓", "sync-x4": "D",
             "gthread-2x8": "LD", "gevent-x1": "L", "gevent-x4": "LD", "gevent-unpatched": "L", "scale-out-3": "LD"}
    assert {name: rows["naive-global"][column[name]] for name in naive} == naive
    assert rows["redis-incr"][column["gevent-x1"]] == "!L"  # observed lost-updates where correct was expected ...
    assert any("≠✓" in lines[i + 1] for i, x in enumerate(lines) if x.startswith("redis-incr"))  # ... shown below
    assert rows["server-session-redis-same-user"][column["scale-out-3"]] == "!LDXE"
    for word, glyph in (("correct", "✓"), ("lost-updates", "L"), ("diverges", "D"), ("leaks", "X"), ("error", "E")):
        assert f"{glyph} {word}" in text


def test_terminal_grid_shows_full_words_when_wide(sample):
    from workerlab.present.terminal import verdict_grid

    data = full_matrix(sample)
    text = "\n".join(terminal(verdict_grid(data), 400))
    assert "…" not in text
    assert "lost-updates+diverges" in text and "!! lost-updates" in text and "want correct" in text
    for name in data["scenarios"]:
        assert f" {name} " in text
    # the sample's two scenarios fit 80 columns in words
    small = "\n".join(terminal(verdict_grid(sample), 80))
    assert "lost-updates" in small and "sync-x4" in small and "…" not in small


def test_short_names_are_short_and_unique():
    from workerlab.present.terminal import short_names

    assert short_names(["sync-x4", "gthread-2x8", "scale-out-3", "gevent-unpatched", "dev-single"]) == {
        "sync-x4": "sx4", "gthread-2x8": "g2x8", "scale-out-3": "so3", "gevent-unpatched": "gu", "dev-single": "ds"}
    assert short_names(["gevent-x1", "gthread-x1"]) == {"gevent-x1": "gex1", "gthread-x1": "gtx1"}
    assert short_names(["a-b", "a_b"]) == {"a-b": "1", "a_b": "2"}  # no unique short form: numbered


def test_markdown_grid_keeps_full_words(sample):
    from workerlab.results import markdown

    text = markdown(mismatched(sample))
    assert "| strategy | sync-x4 | gevent-x1 |\n|---|---|---|\n| naive-global | diverges | lost-updates |\n" in text
    assert "| redis-incr | correct | !! lost-updates ≠ correct |\n" in text
