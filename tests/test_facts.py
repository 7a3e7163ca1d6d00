"""Each fact declared once: the verdict words, their colours and labels, the race windows, the run-file writer."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import click

import loadtests.verdicts as verdicts
from loadtests.verdicts import ANY, COLOURS, FAULT_WORDS, MATRIX_WORDS, TINTS, VERDICTS, format_verdict
from workerlab.present import html as html_report
from workerlab.runfile import write_json

ROOT = Path(__file__).resolve().parent.parent


def test_verdicts_module_needs_only_the_standard_library():
    tree = ast.parse(Path(verdicts.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_every_word_has_a_meaning_a_colour_and_a_glyph():
    assert set(MATRIX_WORDS) | set(FAULT_WORDS) | {ANY} == set(VERDICTS)
    for v in VERDICTS.values():
        assert len(v.meaning) > 10 and "\n" not in v.meaning
        assert re.fullmatch(r"#[0-9a-f]{6}", v.colour) and re.fullmatch(r"#[0-9a-f]{6}", v.tint)
        assert len(v.glyph) == 1
    matrix_glyphs = [VERDICTS[w].glyph for w in (*MATRIX_WORDS, ANY)]
    assert len(set(matrix_glyphs)) == len(matrix_glyphs)


def test_labels_list_the_words_in_declared_order():
    assert format_verdict({"error", "lost-updates", "diverges"}) == "lost-updates+diverges+error"
    assert format_verdict({"any", "lost-updates"}) == "any"
    assert format_verdict(set()) == "?"
    assert verdicts.format_fault_verdict({"loses-acked-writes", "resets"}) == "resets+loses-acked-writes"


def test_the_report_takes_its_colours_from_the_declaration():
    assert html_report.VERDICT_COLOURS is COLOURS and html_report.VERDICT_TINTS is TINTS
    css = html_report.verdict_css()
    for word, v in VERDICTS.items():
        assert f"--v-{word}: {v.colour};" in css and f"--v-{word}-tint: {v.tint};" in css
    style = (ROOT / "workerlab" / "present" / "templates" / "_style.css").read_text().lower()
    assert "--bad: var(--v-lost-updates)" in style and "--ok: var(--v-correct)" in style
    for colour in (COLOURS["correct"], COLOURS["lost-updates"], COLOURS["diverges"], *TINTS.values()):
        assert colour not in style, colour  # the stylesheet reads var(--v-...), it keeps no copy


def test_no_other_module_spells_a_verdict_word():
    """Code names verdicts through loadtests/verdicts.py; only that file holds the words as strings."""
    # "error", "any", "leaks": common English too; "duplicates": also the checker's count of repeated values
    words = "|".join(re.escape(w) for w in VERDICTS if w not in ("error", "any", "leaks", "duplicates"))
    pattern = re.compile(rf"""["']({words})["']""")
    sources = [*ROOT.glob("workerlab/**/*.py"), *ROOT.glob("loadtests/*.py"),
               *ROOT.glob("workerlab/present/templates/*")]
    found = [f"{p.relative_to(ROOT)}:{n}" for p in sources if p.name != "verdicts.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_race_windows_come_from_the_app():
    from labapp import race, settings

    from workerlab import cli, ui_cli

    assert settings.RACE_WINDOWS is race.RACE_WINDOWS
    for command in (cli.expected, cli.serve, cli.run, ui_cli.ui):
        option = next(p for p in command.params if p.name == "race_window")
        assert isinstance(option.type, click.Choice) and tuple(option.type.choices) == race.RACE_WINDOWS


def test_run_files_are_replaced_whole(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2, "b": [1]})
    assert json.loads(path.read_text()) == {"a": 2, "b": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind
