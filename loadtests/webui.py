"""A live "Verdict" tab in locust's web UI: the checkers run on what has been recorded so far.

Loaded by the locustfile; it only acts when locust runs with its web UI (``events.init``
with ``environment.web_ui``), so the lab's driver (loadtests/driver.py) is untouched.

It uses locust's web UI extension points:

- ``template_args["extended_tabs"]`` / ``["extended_tables"]`` add a "Verdict" tab to the
  React UI (open it directly with ``/?tab=verdict``);
- an ``after_request`` hook adds ``extended_stats`` (the rows of that tab) to the
  ``/stats/requests`` answer the UI polls every two seconds;
- ``/verdict`` (a page of its own, refreshing itself) and ``/verdict.json`` (for scripts).

Every start of a swarm from the UI begins a fresh cell: the recorder is emptied and the
counter key is new, so "so far" always means "since Start". While users run there are no
quiescent final reads, so a counter's "lost" is measured against the largest value
acknowledged so far; on Stop the counter is read at rest, the way the driver does it
(straight to every app instance: ``LAB_INSTANCES``, comma-separated URLs, which
``workerlab ui`` sets; else the host), and the verdict becomes the judged one.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import sys
import time
import urllib.request
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # locust loads the locustfile by path; the package must still import
    sys.path.insert(0, str(_ROOT))

from locust import events  # noqa: E402

from loadtests.checkers import CHECKERS, check  # noqa: E402
from loadtests.final_reads import EveryProcessSeen  # noqa: E402
from loadtests.final_reads import final_reads as read_until  # noqa: E402
from loadtests.history import process_of  # noqa: E402
from loadtests.protocol import READ_AT_REST  # noqa: E402
from loadtests.verdicts import COLOURS, format_verdict  # noqa: E402

TAB_KEY = "verdict"

# What each checker count means, for the table.
MEANINGS = {
    "attempted": "requests sent under load",
    "acknowledged": "requests answered 200",
    "errors": "requests that failed",
    "final": "the counter at rest (after Stop); before that, the largest value acknowledged so far",
    "lost": "acknowledged increments missing from the counter",
    "duplicates": "counter values handed out more than once",
    "duplicates_within_process": "duplicates handed out by one and the same process",
    "lost_shown_by_values": "increments the answers alone prove lost: more answers at or below some v than v",
    "realtime_violations": "answers older than an answer that completed before they were asked",
    "processes_under_load": "server processes that answered",
    "processes_read_at_end": "processes whose counter was read at rest after Stop",
    "distinct_final_values": "different final values across processes",
    "users": "session users seen",
    "users_wrong_sequence": "users whose own count did not go 1, 2, 3 ...",
    "users_diverged": "users whose count restarted in each process",
    "leaked_responses": "responses that carried another request's or user's data",
}


class LiveVerdict:
    """The running cell's checker result, recomputed only when new entries arrived."""

    def __init__(self, environment):
        self.environment = environment
        self._cached: tuple | None = None
        self.final_reads = "none yet"  # none yet | reading | done: N reads

    # -- where the locustfile's state lives (it may be loaded as 'locustfile' or 'loadtests.locustfile')
    def lab_module(self):
        env = self.environment
        classes = list(getattr(env, "user_classes", None) or [])
        classes += list((getattr(env, "available_user_classes", None) or {}).values())
        for cls in classes:
            module = sys.modules.get(cls.__module__)
            if module is not None and hasattr(module, "RECORDER") and hasattr(module, "USER_CLASSES"):
                return module
        for name in ("locustfile", "loadtests.locustfile"):
            module = sys.modules.get(name)
            if module is not None and hasattr(module, "RECORDER"):
                return module
        raise RuntimeError("the worker-lab locustfile is not loaded")

    def check_kind(self, module) -> str:
        runner = self.environment.runner
        running = list(getattr(runner, "user_classes", None) or self.environment.user_classes or [])
        by_class = {cls: kind for kind, cls in module.USER_CLASSES.items()}
        for cls in running:
            for klass in cls.__mro__:
                if klass in by_class:
                    return by_class[klass]
        return "counter"

    def snapshot(self) -> dict:
        module = self.lab_module()
        kind = self.check_kind(module)
        entries = list(module.RECORDER.entries)
        runner = self.environment.runner
        state = getattr(runner, "state", None)
        key = (id(module.RECORDER.entries), len(entries), kind, module.Cell.key)
        if self._cached is not None and self._cached[0] == key:
            result = dict(self._cached[1])
        elif kind not in CHECKERS:
            result = {"verdict": [], "label": "not judged", "counts": {}, "examples": [],
                      "notes": [f"no checker judges the '{kind}' user class"], "computed_at": time.time()}
        else:
            checked = check(kind, entries)
            result = {
                "verdict": sorted(checked.verdict),
                "label": format_verdict(checked.verdict) if entries else "no requests yet",
                "counts": checked.counts,
                "examples": checked.examples,
                "notes": [n for n in checked.notes
                          if self.final_reads.startswith("done") or not n.startswith("no final read answered")],
                "computed_at": time.time(),
            }
            self._cached = (key, result)
            result = dict(result)
        result.update({
            "strategy": module.Cell.strategy,
            "check": kind,
            "key": module.Cell.key,
            "state": state,
            "users": getattr(runner, "user_count", 0),
            "recorded": len(entries),
            "final_reads": self.final_reads if kind in ("counter", "same-user") else "not needed by this check",
            "live": state in ("spawning", "running")
            or (kind in ("counter", "same-user") and not self.final_reads.startswith("done")),
        })
        return result

    def rows(self, snap: dict) -> list[dict]:
        counts = snap.get("counts") or {}
        kind = snap.get("check")

        def pick(*names):
            for n in names:
                if n in counts:
                    return counts[n]
            return "n/a"

        rows = [
            {"measure": "verdict so far", "value": snap["label"],
             "meaning": "the checker over the requests recorded since Start"
             + (" (live)" if snap.get("live") else ", complete")},
            {"measure": "strategy / check", "value": f"{snap['strategy']} / {kind}", "meaning": "LAB_STRATEGY "
             "and the user class's check"},
            {"measure": "requests recorded", "value": snap["recorded"], "meaning": "history entries so far"},
            {"measure": "duplicates", "value": pick("duplicates"), "meaning": MEANINGS["duplicates"]},
            {"measure": "lost updates", "value": pick("lost", "users_wrong_sequence"),
             "meaning": MEANINGS["lost"] if "lost" in counts else MEANINGS["users_wrong_sequence"]},
            {"measure": "leaks", "value": pick("leaked_responses"), "meaning": MEANINGS["leaked_responses"]},
        ]
        shown = {"duplicates", "lost", "leaked_responses"}
        if "users_wrong_sequence" in counts and "lost" not in counts:
            shown.add("users_wrong_sequence")
        for name, value in counts.items():
            if name not in shown:
                rows.append({"measure": name, "value": value,
                             "meaning": MEANINGS.get(name, "")})
        for note in snap.get("notes") or []:
            rows.append({"measure": "note", "value": "", "meaning": note})
        if kind in ("counter", "same-user"):
            rows.insert(1, {"measure": "final reads", "value": snap.get("final_reads", ""),
                            "meaning": "the counter read at rest on every process after Stop; reload this tab "
                            "(or watch /verdict) to see the verdict with them"})
        # locust's table sorts its rows by "name": number them to keep this order
        return [{"name": f"{i:02d}", **row, "value": _shown(row["value"])} for i, row in enumerate(rows)]


