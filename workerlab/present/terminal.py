"""What the terminal shows while a matrix runs, and the verdict grid at the end."""

from __future__ import annotations

import json
import re
from collections import Counter

from rich import box
from rich.columns import Columns
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from loadtests.verdicts import ANY, COLOURS, MATRIX_WORDS, VERDICTS

from ..cpu import LIMITS
from ..results import grid

MISMATCH = "!"  # before a narrow cell's glyphs: observed differs from expected
WANTED = "≠"  # before the glyphs of what was expected, on the cell's second line


def styled(label: str) -> str:
    first = label.split("+")[0]
    return f"[{COLOURS.get(first, 'white')}]{label}[/]"


class TerminalReport:
    def __init__(self, total: int, console: Console | None = None, mode: str = "rich"):
        self.console = console or Console(stderr=False)
        self.mode = mode  # rich | quiet | json
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=True,
            disable=mode != "rich",
        )
        self.task = self.progress.add_task("matrix", total=total)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def say(self, text: str) -> None:
        if self.mode == "rich":
            self.console.print(text, highlight=False)

    def scenario_start(self, scenario) -> None:
        self.progress.update(self.task, description=f"{scenario.name}: starting")
        self.say(f"\n[bold cyan]{scenario.name}[/] - {scenario.description}")

    def stack_up(self, scenario, stack, seconds: float) -> None:
        self.say(f"  stack up in {seconds:.1f}s at {stack.url} (logs: {stack.run_dir / 'logs'})")

    def scenario_error(self, scenario, error: str) -> None:
        if self.mode == "json":
            return
        self.console.print(f"[bold red]  {scenario.name}: {error}[/]", highlight=False)

    def cell_start(self, scenario, strategy) -> None:
        self.progress.update(self.task, description=f"{scenario.name} / {strategy.name}")

    def advance(self) -> None:
        self.progress.advance(self.task)

    def cell_done(self, cell: dict) -> None:
        self.advance()
        if self.mode == "json":
            print(json.dumps(cell), flush=True)
            return
        if self.mode == "quiet" and cell["match"] is not False:
            return
        t = cell.get("throughput") or {}
        counts = cell.get("counts") or {}
        evidence = ", ".join(f"{k}={v}" for k, v in counts.items()
                             if k in ("lost", "duplicates", "leaked_responses", "users_wrong_sequence",
                                      "users_diverged", "errors") and v)
        if (counts.get("distinct_final_values") or 0) > 1:
            differ = f"final values differ across {counts['distinct_final_values']} processes"
            evidence = f"{evidence}, {differ}" if evidence else differ
        mark = {True: "[green]ok[/]", None: "[dim]not judged[/]"}.get(cell["match"], "[bold red on white] MISMATCH [/]")
        perf = ""
        if t.get("rps") is not None:
            bound = " [yellow]generator-bound[/]" if t.get("generator_bound") else ""
            perf = (f" {t['rps']:.0f} rps p50/95/99 {t['p50_ms']}/{t['p95_ms']}/{t['p99_ms']} ms"
                    f" gen {100 * (t.get('generator_cpu_share') or 0):.0f}%{bound}")
        line = (f"  {mark} {cell['strategy']:<32} expected {styled(cell['expected']['label'])}"
                f" observed {styled(cell['observed']['label'])}{perf}")
        if evidence:
            line += f" [dim]({evidence})[/]"
        if cell.get("error"):
            line += f"\n      [red]error: {escape(cell['error'])}[/]"
        elif cell.get("not_the_cause"):
            texts = "; ".join(f"{text} (x{n})" for text, n in list(cell["not_the_cause"].items())[:3])
            line += f"\n      [red]not the expected error: {escape(texts)[:300]}[/]"
        elif cell["match"] is False and cell.get("examples"):
            line += f"\n      [dim]e.g. {json.dumps(cell['examples'][0])[:200]}[/]"
        self.console.print(line, highlight=False)


def verdict_grid(data: dict) -> VerdictGrid:
    return VerdictGrid(data)


