"""The gate's files: ``gate.json``, Locust's CSVs (``gate_stats.csv``, ``gate_stats_history.csv``…)
and a :class:`~wedcache.reporting.Report` (HTML, Markdown, PNG).

The report opens with the verdict, then the table of checks, a short explanation of where
each figure comes from, and a plot of the end-to-end and per-tier latencies against their
targets.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ..reporting import Report, fmt_ms, fmt_percent, write_json
from .run import GateResult

EXPLANATION = ("End-to-end latencies are Locust's percentiles of POST /api/ai-cache/query (client clock, "
               "all answers: hits and misses). The hit rate counts the locustfile's CACHE entries (X-Cache "
               "HIT-* over all answered queries). Per-tier p95s are estimated from the server's "
               "ai_cache_response_time_ms histogram buckets (summed over the replicas; linear inside a bucket), "
               "counting only the load, "
               "not the warm-up. The error rate is failed HTTP requests over all HTTP requests.")


def write_outputs(result: GateResult, out: Path) -> dict[str, Path]:
    """``gate.json``, ``report.html``, ``report.md`` and the PNG into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "gate.json", result.as_json())
    for name, text in result.stats.csv_files.items():  # Locust's own tables, for load_test_analysis.ipynb
        (out / name).write_text(text, encoding="utf-8")
    return {"json": out / "gate.json", **build_report(result).write(out)}


def build_report(result: GateResult) -> Report:
    p, s = result.profile, result.stats
    fleet = (f", {p.replicas} replicas" if p.replicas > 1 else "") + \
        (f", {p.locust_workers} Locust workers" if p.locust_workers else "")
    report = Report("wedcache performance gate",
                    f"profile {p.name}: {p.workers} workers{fleet}, {p.users} users, {p.duration_s} s")
    failed = ", ".join(c.name for c in result.failed())
    report.verdict(result.passed, "every check passed" if result.passed else f"failed: {failed}")
    report.table(["check", "target", "actual", "passed"],
                 [[c.name, f"{c.op} {c.target:g}", c.actual, c.passed] for c in result.checks], caption="Checks")
    report.table(["requests", "failures", "requests/s", "hit rate", "p50", "p95", "p99"],
                 [[s.requests, s.failures, s.rps, fmt_percent(s.hit_rate),
                   *(fmt_ms(s.latency_ms[k]) for k in ("p50", "p95", "p99"))]], caption="Load")
    report.paragraph(EXPLANATION)
    report.bullets(load_notes(result))
    report.figure("latency", latency_figure(result), "Measured latencies (bars) and their targets (markers)")
    return report


def load_notes(result: GateResult) -> list[str]:
    """The rate asked for, and a distributed run's split over replicas and Locust workers."""
    p, s = result.profile, result.stats
    notes = [f"Constant throughput: {p.rate:g} requests/s requested, {s.rps:.1f} achieved."] if p.rate else []
    if len(result.replica_queries) > 1:
        notes.append(f"Queries per replica: {', '.join(map(str, result.replica_queries))} (each replica's histogram).")
    if s.worker_requests:
        notes.append(f"Entries per Locust worker: {', '.join(map(str, s.worker_requests))} "
                     f"(they add up to the master's Aggregated row, {s.total_entries}).")
    return notes


def latency_figure(result: GateResult) -> plt.Figure:
    names = ["end_to_end.p50", "end_to_end.p95", "end_to_end.p99",
             *(f"response_time.{tier}.p95" for tier, ms in result.tier_ms.items() if ms is not None)]
    values = [*(result.stats.latency_ms[k] for k in ("p50", "p95", "p99")),
              *(ms for ms in result.tier_ms.values() if ms is not None)]
    targets = {c.name: c.target for c in result.checks}
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(range(len(names)), values, color="#4c72b0")
    marked = [(i, targets[n]) for i, n in enumerate(names) if n in targets]
    ax.scatter([i for i, _ in marked], [t for _, t in marked], marker="_", s=600, color="#c62828", label="target")
    ax.set_xticks(range(len(names)), [n.replace("response_time.", "") for n in names], rotation=20)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylabel("ms (symlog)")
    ax.legend()
    return fig
