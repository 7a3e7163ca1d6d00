"""The report's charts: matplotlib figures inlined as SVG, drawn from results.json alone (html.py)."""

from __future__ import annotations

import io
import statistics
from dataclasses import dataclass

from loadtests.verdicts import ANY, ERROR
from loadtests.verdicts import COLOURS as VERDICT_COLOURS
from loadtests.verdicts import MATRIX_WORDS as VERDICT_WORDS

from ..results import scenario_order, strategy_order, verdict_words

CEILING_STYLES = ("--", "-.", ":", (0, (5, 1, 1, 1)))
CEILING_COLOURS = ("#1565c0", "#00838f", "#6d4c41", "#546e7a")


@dataclass
class Ceiling:
    name: str
    value: float | None  # one line across every scenario
    per_scenario: dict[str, float]
    raw: object


def ceilings(data: dict) -> list[Ceiling]:
    found = []
    for name, raw in (data.get("ceilings") or {}).items():
        value = None
        per: dict[str, float] = {}
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            value = float(raw)
        elif isinstance(raw, dict):
            for key in ("value", "rps", "ops", "ops_per_s"):
                if isinstance(raw.get(key), int | float):
                    value = float(raw[key])
                    break
            else:
                per = {k: float(v) for k, v in raw.items() if isinstance(v, int | float) and k in data["scenarios"]}
        found.append(Ceiling(name, value, per, raw))
    return found


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# -- charts ------------------------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _svg(fig, name: str) -> str:
    import matplotlib

    buf = io.StringIO()
    # text stays text (small, searchable); a per-chart salt keeps the ids of several inline SVGs apart
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"worker-lab-{name}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "worker-lab"})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _ceiling_lines(ax, found: list[Ceiling], scenario: str | None, vertical: bool) -> int:
    drawn = 0
    for i, c in enumerate(found):
        value = c.value if c.value is not None else c.per_scenario.get(scenario) if scenario else None
        if value is None:
            continue
        kw = {"color": CEILING_COLOURS[i % len(CEILING_COLOURS)], "linestyle": CEILING_STYLES[i % len(CEILING_STYLES)],
              "linewidth": 1.3, "label": f"ceiling {c.name} = {value:,.0f}"}
        (ax.axvline if vertical else ax.axhline)(value, **kw)
        drawn += 1
    return drawn