class VerdictGrid:
    """The matrix for the terminal, fitted to the console it is printed on: each cell's verdict in full
    words when the whole table fits the width; otherwise one glyph per verdict word (legend below)
    and a short header per scenario, so that twelve scenarios fit 80 columns."""

    def __init__(self, data: dict):
        self.data = data
        self.scenarios, self.rows = grid(data)

    @property
    def title(self) -> str:
        return (f"worker-lab verdicts - run {self.data['run_id']} ({self.data['status']}), race window "
                f"'{self.data['settings'].get('race_window')}'")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = self.wide()

        def width(renderable) -> int:
            return Measurement.get(console, options.update_width(10_000), renderable).maximum

        if width(wide) <= options.max_width:
            yield wide
            return
        # One glyph table per group of scenarios, as many groups as it takes for each to fit (14 scenarios and
        # 30-character strategy names do not fit 80 columns in one).
        n = len(self.scenarios)
        for parts in range(1, n + 1):
            size = -(-n // parts)
            groups = [self.scenarios[i:i + size] for i in range(0, n, size)]
            tables = [self.narrow_table(g) for g in groups]
            if all(width(t) <= options.max_width for t in tables) or size == 1:
                break
        yield Text(self.title, style="table.title")
        yield from tables
        yield from self.legend()

    def wide(self) -> Table:
        table = Table(title=self.title, show_lines=False)
        table.add_column("strategy", no_wrap=True)
        for s in self.scenarios:
            table.add_column(s, no_wrap=True)
        for strategy, cells in self.rows:
            row = []
            for c in cells:
                if c is None:
                    row.append("")
                elif c["match"] is None:
                    row.append(f"{styled(c['observed']['label'])} [dim](not judged)[/]")
                elif c["match"]:
                    row.append(styled(c["observed"]["label"]))
                else:
                    row.append(f"[bold red]!! {c['observed']['label']}[/]\n[dim]want {c['expected']['label']}[/]")
            table.add_row(strategy, *row)
        return table

    def narrow_table(self, scenarios: list[str]) -> Table:
        short = short_names(self.scenarios)
        columns = [self.scenarios.index(s) for s in scenarios]
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False,  # the title goes above, unfolded
                      show_edge=False)  # no blank edge columns
        table.add_column("strategy", no_wrap=True)
        for s in scenarios:
            table.add_column(short[s], no_wrap=True)
        for strategy, all_cells in self.rows:
            row = []
            for c in (all_cells[i] for i in columns):
                if c is None:
                    row.append(Text(""))
                elif c["match"] is not False:  # matched, or not judged (the legend's '·' when expected "any")
                    row.append(glyphs(c["observed"]["verdict"]))
                else:
                    row.append(Text.assemble((MISMATCH, "bold red"), glyphs(c["observed"]["verdict"]), "\n",
                                             (WANTED, "dim"), glyphs(c["expected"]["verdict"])))
            table.add_row(strategy, *row)
        return table

    def legend(self) -> list[Columns]:
        short = short_names(self.scenarios)
        headers = [Text.assemble((short[s], "bold"), f" {s}") for s in self.scenarios]
        words = [Text.assemble(glyphs([w]), f" {w}") for w in (*MATRIX_WORDS, ANY)]
        words += [Text.assemble((MISMATCH, "bold red"), " differs from expected"), Text(f"{WANTED} expected")]
        return [Columns(headers, padding=(0, 3)), Columns(words, padding=(0, 3))]

    def narrow(self) -> Group:
        """Every scenario in one glyph table, with its legend."""
        return Group(Text(self.title, style="table.title"), self.narrow_table(self.scenarios), *self.legend())


def glyphs(words) -> Text:
    """One glyph per verdict word, in the declared order, each in its word's colour."""
    if ANY in words:
        words = [ANY]
    ordered = [w for w in MATRIX_WORDS if w in words] + sorted(w for w in words if w not in MATRIX_WORDS)
    return Text.assemble(*((VERDICTS[w].glyph, COLOURS[w]) if w in VERDICTS else ("?", "") for w in ordered))


def short_names(names: list[str]) -> dict[str, str]:
    """A short, unique header per scenario: the first letter of each word of the name, numbers kept whole
    (sync-x4 -> sx4, gthread-2x8 -> g2x8, scale-out-3 -> so3); names that would collide keep more letters."""
    short: dict[str, str] = {}
    for letters in range(1, max((len(n) for n in names), default=0) + 1):
        pending = [n for n in names if n not in short]
        if not pending:
            break
        candidates = {n: _abbreviation(n, letters) for n in pending}
        taken = Counter([*candidates.values(), *short.values()])
        short.update({n: c for n, c in candidates.items() if taken[c] == 1})
    if len(set(short.values())) < len(names):  # only names that differ by their punctuation get here
        return {n: str(i) for i, n in enumerate(names, 1)}
    return {n: short[n] for n in names}


def _abbreviation(name: str, letters: int) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    return "".join(w if any(ch.isdigit() for ch in w) else w[:letters] for w in words) or name


def served_by_label(items: list[dict]) -> str:
    """The most processes, OS threads and greenlets any of a scenario's cells saw answer: "1 proc 1 thr 50 grl"."""
    most = {k: max((t.get("served_by") or {}).get(k, 0) for t in items) for k in ("processes", "threads", "greenlets")}
    if not most["processes"]:
        return ""
    label = f"{most['processes']} proc {most['threads']} thr"
    return label + (f" {most['greenlets']} grl" if most["greenlets"] else "")


def throughput_table(data: dict) -> Table:
    by_scenario: dict[str, list] = {}
    for c in data["cells"]:
        t = c.get("throughput") or {}
        if t.get("rps"):
            by_scenario.setdefault(c["scenario"], []).append(t)
    table = Table(title="throughput per scenario, median over its cells (µs/req: the server's CPU per answered "
                        "request; limit: how many cells each limit held back)")
    for col in ("scenario", "rps", "p50 ms", "p95 ms", "p99 ms", "conc.", "served by", "gen. CPU", "µs/req",
                "limit"):
        table.add_column(col, justify="right" if col not in ("scenario", "limit") else "left",
                         no_wrap=col == "scenario")
    for scenario, items in by_scenario.items():
        def med(key, items=items):
            values = sorted(v[key] for v in items if v.get(key) is not None)
            return values[len(values) // 2] if values else None
        share = med("generator_cpu_share")
        limits = Counter(v["limit"] for v in items if v.get("limit"))
        cpu = med("cpu_us_per_request")
        def ms(key, med=med):
            value = med(key)
            return "-" if value is None else f"{value:.1f}" if value < 10 else f"{value:.0f}"
        table.add_row(scenario, f"{med('rps'):.0f}", ms("p50_ms"), ms("p95_ms"), ms("p99_ms"),
                      str(med("achieved_concurrency")), served_by_label(items), f"{100 * share:.0f}%" if share else "",
                      f"{cpu:.0f}" if cpu is not None else "-",
                      " ".join(f"{LIMITS[name][0]} {n}" for name, n in limits.most_common()))
    table.caption = "limit: " + "; ".join(f"{short} = {meaning}" for short, meaning in LIMITS.values())
    return table
