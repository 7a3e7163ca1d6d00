"""How a user's endpoint's verdicts are said: "not seen" is not "safe".

The lab's own rows are judged against a race window it can widen; a user's code has none, and the GIL
hides most races in it. So a cell where the checker found nothing says what was tried ("not seen in 2000
requests at 50 concurrent under gthread-2x8") and what would still break it - never a bare correct -
and each endpoint gets one plain-language line over all its scenarios.
"""

from __future__ import annotations

from rich.table import Table

from loadtests.verdicts import COLOURS, CORRECT, DIVERGES, LEAKS, LOST_UPDATES, OVER_COUNTS

from ..scenarios import Scenario

NOT_SEEN = "not seen"  # the label of a user's cell where the checker found nothing (never green)
# What a clean cell of each check kind has not ruled out.
STILL_BREAKS = {
    "counter": "a yield between its read and its write (any I/O, a log call, a slower machine) or another "
               "interpreter can still lose updates",
    "unique": "a yield between reading and handing out the next value (any I/O, a log call) or another "
              "interpreter can still hand one out twice",
    "session": "a request of the same user in flight at once (two tabs) or a store one instance does not share "
               "can still break the sequence",
    "isolation": "state set for one request and read by another (a module global, a shared object) shows only "
                 "when they interleave at the wrong moment",
}
ANOMALIES = {LOST_UPDATES, DIVERGES, OVER_COUNTS, LEAKS}  # what the app got wrong (not: failed, undecided)
IN_PROCESS_NEVER_SAFE = "state held in a process is never safe across processes or instances"


def claim(record: dict, scenario: Scenario) -> str:
    counts = record.get("counts") or {}
    answered = counts.get("acknowledged") or counts.get("answered") or 0
    users = (record.get("throughput") or {}).get("users") or record.get("users")
    at = f" at {users} concurrent" if users else ""
    return f"{NOT_SEEN} in {answered} requests{at} under {scenario.name}"


def finish(record: dict, scenario: Scenario, users: int) -> None:
    """A user's cell: where nothing was found, the label says what was tried and what would still break it."""
    record["users"] = users
    if record["observed"]["verdict"] == [CORRECT] and not record.get("error"):
        record["observed"]["label"] = NOT_SEEN
        record["observed"]["claim"] = claim(record, scenario)
        if scenario.server == "target":
            scope = f"; how many processes and instances serve it is not known here: {IN_PROCESS_NEVER_SAFE}"
        elif not _several(scenario):
            scope = f"; this runtime model has one process: {IN_PROCESS_NEVER_SAFE}"
        else:
            scope = ""
        record["observed"]["still_breaks"] = STILL_BREAKS[record["check"]] + scope


def _several(s: Scenario) -> bool:
    return s.processes > 1 or s.instances > 1 or s.forks_per_request


def plain_line(name: str, cells: list[dict], scenarios: dict[str, Scenario]) -> str:
    """One sentence over an endpoint's cells: where it broke, and what that points to."""
    judged = [c for c in cells if not c.get("error")]
    bad = [c for c in judged if c["observed"]["verdict"] != [CORRECT]]
    if not judged:
        return f"{name}: no cell ran (see the errors)"
    if not bad:
        worst = max(judged, key=lambda c: (c.get("counts") or {}).get("acknowledged") or 0)
        return (f"{name}: no anomaly seen in any runtime model (up to {worst['observed'].get('claim', '')}); "
                f"evidence, not proof: {STILL_BREAKS[judged[0]['check']]}")
    where = ", ".join(f"{c['scenario']} ({c['observed']['label']})" for c in bad)
    wrong = [c for c in bad if set(c["observed"]["verdict"]) & ANOMALIES]
    if not wrong:
        return f"{name}: failed or undecided under {where} - see each cell's errors and notes"
    bad_scenarios = [scenarios[c["scenario"]] for c in wrong if c["scenario"] in scenarios]
    if any(s.server == "target" for s in bad_scenarios):
        advice = "the deployment shows it: see the evidence; in-process state or a store its instances do not share"
    elif any(s.in_process_concurrency == "none" and not _several(s) for s in bad_scenarios):
        advice = "wrong even one request at a time in one process: a bug, not a race"
    elif all(_several(s) for s in bad_scenarios):
        advice = ("safe only with one process: the state lives in each process (or each host) - keep it in a "
                  "shared store (redis INCR, a database)")
    else:
        advice = ("a race inside one process (threads or greenlets interleave) and more: use one atomic operation "
                  "in a shared store (redis INCR, a database UPDATE ... SET n = n + 1)")
    return f"{name}: broke under {where} - {advice}"


def matrix_table(data: dict) -> Table:
    scenarios = list(data["scenarios"])
    table = Table(title=f"your app's endpoints - run {data['run_id']} ({data['status']})")
    table.add_column("endpoint", no_wrap=True)
    for s in scenarios:
        table.add_column(s)
    by = {(c["strategy"], c["scenario"]): c for c in data["cells"]}
    for name in dict.fromkeys(c["strategy"] for c in data["cells"]):
        row = []
        for s in scenarios:
            c = by.get((name, s))
            if c is None:
                row.append("")
                continue
            label = c["observed"]["label"]
            colour = "yellow" if label == NOT_SEEN else COLOURS.get(label.split("+")[0], "white")
            n = (c.get("counts") or {}).get("acknowledged")
            text = f"[{colour}]{label}[/]" + (f" [dim]({n})[/]" if n is not None else "")
            if c["match"] is False:
                text = f"[bold red]!! {label}[/]\n[dim]want {c['expected']['label']}[/]"
            row.append(text)
        table.add_row(name, *row)
    table.caption = (f"'{NOT_SEEN}' (n answered): the checker found nothing in this many requests - evidence, "
                     "not proof. !! : differs from the expect you declared")
    return table
