"""Latency percentiles of a cell's load, in HdrHistogram (the `hdrhistogram` package): from each request's send
(uncorrected: what a closed-loop generator sees) and, under fixed-rate load, from its scheduled start (corrected
for coordinated omission: a request a stalled server kept the generator from sending still waited)."""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

PERCENTILES = {"p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 99.0, "p999_ms": 99.9}
LOWEST_US, HIGHEST_US, DIGITS = 1, 600_000_000, 3  # 1 µs to 10 minutes, 3 significant digits


def _figures(latencies_s) -> dict | None:
    histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
    for seconds in latencies_s:
        histogram.record_value(min(HIGHEST_US, max(LOWEST_US, round(seconds * 1e6))))
    if not histogram.get_total_count():
        return None
    figures = {name: round(histogram.get_value_at_percentile(q) / 1000, 2) for name, q in PERCENTILES.items()}
    figures["max_ms"] = round(histogram.get_max_value() / 1000, 2)
    return figures


def latency(load: list[dict]) -> dict:
    """``{"uncorrected": {p50_ms, p90_ms, p99_ms, p999_ms, max_ms}, "corrected": {...} | None}`` over the
    answered load requests; corrected only when they carry a scheduled start."""
    answered = [e for e in load if e.get("status")]
    scheduled = [e for e in answered if e.get("scheduled") is not None]
    return {"uncorrected": _figures(e["complete"] - e["invoke"] for e in answered),
            "corrected": _figures(e["complete"] - e["scheduled"] for e in scheduled) if scheduled else None}