def _shown(value):
    """A table cell locust's React page can render: a number or a string (a dict or a list would blank the page)."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value) or "-"
    return value


def _new_cell(environment, live: LiveVerdict) -> None:
    """A swarm started from the UI is a fresh cell: empty history, fresh counter key."""
    module = live.lab_module()
    live.final_reads = "none yet"
    module.RECORDER.reset()
    module.Cell.key = f"ui-{secrets.token_hex(4)}"
    module.Cell.shared_cookie = None
    budget = module.Cell.budget
    budget.issued = 0
    if live.check_kind(module) == "same-user" and environment.host:
        _prepare_same_user(environment.host, module)


def _prepare_same_user(host: str, module) -> None:
    """Like the driver: one increment as user 'shared' creates the session every user then sends."""
    lab = {"client": "setup", "req": next(module.RECORDER.req_ids), "op": "incr", "phase": "load",
           "invoke": module.RECORDER.now()}
    url = f"{host.rstrip('/')}/s/{module.Cell.strategy}/incr?client=shared"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read() or b"null")
            cookie = response.headers.get("Set-Cookie")
            module.add_entry(module.make_entry(lab, response.status, body))
    except (OSError, ValueError) as exc:
        module.add_entry(module.make_entry(lab, 0, None, exc))
        return
    module.Cell.shared_cookie = cookie.split(";", 1)[0] if cookie else None


def final_reads(environment, live: LiveVerdict) -> None:
    """After Stop: read the counter at rest until every process seen under load answered (or the cap)."""
    module = live.lab_module()
    kind = live.check_kind(module)
    if kind not in READ_AT_REST:
        return
    instances = [u for u in os.environ.get("LAB_INSTANCES", "").split(",") if u] or [environment.host]
    if not instances[0]:
        return
    live.final_reads = "reading"
    headers = {"Cookie": module.Cell.shared_cookie} if kind == "same-user" and module.Cell.shared_cookie else {}
    query = "client=shared" if kind == "same-user" else f"key={module.Cell.key}"
    entries = module.RECORDER.entries
    seen = {process_of(e) for e in entries if e.get("status") == 200 and e.get("phase") == "load"}
    reads = read_until(module.read_at_rest, entries, instances, f"/s/{module.Cell.strategy}/read?{query}", headers,
                       EveryProcessSeen(seen))
    live.final_reads = f"done: {reads.sent} reads, {len(reads.answered)} of {len(seen)} processes answered"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>worker-lab live verdict</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
#verdict{display:inline-block;padding:6px 14px;border-radius:6px;color:#fff;font-size:22px;font-weight:600}
table{border-collapse:collapse;margin-top:14px}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}
td.v{font-variant-numeric:tabular-nums;text-align:right;font-weight:600}
pre{background:#f5f5f5;padding:8px;max-width:1000px;overflow:auto;font-size:12px}
.muted{color:#777}
</style></head><body>
<h1>worker-lab live verdict</h1>
<p class="muted">Checkers of <code>loadtests/checkers.py</code> over the requests recorded since Start;
refreshed every 2&nbsp;s. Back to <a href="./?tab=verdict">locust</a>.</p>
<div><span id="verdict" data-testid="verdict">__LABEL__</span> <span id="meta" class="muted"></span></div>
<table id="counts"><thead><tr><th>measure</th><th>value</th><th>meaning</th></tr></thead><tbody></tbody></table>
<h3>examples</h3><pre id="examples"></pre>
<script>
const COLOURS = __COLOURS__;
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'})[c]);}
async function refresh(){
  try {
    const r = await fetch('./verdict.json', {cache:'no-store'}); const d = await r.json();
    const v = document.getElementById('verdict'); v.textContent = d.snapshot.label;
    v.style.background = COLOURS[d.snapshot.verdict[0]] || '#757575';
    if (!d.snapshot.recorded) v.style.background = '#757575';
    document.getElementById('meta').textContent = `${d.snapshot.strategy} / ${d.snapshot.check} - locust `
      + `${d.snapshot.state}, ${d.snapshot.users} users, ${d.snapshot.recorded} requests recorded, `
      + `final reads: ${d.snapshot.final_reads}`;
    document.querySelector('#counts tbody').innerHTML = d.rows.map(r =>
      `<tr data-name="${esc(r.measure)}"><td>${esc(r.measure)}</td><td class="v">${esc(r.value)}</td>`
      + `<td class="muted">${esc(r.meaning)}</td></tr>`).join('');
    document.getElementById('examples').textContent = JSON.stringify(d.snapshot.examples, null, 1);
  } catch (e) { document.getElementById('meta').textContent = 'cannot reach locust: ' + e; }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""


@events.init.add_listener
def _on_init(environment, **_kwargs):
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None or getattr(environment, "_lab_live_verdict", None) is not None:
        return
    live = LiveVerdict(environment)
    environment._lab_live_verdict = live
    app = web_ui.app

    web_ui.template_args["extended_tabs"] = [{"title": "Verdict", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{
        "key": TAB_KEY,
        "structure": [{"key": "measure", "title": "Measure"}, {"key": "value", "title": "So far"},
                      {"key": "meaning", "title": "What it means"}],
    }]
    web_ui.template_args["extended_csv_files"] = [{"href": "./verdict.json", "title": "Live verdict (JSON)"}]

    def payload() -> dict:
        snap = live.snapshot()
        return {"snapshot": snap, "rows": live.rows(snap)}

    @app.after_request
    def _add_verdict_rows(response):
        from flask import request

        if not request.path.endswith("/stats/requests") or response.status_code != 200 or not response.is_json:
            return response
        try:
            snap = live.snapshot()
            data = {**response.get_json(), "extended_stats": [{"key": TAB_KEY, "data": live.rows(snap)}]}
        except Exception as exc:  # the stats answer must never break
            data = {**response.get_json(), "extended_stats": [{"key": TAB_KEY, "data": [
                {"name": "00", "measure": "error", "value": "", "meaning": f"{type(exc).__name__}: {exc}"}]}]}
        response.set_data(json.dumps(data))
        return response

    @app.route("/verdict.json")
    @web_ui.auth_required_if_enabled
    def _verdict_json():
        from flask import jsonify

        return jsonify(payload())

    @app.route("/verdict")
    @web_ui.auth_required_if_enabled
    def _verdict_page():
        label = html.escape(live.snapshot()["label"])
        return PAGE.replace("__LABEL__", label).replace("__COLOURS__", json.dumps(COLOURS))

    @events.test_start.add_listener
    def _on_test_start(environment, **_kw):
        if getattr(environment, "web_ui", None) is not None and environment is live.environment:
            _new_cell(environment, live)

    @events.test_stop.add_listener
    def _on_test_stop(environment, **_kw):
        if getattr(environment, "web_ui", None) is not None and environment is live.environment:
            import gevent

            def settle_then_read():
                _await_last_worker_reports(environment)
                final_reads(environment, live)

            gevent.spawn(settle_then_read)


# -- distributed locust (compose: a master with the web UI, workers sending the requests) ------------
# The workers record; the master judges. Each worker report carries the entries recorded since its
# last one, re-based onto the master's clock (all containers of a host share CLOCK_MONOTONIC); a
# Start on the master sends the new cell (counter key, shared cookie) to every worker first.
CELL_MESSAGE = "lab_cell"


def _lab_module():
    for name in ("locustfile", "loadtests.locustfile"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "RECORDER") and hasattr(module, "Cell"):
            return module
    return None


@events.init.add_listener
def _on_init_distributed(environment, **_kwargs):
    from locust.runners import MasterRunner, WorkerRunner

    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        module = _lab_module()
        if module is not None:
            module.Cell.client_prefix = f"{worker_name(runner.client_id)}-"

        def _on_cell(environment, msg, **_kw):
            module = _lab_module()
            if module is None:
                return
            module.RECORDER.reset()
            module.Cell.key = msg.data["key"]
            module.Cell.shared_cookie = msg.data.get("shared_cookie")
            module.Cell.budget.issued = 0

        runner.register_message(CELL_MESSAGE, _on_cell)
    elif isinstance(runner, MasterRunner):
        @events.test_start.add_listener
        def _send_cell(environment, **_kw):
            module = _lab_module()
            if module is not None and environment.runner is runner:
                runner.send_message(CELL_MESSAGE, {"key": module.Cell.key, "shared_cookie": module.Cell.shared_cookie})


@events.report_to_master.add_listener
def _forward_entries(client_id, data, **_kwargs):
    module = _lab_module()
    if module is None:
        return
    recorder = module.RECORDER
    if getattr(recorder, "_forwarded_from", None) is not recorder.entries:  # a new cell: start over
        recorder._forwarded_from, recorder._forwarded = recorder.entries, 0
    new = recorder.entries[recorder._forwarded:]
    recorder._forwarded = len(recorder.entries)
    if new:  # t0 on the master's clock: a worker on another machine knows the offset (loadtests/distributed.py)
        data["lab_entries"] = {"t0": recorder.t0 + getattr(recorder, "clock_offset", 0.0), "entries": new,
                               "clock_error": getattr(recorder, "clock_error", 0.0)}


def _await_last_worker_reports(environment) -> None:
    """On a master: read at rest only once every worker's last entries are in. A stopped worker sends them
    with its next periodic report (every WORKER_REPORT_INTERVAL s); reading earlier, the counter at rest
    would exceed the requests the master knows of - an over-count that is only the tab's own delay."""
    import gevent
    from locust.runners import WORKER_REPORT_INTERVAL, MasterRunner

    if isinstance(environment.runner, MasterRunner):
        gevent.sleep(2 * WORKER_REPORT_INTERVAL + 1)


@events.worker_report.add_listener
def _collect_entries(client_id, data, **_kwargs):
    payload = data.get("lab_entries")
    module = _lab_module()
    if not payload or module is None:
        return
    shift = payload["t0"] - module.RECORDER.t0
    error = payload.get("clock_error", 0.0)  # a worker on another machine: each time is known to +-error
    worker = worker_name(client_id)
    for entry in payload["entries"]:
        entry = dict(entry)
        entry["invoke"] += shift - error  # widened: what ran before what holds whatever the clocks' error
        entry["complete"] += shift + error
        if error:
            entry["clock_error"] = error
        if not entry["client"].startswith(f"{worker}-"):  # a user's id names its worker (Cell.client_prefix)
            entry["client"] = f"{worker}-{entry['client']}"
        entry["worker"] = worker
        entry["req"] = next(module.RECORDER.req_ids)
        module.add_entry(entry)


def worker_name(client_id) -> str:
    """A worker as the history names it (its entries' `worker`, their clients' prefix): its id's last 6 characters."""
    return str(client_id)[-6:]
