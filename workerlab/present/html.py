"""report.html (one run) and compare.html (two runs), rendered from results.json alone.

Everything the page shows comes from results.json (schema in results.py), so any old run
can be re-rendered. Charts are drawn with matplotlib and inlined as SVG, the styles and
the little script are inlined too: the file opens offline, anywhere.

A run folder that also holds mutants.json (``workerlab mutants``: results.json then holds the mutants'
clean controls) gets a Mutants section: each mutant, its cell, the control's and the mutated verdict, caught
or not.

Optional key read from results.json: ``"ceilings"``, e.g. ``{"hello_rps": 2100.0,
"nginx_rps": 9000.0, "redis_incr_ops": 40000.0}`` (numbers; a value may also be
``{"value": n, ...}`` or ``{scenario: n, ...}`` for per-scenario ceilings). Absent: the
page says "not measured".
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

import jinja2
from markupsafe import Markup

from loadtests.verdicts import COLOURS as VERDICT_COLOURS
from loadtests.verdicts import ERROR, VERDICTS
from loadtests.verdicts import MATRIX_WORDS as VERDICT_WORDS
from loadtests.verdicts import TINTS as VERDICT_TINTS

from ..results import SCHEMA, of_planned, scenario_order, strategy_order, verdict_words
from ..runfile import MUTANTS_SCHEMA, write_atomic
from .charts import ceilings, chart_cells, chart_compare, chart_latency, chart_scenarios

TEMPLATES = Path(__file__).resolve().parent / "templates"
HEADLINE_COUNTS = ("lost", "duplicates", "leaked_responses", "users_wrong_sequence", "users_diverged", "errors",
                   "realtime_violations", "distinct_final_values")


class ResultsError(ValueError):
    """Not a readable worker-lab results.json."""


# -- loading -----------------------------------------------------------------------------------------------------
def results_path(path: Path) -> Path:
    path = Path(path)
    return path / "results.json" if path.is_dir() else path


def load_results(path: Path) -> dict:
    file = results_path(path)
    try:
        data = json.loads(file.read_text())
    except OSError as exc:
        raise ResultsError(f"{file}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ResultsError(f"{file}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ResultsError(f"{file}: not a worker-lab results file (schema {got!r})")
    for key, empty in (("cells", []), ("scenarios", {}), ("settings", {}), ("summary", {}), ("versions", {}),
                       ("machine", {}), ("status", "?"), ("run_id", file.parent.name), ("started", None),
                       ("finished", None)):
        if data.get(key) is None:
            data[key] = empty
    return data


def load_mutants(run_dir: Path) -> dict | None:
    """The run folder's mutants.json, or None when it has none (every run but ``workerlab mutants``)."""
    file = Path(run_dir) / "mutants.json"
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{file}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != MUTANTS_SCHEMA:
        raise ResultsError(f"{file}: not a worker-lab mutants file (schema "
                           f"{data.get('schema') if isinstance(data, dict) else None!r})")
    return data


def newest_run(results_dir: Path) -> Path:
    """The newest run folder (timestamp names sort in time order) that holds a results.json."""
    runs = [p.parent for p in Path(results_dir).glob("*/results.json")]
    if not runs:
        raise ResultsError(f"no run under {results_dir} (run `python -m workerlab run` first)")
    return max(runs, key=lambda p: (p.name, p.stat().st_mtime))


# -- the model the templates see ------------------------------------------------------------------------------------
def verdict_label(cell: dict | None, side: str = "observed") -> str:
    if not cell:
        return ""
    label = (cell.get(side) or {}).get("label")
    return label or "+".join(verdict_words(cell, side)) or "?"


def cell_background(words: list[str]) -> str:
    """A CSS background: one tint, or equal stripes of each word's tint (lost-updates+diverges)."""
    tints = [VERDICT_TINTS.get(w, "#eeeeee") for w in words] or ["#f5f5f5"]
    if len(tints) == 1:
        return tints[0]
    step = 100 / len(tints)
    stops = ", ".join(f"{t} {i * step:.0f}% {(i + 1) * step:.0f}%" for i, t in enumerate(tints))
    return f"linear-gradient(135deg, {stops})"


