"""The verdict words, declared once: what each means, its colour and its one-character glyph.

A verdict is a set of words. The matrix's checkers (checkers.py) judge with
``correct | lost-updates | duplicates | diverges | over-counts | leaks | crossed | error | no-answer |
inconclusive``; the fault checkers (fault_checkers.py) with ``survives | resets | loses-acked-writes | over-counts |
diverges | leaks | unavailable | inconclusive``; an expectation that is not judged is ``{any}``.
``inconclusive`` is the judge saying the history cannot decide (final reads missing, failed, or
short of a process): never a pass, always with the reason in the notes.

Everything that names, orders, colours or prints a verdict reads it from here: the checkers,
the expectations (workerlab/expected.py, workerlab/faults.py), the terminal grid
(workerlab/present/terminal.py), the HTML report (workerlab/present/html.py and its templates) and the
locust web UI's Verdict tab (webui.py). Standard library only: the runner, the locust driver
and the web UI all import it, and loadtests imports neither workerlab nor the app.
"""

from __future__ import annotations

from dataclasses import dataclass

CORRECT = "correct"
LOST_UPDATES = "lost-updates"
DUPLICATES = "duplicates"
DIVERGES = "diverges"
LEAKS = "leaks"
CROSSED = "crossed"  # a shared connection handed one request's answer to another
ERROR = "error"
UNANSWERED = "no-answer"
INCONCLUSIVE = "inconclusive"
ANY = "any"
SURVIVES = "survives"
RESETS = "resets"
LOSES_ACKED_WRITES = "loses-acked-writes"
OVER_COUNTS = "over-counts"
UNAVAILABLE = "unavailable"


def tint(colour: str, white: float = 0.75) -> str:
    """``colour`` mixed with ``white`` parts of white: "#2e7d32" -> "#cbdecc"."""
    rgb = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * white):02x}" for c in rgb)


@dataclass(frozen=True)
class Verdict:
    word: str
    meaning: str  # one line
    colour: str  # one hue per word, "#rrggbb": terminal text, report bars and swatches, the web UI badge
    glyph: str  # one character, for the narrow terminal grid

    @property
    def tint(self) -> str:
        """The pale shade of the colour, for cell backgrounds."""
        return tint(self.colour)


VERDICTS: dict[str, Verdict] = {v.word: v for v in (
    Verdict(CORRECT, "every acknowledged update counted, every response its own", "#2e7d32", "✓"),
    Verdict(LOST_UPDATES, "acknowledged increments missing, a counter that went back, or a user's count broken",
            "#c62828", "L"),
    # Said only when no increment is lost: with lost increments a repeated value is the lost update's doing.
    Verdict(DUPLICATES, "a value handed to two clients while no increment is lost (another one is skipped)",
            "#d81b60", "2"),
    Verdict(DIVERGES, "each process or instance holds its own copy: at rest they disagree", "#8e24aa", "D"),
    Verdict(LEAKS, "a response carried another request's or another user's data", "#ef6c00", "X"),
    Verdict(CROSSED, "a response carried the answer to another request: one connection shared by several "
            "processes or threads", "#00695c", "C"),
    Verdict(ERROR, "requests failed: the strategy does not work in this runtime model", "#546e7a", "E"),
    Verdict(UNANSWERED, "requests were still in flight when the cell ended: sent, never answered", "#5d4037", "N"),
    Verdict(INCONCLUSIVE, "the history cannot decide: final reads missing, failed or short of a process "
            "(the notes say why)", "#f9a825", "I"),
    Verdict(ANY, "not judged: the outcome rests on something this run does not pin down", "#9e9e9e", "·"),
    Verdict(SURVIVES, "no acknowledged increment lost across the fault", "#2e7d32", "✓"),
    Verdict(RESETS, "the state went back to empty: a process died holding its count, a session restarted at 1",
            "#c62828", "R"),
    Verdict(LOSES_ACKED_WRITES, "some acknowledged increments are gone, but not all of them", "#ad1457", "W"),
    Verdict(OVER_COUNTS, "the final value exceeds the increments attempted", "#6a1b9a", "O"),
    Verdict(UNAVAILABLE, "no final read answered: the service never recovered", "#546e7a", "U"),
)}

COLOURS = {word: v.colour for word, v in VERDICTS.items()}
TINTS = {word: v.tint for word, v in VERDICTS.items()}

# The words each checker judges with, in the order a label lists them.
MATRIX_WORDS = (CORRECT, LOST_UPDATES, DUPLICATES, DIVERGES, OVER_COUNTS, LEAKS, CROSSED, ERROR, UNANSWERED,
                INCONCLUSIVE)
FAULT_WORDS = (SURVIVES, RESETS, LOSES_ACKED_WRITES, OVER_COUNTS, DIVERGES, LEAKS, UNAVAILABLE, INCONCLUSIVE)


def format_verdict(verdict, words: tuple[str, ...] = MATRIX_WORDS) -> str:
    """The label of a verdict: its words in declared order joined by '+', "any" alone, "?" if none is known."""
    if ANY in verdict:
        return ANY
    return "+".join(w for w in words if w in verdict) or "?"


def format_fault_verdict(verdict) -> str:
    return format_verdict(verdict, FAULT_WORDS)
