"""The drill's files: ``chaos.json`` (the contract fields and the checks), ``details.json``
(phases, outages, stampede) and a :class:`~wedcache.reporting.Report` (HTML, Markdown, PNG).

The report opens with the verdict, then the checks, the figures, a table per phase and a
timeline plot: answers per second by ``X-Cache`` and errors, with the outages shaded.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from ..reporting import Report, fmt_ms, fmt_percent, write_json
from .drill import DrillResult

CHAOS_KEYS = ("requests", "errors_5xx", "errors_other", "hit_rate_before", "hit_rate_during_redis_outage",
              "recovery_seconds_redis", "recovery_seconds_postgres", "origin_calls_during_outage", "rows_before",
              "rows_after", "stampede_origin_calls")
BIN_SECONDS = 0.5
MAX_LISTED = 20
"""5xx answers listed by time and error message in the report."""
EXPLANATION = ("The drill runs its own Redis and PostgreSQL, an origin that counts its calls, and two wedcache "
               "serve replicas behind the loopback balancer. Requests and errors count the steady load and the "
               "stampede; 5xx are answers with a 5xx status, other errors are transport failures (a connection "
               "reset when a replica is killed, a timeout) and non-5xx refusals. The hit rate is X-Cache HIT-* "
               "over successful answers (every tenth request of the load asks a new query, so about 90 % is the "
               "ceiling). A recovery time runs from the restart until every replica's /readyz reports the tier "
               "up with a closed breaker and a rolling 1-s window holds the prior hit rate again (within 5 "
               "points). Origin calls during the outages count both tier outages; rows are PostgreSQL's cache "
               "entries before the first outage and after the load (rows lost: keys present before, gone after).")


def chaos_json(result: DrillResult) -> dict[str, Any]:
    """Exactly the contract fields and the checks."""
    figures = result.figures()
    return {**{key: figures[key] for key in CHAOS_KEYS}, "checks": [c.as_dict() for c in result.checks]}


def details_json(result: DrillResult) -> dict[str, Any]:
    """What the figures come from: plan, phases, outages, the replica kill and the stampede."""
    start = result.started_at
    outages = {tier: {"down_s": o.outage.down_at - start, "up_s": o.outage.up_at - start,
                      "outage_seconds": o.outage.seconds, "origin_calls": o.origin_calls,
                      "every_replica_back_after_s": None if o.ready_at is None else o.ready_at - o.outage.up_at,
                      "hit_rate_back_after_s": None if o.hit_rate_at is None else o.hit_rate_at - o.outage.up_at}
               for tier, o in result.outages.items()}
    kill = result.replica_kill
    return {"plan": vars(result.plan), "phases": result.phases(), "outages": outages,
            "replica_kill": {"killed_s": kill["killed_at"] - start, "answering_again_s": kill["back_at"] - start},
            "rows_lost": result.rows_lost,
            "failures": [{"at_s": s.at - start, "outcome": s.outcome, "seconds": s.seconds, "error": s.error}
                         for s in result.samples + result.stampede_samples if not s.ok], "origin_calls_total": result.origin_calls_total,
            "x_cache": dict(Counter(s.x_cache or s.outcome for s in result.samples)),
            "stampede": {"requests": len(result.stampede_samples), "origin_calls": result.stampede_origin_calls,
                         "connections_per_replica": {str(k): v for k, v in sorted(result.stampede_spread.items())},
                         "outcomes": dict(Counter(s.x_cache or s.outcome for s in result.stampede_samples))}}


def write_outputs(result: DrillResult, out: Path) -> dict[str, Path]:
    """``chaos.json``, ``details.json``, ``report.html``, ``report.md`` and the PNG into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "chaos.json", chaos_json(result))
    write_json(out / "details.json", details_json(result))
    return {"json": out / "chaos.json", "details": out / "details.json", **build_report(result).write(out)}


def build_report(result: DrillResult) -> Report:
    plan, figures = result.plan, result.figures()
    report = Report("wedcache fault drill", f"plan {plan.name}: {plan.replicas} replicas x {plan.workers} worker(s), "
                    f"{plan.rate:g} requests/s, outages of {plan.outage_s:g} s, stampede of {plan.stampede}")
    failed = ", ".join(c.name for c in result.failed())
    report.verdict(result.passed, "every check passed" if result.passed else f"failed: {failed}")
    report.table(["check", "target", "actual", "passed"],
                 [[c.name, f"{c.op} {c.target:g}", c.actual, c.passed] for c in result.checks], caption="Checks")
    report.table(["figure", "value"], [[key, figures[key]] for key in CHAOS_KEYS], caption="chaos.json")
    report.table(["phase", "from s", "to s", "requests", "hit rate", "5xx", "other errors", "slowest"],
                 [[name, p["from_s"], p["to_s"], p["requests"], fmt_percent(p["hit_rate"]), p["errors_5xx"],
                   p["errors_other"], fmt_ms(p["slowest_s"] * 1000)] for name, p in result.phases().items()],
                 caption="Phases of the steady load (by the time a request was sent)")
    report.bullets([f"{s.outcome} at {s.at - result.started_at:.2f} s: {s.error}" for s in result.samples
                    if s.is_5xx][:MAX_LISTED])
    report.paragraph(EXPLANATION)
    report.figure("timeline", timeline_figure(result), "Answers per second by X-Cache, errors, and the outages")
    return report


def timeline_figure(result: DrillResult) -> plt.Figure:
    start = result.started_at
    bins: dict[str, Counter] = {}
    for sample in result.samples:
        label = sample.x_cache if sample.ok else ("5xx" if sample.is_5xx else "other error")
        bins.setdefault(label or "other error", Counter())[int((sample.at - start) / BIN_SECONDS)] += 1
    fig, ax = plt.subplots(figsize=(9, 3.8))
    xs = range(max((max(c) for c in bins.values()), default=0) + 1)  # empty bins are zeros, not gaps
    for label, counts in sorted(bins.items()):
        ax.plot([x * BIN_SECONDS for x in xs], [counts[x] / BIN_SECONDS for x in xs], label=label, lw=1.2)
    for tier, o in result.outages.items():
        ax.axvspan(o.outage.stop_at - start, o.outage.up_at - start, alpha=0.15,
                   color="#c62828" if tier == "redis" else "#1565c0", label=f"{tier} down")
    kill = result.replica_kill
    ax.axvspan(kill["killed_at"] - start, kill["back_at"] - start, alpha=0.15, color="#6a1b9a", label="replica 0 down")
    ax.set_xlabel("seconds into the load")
    ax.set_ylabel("answers/s")
    ax.legend(fontsize=8, ncol=3)
    return fig