def evidence(cell: dict) -> list[tuple[str, object]]:
    counts = cell.get("counts") or {}
    shown = [(k, counts[k]) for k in HEADLINE_COUNTS if counts.get(k) and k != "distinct_final_values"]
    if (counts.get("distinct_final_values") or 0) > 1:
        shown.append(("distinct_final_values", counts["distinct_final_values"]))
    return shown


def cell_view(cell: dict) -> dict:
    observed = verdict_words(cell)
    t = cell.get("throughput") or {}
    return {
        "scenario": cell["scenario"],
        "strategy": cell["strategy"],
        "check": cell.get("check"),
        "question": cell.get("question"),
        "observed": verdict_label(cell),
        "observed_words": observed,
        "expected": verdict_label(cell, "expected"),
        "reason": (cell.get("expected") or {}).get("reason") or "",
        "match": cell.get("match") is not False,  # null: not judged, never shown as a mismatch
        "judged": cell.get("match") is not None,
        "error": cell.get("error"),
        "not_the_cause": cell.get("not_the_cause") or {},
        "background": cell_background([ERROR] if cell.get("error") else observed),
        "evidence": evidence(cell),
        "counts": cell.get("counts") or {},
        "examples": cell.get("examples") or [],
        "notes": cell.get("notes") or [],
        "throughput": t,
        "history": cell.get("history"),
        "example_brief": json.dumps(_rounded(cell["examples"][0]), separators=(", ", ": "))[:240]
        if cell.get("examples") else "",
    }


def _rounded(value):
    """Example entries with their clock readings shortened to milliseconds, for the hover text."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals["verdict_css"] = verdict_css()
    env.globals["verdicts"] = VERDICTS
    env.filters["num"] = _num
    env.filters["breakable"] = _breakable
    env.filters["pct"] = lambda v: f"{100 * v:.0f}%" if isinstance(v, int | float) else ""
    env.filters["pretty"] = lambda v: json.dumps(v, indent=1, default=str)
    env.filters["yesno"] = lambda v: "-" if v is None or isinstance(v, jinja2.Undefined) else "yes" if v else "NO"
    return env


def verdict_css() -> str:
    """Each verdict's colour and tint as CSS custom properties (``--v-correct``, ``--v-correct-tint``, ...):
    _style.css reads them, so the page's colours are those of loadtests/verdicts.py."""
    props = "".join(f"\n  --v-{v.word}: {v.colour}; --v-{v.word}-tint: {v.tint};" for v in VERDICTS.values())
    return f":root {{{props}\n}}"


def _breakable(label) -> Markup:
    """A verdict label that may wrap after a '+' (lost-updates+<wbr>diverges) but never inside a word."""
    words = [Markup('<span class="vw">{}</span>').format(w) for w in str(label).split("+")]
    if len(words) < 2:
        return words[0]
    return Markup('<span class="vws">{}</span>').format(Markup("+<wbr>").join(words))


def _num(value, digits: int = 0) -> str:
    if isinstance(value, jinja2.Undefined) or value is None:
        return ""
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def cpus_usable(machine: dict) -> str | None:
    """The CPUs the lab's process could use, in words: its affinity and its cgroup's CPU quota."""
    if "cpu_affinity" not in machine and "cpu_quota" not in machine:
        return None  # a results.json from before these were recorded
    affinity, quota = machine.get("cpu_affinity"), machine.get("cpu_quota")
    parts = [f"{len(affinity)} of {machine.get('cpu_count', '?')} by affinity (CPUs "
             f"{', '.join(map(str, affinity))})" if affinity else "affinity unknown"]
    if not quota:
        parts.append("no cgroup CPU controller found")
    elif quota.get("cpus") is None:
        parts.append(f"no CPU quota (cgroup {quota.get('cgroup')})")
    else:
        parts.append(f"quota {quota['cpus']:g} CPUs (cgroup {quota.get('cgroup')}: {quota.get('quota_us')} µs per "
                     f"{quota.get('period_us')} µs)")
    return "; ".join(parts)