def chart_scenarios(data: dict, found: list[Ceiling]) -> str | None:
    """Median throughput per scenario (whiskers: slowest and fastest strategy), ceilings as lines."""
    rows = []
    for s in scenario_order(data):
        rps = [(c.get("throughput") or {}).get("rps") for c in data["cells"] if c["scenario"] == s]
        rps = [v for v in rps if v is not None]
        if rps:
            rows.append((s, statistics.median(rps), min(rps), max(rps)))
    if not rows:
        return None
    fig = _figure(max(6.0, 1.0 + 0.9 * len(rows)), 3.8)
    ax = fig.add_subplot()
    x = range(len(rows))
    med = [r[1] for r in rows]
    ax.bar(x, med, color="#5c6bc0", width=0.6, label="median over strategies",
           yerr=[[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]], capsize=4,
           error_kw={"ecolor": "#333", "elinewidth": 1})
    for xi, v in zip(x, med, strict=True):
        ax.annotate(f"{v:,.0f}", (xi, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    for i, c in enumerate(found):  # per-scenario ceilings as short ticks over their bar
        for xi, (s, *_rest) in enumerate(rows):
            if c.value is None and s in c.per_scenario:
                ax.hlines(c.per_scenario[s], xi - 0.4, xi + 0.4, colors=CEILING_COLOURS[i % len(CEILING_COLOURS)],
                          linestyles="dashed", label=f"ceiling {c.name}" if xi == 0 else None)
    _ceiling_lines(ax, found, None, vertical=False)
    ax.set_xticks(list(x), [r[0] for r in rows], rotation=20 if len(rows) > 5 else 0, ha="right" if len(rows) > 5
                  else "center")
    ax.set_ylabel("requests/s")
    ax.set_title("Throughput per scenario (whiskers: slowest..fastest strategy)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    return _svg(fig, "scenarios")


def chart_cells(data: dict, found: list[Ceiling]) -> str | None:
    """Small multiples: one panel per scenario, a bar per strategy coloured by its observed verdict."""
    import matplotlib.patches as mpatches
    from matplotlib.lines import Line2D

    measured = {c["scenario"] for c in data["cells"] if (c.get("throughput") or {}).get("rps") is not None}
    scenarios = [s for s in scenario_order(data) if s in measured]
    if not scenarios:
        return None
    strategies = strategy_order(data)
    by = {(c["strategy"], c["scenario"]): c for c in data["cells"]}
    cols = 1 if len(scenarios) == 1 else 2
    rows = -(-len(scenarios) // cols)
    panel_h = 0.9 + 0.2 * len(strategies)
    fig = _figure(11.0 if cols == 2 else 8.0, 0.6 + rows * panel_h)
    axes = fig.subplots(rows, cols, squeeze=False)
    xmax = max((c.get("throughput") or {}).get("rps") or 0 for c in data["cells"])
    for c in found:
        xmax = max([xmax, c.value or 0, *c.per_scenario.values()])
    for i, ax in enumerate(axes.flat):
        if i >= len(scenarios):
            ax.set_visible(False)
            continue
        s = scenarios[i]
        ys, widths, colours, hatches = [], [], [], []
        for j, st in enumerate(strategies):
            c = by.get((st, s))
            t = (c or {}).get("throughput") or {}
            ys.append(j)
            widths.append(t.get("rps") or 0)
            words = verdict_words(c) if c else []
            colours.append(VERDICT_COLOURS.get(ERROR if (c or {}).get("error") else (words or [ANY])[0]))
            hatches.append("///" if t.get("generator_bound") else "")
        bars = ax.barh(ys, widths, color=colours, height=0.7)
        for bar, hatch in zip(bars, hatches, strict=True):
            if hatch:
                bar.set_hatch(hatch)
                bar.set_edgecolor("white")
        for j, w in enumerate(widths):
            if w:
                ax.annotate(f"{w:,.0f}", (w, j), textcoords="offset points", xytext=(2, 0), va="center", fontsize=6)
        _ceiling_lines(ax, found, s, vertical=True)
        ax.set_yticks(ys, strategies, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, xmax * 1.12 or 1)
        ax.set_title(s, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        if i // cols == rows - 1 or i + cols >= len(scenarios):
            ax.set_xlabel("requests/s", fontsize=8)
    handles = [mpatches.Patch(color=VERDICT_COLOURS[w], label=w) for w in VERDICT_WORDS]
    handles.append(mpatches.Patch(facecolor="#999", hatch="///", edgecolor="white", label="generator-bound"))
    for i, c in enumerate(found):
        handles.append(Line2D(
            [], [], color=CEILING_COLOURS[i % len(CEILING_COLOURS)], linestyle=CEILING_STYLES[i % len(CEILING_STYLES)],
            label=f"ceiling {c.name}"))
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    return _svg(fig, "cells")


def chart_latency(data: dict) -> str | None:
    """p50 / p95 / p99 per scenario: the median of each over the scenario's cells (log scale)."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = []
    for s in scenario_order(data):
        ts = [c.get("throughput") or {} for c in data["cells"] if c["scenario"] == s]
        values = [_median(t.get(k) for t in ts) for k in ("p50_ms", "p95_ms", "p99_ms")]
        if any(v is not None for v in values):
            rows.append((s, values))
    if not rows:
        return None
    fig = _figure(max(6.0, 1.2 + 1.1 * len(rows)), 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    width = 0.27
    for k, (label, colour) in enumerate((("p50", "#90caf9"), ("p95", "#1e88e5"), ("p99", "#0d47a1"))):
        vals = [r[1][k] or 0 for r in rows]
        bars = ax.bar(x + (k - 1) * width, vals, width, label=label, color=colour)
        ax.bar_label(bars, labels=[f"{v:.0f}" if v else "" for v in vals], fontsize=6, padding=1)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(x, [r[0] for r in rows], rotation=20 if len(rows) > 5 else 0,
                  ha="right" if len(rows) > 5 else "center")
    ax.set_ylabel("ms (log scale)")
    ax.set_title("Latency percentiles per scenario (median over its cells)", fontsize=10)
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _svg(fig, "latency")


def chart_compare(a: dict, b: dict) -> str | None:
    """Median throughput per scenario, run A beside run B."""
    import numpy as np

    names = [s for s in dict.fromkeys(scenario_order(a) + scenario_order(b))]
    rows = []
    for s in names:
        ma = _median((c.get("throughput") or {}).get("rps") for c in a["cells"] if c["scenario"] == s)
        mb = _median((c.get("throughput") or {}).get("rps") for c in b["cells"] if c["scenario"] == s)
        if ma is not None or mb is not None:
            rows.append((s, ma, mb))
    if not rows:
        return None
    fig = _figure(max(6.0, 1.2 + 1.0 * len(rows)), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    for k, (label, colour) in enumerate(((f"A {a['run_id']}", "#b0bec5"), (f"B {b['run_id']}", "#3949ab"))):
        vals = [r[1 + k] or 0 for r in rows]
        bars = ax.bar(x + (k - 0.5) * 0.38, vals, 0.38, label=label, color=colour)
        ax.bar_label(bars, labels=[f"{v:,.0f}" if v else "" for v in vals], fontsize=7, padding=1)
    ax.set_xticks(x, [r[0] for r in rows], rotation=20 if len(rows) > 5 else 0,
                  ha="right" if len(rows) > 5 else "center")
    ax.set_ylabel("requests/s (median over strategies)")
    ax.set_title("Throughput per scenario, A vs B", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _svg(fig, "compare")


# -- rendering ----------------------------------------------------------------------------------------------------