def page_context(data: dict, mutants: dict | None = None) -> dict:
    scenarios = scenario_order(data)
    strategies = strategy_order(data)
    cells = []
    by = {}
    for c in data["cells"]:
        view = {**cell_view(c), "index": len(cells)}
        cells.append(view)
        by[(c["strategy"], c["scenario"])] = view
    found = ceilings(data)
    return {
        "data": data,
        "run_id": data.get("run_id", "?"),
        "scenarios": scenarios,
        "strategies": strategies,
        "grid": by,
        "cells": cells,
        "summary": data.get("summary") or {},
        "of_planned": of_planned(data),
        "cpus_usable": cpus_usable(data.get("machine") or {}),
        "served_versions": {n: s["served_versions"] for n, s in (data.get("scenarios") or {}).items()
                            if isinstance(s, dict) and s.get("served_versions")},
        "scenario_errors": {n: s.get("error") for n, s in (data.get("scenarios") or {}).items()
                            if isinstance(s, dict) and s.get("error")},
        "mutants": mutants,
        "endpoints": data.get("endpoints") or {},  # a run of the user's app: one plain sentence per endpoint
        "ceilings": found,
        "ceilings_present": "ceilings" in data and bool(data.get("ceilings")),
        "charts": {
            "scenarios": chart_scenarios(data, found),
            "cells": chart_cells(data, found),
            "latency": chart_latency(data),
        },
        "colours": VERDICT_COLOURS,
        "tints": VERDICT_TINTS,
        "words": VERDICT_WORDS,
        "rendered": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def render_html(data: dict, mutants: dict | None = None) -> str:
    return _environment().get_template("report.html.j2").render(**page_context(data, mutants))


def render_report(run_dir: Path) -> Path:
    """Write report.html next to results.json (run_dir may be the folder or the file); return its path."""
    file = results_path(Path(run_dir))
    data = load_results(file)
    out = file.parent / "report.html"
    write_atomic(out, render_html(data, load_mutants(file.parent)))
    return out


# -- comparing two runs --------------------------------------------------------------------------------------------
def _delta_pct(a, b):
    if a in (None, 0) or b is None:
        return None
    return round(100.0 * (b - a) / a, 1)


def beyond_noise(a: float | None, b: float | None, a_range: list | None, b_range: list | None) -> bool | None:
    """A change from a to b counts only when each lies outside the other run's own spread; None when either
    figure is missing. Without a spread (an old results.json, a tiny cell) every difference counts."""
    if a is None or b is None:
        return None

    def inside(value, spread):
        return bool(spread) and spread[0] <= value <= spread[1]

    return not (inside(b, a_range) or inside(a, b_range))


def _cpu_beyond_noise(ta: dict, tb: dict) -> bool | None:
    """CPU per request changed by more than both figures' tick grain (workerlab/cpu.py)."""
    a, b = ta.get("cpu_us_per_request"), tb.get("cpu_us_per_request")
    if a is None or b is None:
        return None
    return abs(b - a) > (ta.get("cpu_us_grain") or 0) + (tb.get("cpu_us_grain") or 0)


def compare(a: dict, b: dict) -> dict:
    """Cell by cell: verdict A -> B, expectation match A -> B, throughput and p99 deltas."""
    by_a = {(c["strategy"], c["scenario"]): c for c in a["cells"]}
    by_b = {(c["strategy"], c["scenario"]): c for c in b["cells"]}
    scenarios = list(dict.fromkeys(scenario_order(a) + scenario_order(b)))
    strategies = list(dict.fromkeys(strategy_order(a) + strategy_order(b)))
    rows = []
    for st in strategies:
        for sc in scenarios:
            ca, cb = by_a.get((st, sc)), by_b.get((st, sc))
            if ca is None and cb is None:
                continue
            ta, tb = (ca or {}).get("throughput") or {}, (cb or {}).get("throughput") or {}
            va, vb = verdict_label(ca), verdict_label(cb)
            rows.append({
                "strategy": st, "scenario": sc,
                "only": "A" if cb is None else "B" if ca is None else None,
                "verdict_a": va, "verdict_b": vb,
                "words_b": verdict_words(cb) or verdict_words(ca),
                "expected_b": verdict_label(cb, "expected") or verdict_label(ca, "expected"),
                "match_a": None if ca is None else bool(ca.get("match")),
                "match_b": None if cb is None else bool(cb.get("match")),
                "verdict_changed": ca is not None and cb is not None and va != vb,
                "match_changed": ca is not None and cb is not None and bool(ca.get("match")) != bool(cb.get("match")),
                "rps_a": ta.get("rps"), "rps_b": tb.get("rps"),
                "rps_delta_pct": _delta_pct(ta.get("rps"), tb.get("rps")),
                "rps_beyond_noise": beyond_noise(ta.get("rps"), tb.get("rps"), ta.get("rps_spread"),
                                                 tb.get("rps_spread")),
                "cpu_a": ta.get("cpu_us_per_request"), "cpu_b": tb.get("cpu_us_per_request"),
                "cpu_delta_pct": _delta_pct(ta.get("cpu_us_per_request"), tb.get("cpu_us_per_request")),
                "cpu_beyond_noise": _cpu_beyond_noise(ta, tb),
                "p99_a": ta.get("p99_ms"), "p99_b": tb.get("p99_ms"),
                "p99_delta_pct": _delta_pct(ta.get("p99_ms"), tb.get("p99_ms")),
                "background": cell_background(verdict_words(cb) or verdict_words(ca)),
            })
    both = [r for r in rows if r["only"] is None]
    deltas = [r["rps_delta_pct"] for r in both if r["rps_delta_pct"] is not None]
    return {
        "a": {"run_id": a.get("run_id"), "status": a.get("status"), "summary": a.get("summary") or {},
              "started": a.get("started")},
        "b": {"run_id": b.get("run_id"), "status": b.get("status"), "summary": b.get("summary") or {},
              "started": b.get("started")},
        "scenarios": scenarios, "strategies": strategies, "rows": rows,
        "grid": {(r["strategy"], r["scenario"]): r for r in rows},
        "summary": {
            "cells_a": len(a["cells"]), "cells_b": len(b["cells"]), "common": len(both),
            "verdict_changes": sum(1 for r in both if r["verdict_changed"]),
            "match_changes": sum(1 for r in both if r["match_changed"]),
            "only_a": sum(1 for r in rows if r["only"] == "A"), "only_b": sum(1 for r in rows if r["only"] == "B"),
            "median_rps_delta_pct": round(statistics.median(deltas), 1) if deltas else None,
            "rps_changes_beyond_noise": sum(1 for r in both if r["rps_beyond_noise"]),
            "rps_within_noise": sum(1 for r in both if r["rps_beyond_noise"] is False),
        },
    }


def render_compare_html(a: dict, b: dict, result: dict | None = None) -> str:
    result = result or compare(a, b)
    return _environment().get_template("compare.html.j2").render(
        cmp=result, chart=chart_compare(a, b), colours=VERDICT_COLOURS, tints=VERDICT_TINTS, words=VERDICT_WORDS,
        rendered=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def write_compare(a_path: Path, b_path: Path, out: Path | None = None) -> tuple[Path, dict]:
    """compare.html, by default next to B's results.json; returns its path and the comparison."""
    a, b = load_results(a_path), load_results(b_path)
    result = compare(a, b)
    out = out or results_path(Path(b_path)).parent / "compare.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_compare_html(a, b, result), encoding="utf-8")
    return out, result
