"""The simulation report: :func:`write_simulation_report` turns a run's summary and hourly
timeseries into ``report.html``, ``report.md`` and PNG charts, built with
:class:`wedcache.reporting.Report`.

Inputs are the engine's ``summary.json`` (a dict) and ``timeseries.csv`` (one row per
simulated hour); their field names are a contract with the engine. Anything missing, null
or empty is shown as ``—`` or replaced by a note: the report never fails on thin data.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from wedcache.policy import MARKET_TIERS, SEASONS
from wedcache.reporting import Report, fmt_ms, fmt_number, fmt_percent, fmt_usd

TIERS = ("memory", "redis", "postgres")
HIT_COLUMNS = tuple(f"hits_{tier}" for tier in TIERS)
NUMERIC_COLUMNS = ("requests", *HIT_COLUMNS, "misses", "stale_hits", "p95_ms", "memory_bytes",
                   "memory_entries", "origin_cost_usd")
MISS_CAUSES = {
    "cold": "first request for the key",
    "expired": "entry past its TTL",
    "evicted": "entry pushed out for space",
    "coalesced": "waited for an in-flight computation",
}
DAILY_AFTER = pd.Timedelta(days=3)
"""Runs longer than this are charted per day instead of per hour."""

Plot = Figure | str
"""A chart, or the note that replaces it."""


def write_simulation_report(summary: dict, timeseries: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write the report of one simulation run into ``out_dir``.

    :returns: the written paths, as :meth:`Report.write` (``html``, ``md`` and one per chart)."""
    summary = summary or {}
    report = Report(f"Simulation: {summary.get('scenario') or 'unnamed'}", _subtitle(summary))
    for section in (_verdict, _headline, _failures, _checks, _p95_section, _swr_section,
                    _semantic_section, _breakdowns, _misses):
        section(report, summary)
    _charts(report, summary, _hourly(timeseries))
    return report.write(Path(out_dir))


# --- reading the summary ---------------------------------------------------------------------

def _map(data: Any, key: str) -> dict:
    """``data[key]`` when it is a mapping, else ``{}``."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def _number(value: Any) -> float:
    """A float, NaN for anything that is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _sla_checks(summary: Mapping) -> list[dict]:
    """The SLA checks that are mappings (anything else in the list is skipped)."""
    return [dict(c) for c in _map(summary, "sla").get("checks") or [] if isinstance(c, Mapping)]


def _ordered(groups: Mapping[str, Any], order: tuple[str, ...]) -> list[str]:
    """Group names: those in ``order`` first (in that order), then the rest sorted."""
    return [name for name in order if name in groups] + sorted(set(groups) - set(order))


def _by_requests(groups: Mapping[str, Any]) -> list[str]:
    """Group names, busiest first."""
    def load(name: str) -> float:
        return float(np.nan_to_num(_number(_map(groups, name).get("requests"))))
    return sorted(groups, key=lambda name: (-load(name), name))


def _dates(summary: Mapping) -> str:
    start, days = summary.get("start_date"), _number(summary.get("days"))
    if not start:
        return "dates unknown"
    try:
        end = date.fromisoformat(str(start)[:10]) + timedelta(days=days)
    except (ValueError, OverflowError):
        return f"from {start}"
    return f"{start} to {end.isoformat()} ({fmt_number(days)} days)"


def _subtitle(summary: Mapping) -> str:
    rate = fmt_percent(summary.get("sample_rate"), 2)
    return (f"seed {fmt_number(summary.get('seed'))} · sample rate {rate} · "
            f"{summary.get('backends') or 'unknown'} backends · {_dates(summary)}")


# --- sections --------------------------------------------------------------------------------

def _verdict(report: Report, summary: Mapping) -> None:
    sla, checks = _map(summary, "sla"), _sla_checks(summary)
    failed = sum(1 for check in checks if not check.get("passed"))
    if "passed" not in sla:
        report.paragraph("The summary holds no SLA result.")
    elif sla["passed"] and not failed:
        report.verdict(True, f"SLA met: all {len(checks)} checks pass.")
    else:
        report.verdict(False, f"SLA missed: {failed} of {len(checks)} checks fail.")


def _headline(report: Report, summary: Mapping) -> None:
    tiers, latency = _map(summary, "tier_hit_rate"), _map(summary, "latency_ms")
    stderr = _number(_map(summary, "sampling").get("hit_rate_stderr"))
    hit_rate = fmt_percent(summary.get("hit_rate"))
    if stderr > 0:
        hit_rate += f" ± {fmt_percent(stderr, 2)}"
    rows = [["requests", summary.get("requests")], ["sampled requests", summary.get("sampled_requests")],
            ["hit rate (any tier, stale-while-revalidate included)", hit_rate]]
    rows += [[f"answered by {tier}", fmt_percent(tiers.get(tier))] for tier in TIERS]
    rows += [["stale hits (share of hits)", fmt_percent(summary.get("stale_hit_fraction"))]]
    rows += [[f"latency {stat}", fmt_ms(latency.get(stat))] for stat in ("mean", "p50", "p95", "p99")]
    rows += [["origin calls", summary.get("origin_calls")],
             ["origin cost", fmt_usd(summary.get("origin_cost_usd"))],
             ["cost saved by the cache", fmt_usd(summary.get("cost_saved_usd"))],
             ["coalesced requests", summary.get("coalesced")],
             ["simulation wall time", f"{fmt_number(summary.get('wall_seconds'))} s"]]
    report.heading("Headline")
    report.table(["metric", "value"], rows)


def _check_value(name: str, value: Any) -> str:
    """A check's target or actual, formatted by what the check's name says it measures."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return fmt_number(value)
    if "hit_rate" in name:
        return fmt_percent(value)
    if "response_time" in name or re.search(r"(^|\.)p\d", name):
        return fmt_ms(value)
    return fmt_number(value)


def _failures(report: Report, summary: Mapping) -> None:
    checks = _sla_checks(summary)
    failed = [check for check in checks if not check.get("passed")]
    report.heading("Which SLA checks fail and why")
    if not checks:
        report.paragraph("No SLA checks were run.")
    elif not failed:
        report.paragraph(f"All {len(checks)} SLA checks pass.")
    else:
        report.bullets([f"**{c.get('name')}**: {c.get('why') or 'no reason given'} "
                        f"(target {_check_value(str(c.get('name')), c.get('target'))}, "
                        f"actual {_check_value(str(c.get('name')), c.get('actual'))})" for c in failed])


def _checks(report: Report, summary: Mapping) -> None:
    checks = _sla_checks(summary)
    if not checks:
        return
    rows = [[str(c.get("name")), _check_value(str(c.get("name")), c.get("target")),
             _check_value(str(c.get("name")), c.get("actual")), "PASS" if c.get("passed") else "FAIL",
             c.get("why") or ""] for c in checks]
    report.heading("All SLA checks")
    report.table(["check", "target", "actual", "result", "why"], rows)


def _percentile_label(p95: Mapping) -> str:
    percentile = _number(p95.get("percentile"))
    if np.isnan(percentile):
        return "p95"
    return f"p{percentile * 100 if percentile <= 1 else percentile:g}"


def _grace_clause(p95: Mapping) -> str:
    required, actual = _number(p95.get("required_hit_rate")), _number(p95.get("actual_hit_rate"))
    grace = p95.get("grace_seconds_needed")
    if actual >= required:
        return "the hit rate already meets the requirement, so no grace window is needed."
    if grace is None:
        return "no stale-while-revalidate grace window, however long, would close the gap."
    return f"a stale-while-revalidate grace window of {fmt_number(grace)} s would cover them."


def _p95_sentences(p95: Mapping) -> list[str]:
    target, label = fmt_ms(p95.get("target_ms")), _percentile_label(p95)
    share, required = fmt_percent(p95.get("origin_share_over_target")), p95.get("required_hit_rate")
    reached = f"this run reached {fmt_percent(p95.get('actual_hit_rate'))}."
    if required is None:
        first = (f"With origin latency over {target} for {share} of calls, no hit rate keeps "
                 f"{label} under {target}; {reached}")
    else:
        first = (f"With origin latency over {target} for {share} of calls, {label} < {target} needs "
                 f"a hit rate of at least {fmt_percent(required)}; {reached}")
    if p95.get("expired_miss_share") is None:
        return [first]
    return [first, f"Expired entries account for {fmt_percent(p95.get('expired_miss_share'))} of requests; "
                   f"{_grace_clause(p95)}"]


def _opened(report: Report, summary: Mapping, field: str, title: str, absent: str) -> Mapping:
    """Start a section on ``summary[field]``; an empty mapping (and a note) when it is absent."""
    data = _map(summary, field)
    report.heading(title)
    if not data:
        report.paragraph(f"The summary holds no {absent}.")
    return data


def _p95_section(report: Report, summary: Mapping) -> None:
    p95 = _opened(report, summary, "p95_analysis", "Tail latency and hit rate", "p95 analysis")
    if not p95:
        return
    report.paragraph(" ".join(_p95_sentences(p95)))
    if p95.get("explanation"):
        report.paragraph(str(p95["explanation"]))
    grace = p95.get("grace_seconds_needed")
    report.table(["quantity", "value"], [
        ["latency target", f"{_percentile_label(p95)} < {fmt_ms(p95.get('target_ms'))}"],
        ["origin calls over the target", fmt_percent(p95.get("origin_share_over_target"))],
        ["hit rate needed", fmt_percent(p95.get("required_hit_rate"))],
        ["hit rate reached", fmt_percent(p95.get("actual_hit_rate"))],
        ["requests missed only because the entry expired", fmt_percent(p95.get("expired_miss_share"))],
        ["grace window needed", "none is enough" if grace is None else f"{fmt_number(grace)} s"]])


def _swr_section(report: Report, summary: Mapping) -> None:
    swr = _opened(report, summary, "swr", "Stale-while-revalidate", "stale-while-revalidate figures")
    if not swr:
        return
    report.paragraph(f"Serving {fmt_percent(swr.get('grace_served'))} of requests stale within the grace "
                     f"window kept p95 at {fmt_ms(swr.get('p95_ms'))}; had they waited for the origin, "
                     f"p95 would have been about {fmt_ms(swr.get('p95_ms_without'))}.")
    report.table(["quantity", "value"], [
        ["requests served within the grace window", fmt_percent(swr.get("grace_served"))],
        ["of those, served with changed source data", fmt_percent(swr.get("grace_served_stale_fraction"))],
        ["p95 with stale-while-revalidate", fmt_ms(swr.get("p95_ms"))],
        ["p95 without (estimated)", fmt_ms(swr.get("p95_ms_without"))]])


def _semantic_section(report: Report, summary: Mapping) -> None:
    """Semantic matching against exact matching; only for runs with paraphrases or semantic on."""
    sem = _map(summary, "semantic")
    if not sem:
        return
    report.heading("Semantic matching")
    variants = f"{fmt_number(sem.get('paraphrase_variants'))} paraphrases per query"
    near = f"{fmt_percent(sem.get('near_miss_share'))} of requests near misses"
    if not sem.get("enabled"):
        report.paragraph(f"Exact keys only, on a workload with {variants} and {near}: each wording is its own key.")
        return
    gain = _number(sem.get("hit_rate_gain")) * 100
    report.paragraph(f"With {variants} and {near}, semantic matching after an exact miss raised the hit rate "
                     f"from {fmt_percent(sem.get('exact_hit_rate'))} (exact keys, the same requests) to "
                     f"{fmt_percent(sem.get('hit_rate'))}, {gain:+.1f} points; "
                     f"{fmt_percent(sem.get('false_hit_rate'), 2)} of semantic hits served another answer.")
    report.table(["quantity", "value"], [
        ["similarity threshold", fmt_number(sem.get("threshold"))],
        ["hit rate, exact keys only", fmt_percent(sem.get("exact_hit_rate"))],
        ["hit rate, with semantic matching", fmt_percent(sem.get("hit_rate"))],
        ["requests answered by a near match", fmt_percent(sem.get("semantic_hit_rate"))],
        ["false hits (another true answer)", f"{fmt_number(sem.get('false_hits'))} "
                                             f"({fmt_percent(sem.get('false_hit_rate'), 2)} of semantic hits)"],
        ["near-miss requests / served a neighbour's answer",
         f"{fmt_number(sem.get('near_miss_requests'))} / {fmt_number(sem.get('near_misses_served'))}"],
        ["origin calls saved", fmt_number(sem.get("origin_calls_saved"))]])


def _group_row(name: str, group: Mapping, hit_targets: Mapping, ms_targets: Mapping) -> list:
    """One group's row; the target columns only when the report has targets of that kind."""
    row = [name, group.get("requests"), fmt_percent(group.get("hit_rate"))]
    row += [fmt_percent(hit_targets.get(name))] if hit_targets else []
    row += [fmt_ms(group.get("p50_ms")), fmt_ms(group.get("p95_ms"))]
    row += [fmt_ms(ms_targets.get(name))] if ms_targets else []
    return row + [fmt_ms(group.get("mean_ms")), fmt_percent(group.get("stale_hit_fraction")),
                  fmt_usd(group.get("origin_cost_usd"))]


def _group_table(report: Report, title: str, label: str, groups: Mapping, names: list[str],
                 hit_targets: Mapping, ms_targets: Mapping) -> None:
    report.heading(title)
    if not names:
        report.paragraph(f"The summary holds no figures {title.lower()}.")
        return
    columns = [label, "requests", "hit rate", *(["hit-rate target"] if hit_targets else []), "p50", "p95",
               *(["response-time target"] if ms_targets else []), "mean", "stale hits", "origin cost"]
    report.table(columns, [_group_row(n, _map(groups, n), hit_targets, ms_targets) for n in names])


def _breakdowns(report: Report, summary: Mapping) -> None:
    targets = _map(summary, "targets")
    seasons, markets, vendors = (_map(summary, key) for key in ("by_season", "by_market_tier", "by_vendor_type"))
    _group_table(report, "By season", "season", seasons, _ordered(seasons, SEASONS),
                 _map(targets, "hit_rate_by_season"), _map(targets, "response_time_ms_by_season"))
    _group_table(report, "By market tier", "market tier", markets, _ordered(markets, MARKET_TIERS),
                 _map(targets, "hit_rate_by_market_tier"), _map(targets, "response_time_ms_by_market_tier"))
    _group_table(report, "By vendor type", "vendor type", vendors, _by_requests(vendors),
                 _map(targets, "hit_rate_by_vendor_type"), _map(targets, "response_time_ms_by_vendor_type"))


def _misses(report: Report, summary: Mapping) -> None:
    misses = _map(summary, "misses")
    report.heading("Why requests missed")
    if not misses:
        report.paragraph("The summary holds no miss breakdown.")
        return
    names = _ordered(misses, tuple(MISS_CAUSES))
    rows = [[name, MISS_CAUSES.get(name, ""), fmt_percent(misses.get(name))] for name in names]
    total = np.nansum([_number(misses.get(name)) for name in names])
    report.table(["cause", "meaning", "share of requests"], rows + [["all misses", "", fmt_percent(total)]])


# --- timeseries ------------------------------------------------------------------------------

def _hourly(timeseries: pd.DataFrame | None) -> pd.DataFrame:
    """The timeseries indexed by UTC hour with numeric columns (absent ones NaN) and ``hits``."""
    frame = pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC"), columns=[*NUMERIC_COLUMNS, "hits"], dtype=float)
    if timeseries is None or len(timeseries) == 0 or "hour" not in timeseries:
        return frame
    hours = pd.DatetimeIndex(pd.to_datetime(timeseries["hour"], utc=True, errors="coerce"))
    data = {c: pd.to_numeric(timeseries[c], errors="coerce").to_numpy(float) if c in timeseries
            else np.full(len(hours), np.nan) for c in NUMERIC_COLUMNS}
    frame = pd.DataFrame(data, index=hours)
    frame = frame[frame.index.notna()].sort_index()
    frame["hits"] = frame[list(HIT_COLUMNS)].sum(axis=1, min_count=1)
    return frame


def _buckets(hourly: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per day when the run is longer than :data:`DAILY_AFTER`, else per hour."""
    if hourly.index.max() - hourly.index.min() > DAILY_AFTER:
        return hourly.resample("D").sum(min_count=1), "day"
    return hourly, "hour"


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return numerator / denominator.where(denominator > 0)


def _time_axes() -> tuple[Figure, Any]:
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.add_subplot()
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.grid(alpha=0.3)
    return fig, ax


def _load_plot(hourly: pd.DataFrame) -> Plot:
    if hourly.empty or not np.nansum(hourly["requests"]) > 0:
        return "no requests in the timeseries"
    data, unit = _buckets(hourly)
    fig, ax = _time_axes()
    ax.plot(data.index, data["requests"], color="tab:blue", marker="o" if unit == "day" else None)
    ax.set_ylabel(f"requests per {unit}", color="tab:blue")
    rate = ax.twinx()
    rate.plot(data.index, _ratio(data["hits"], data["requests"]), color="tab:green")
    rate.set_ylim(0, 1.05)
    rate.yaxis.set_major_formatter(PercentFormatter(1.0))
    rate.set_ylabel(f"hit rate per {unit}", color="tab:green")
    ax.set_title(f"Load and hit rate per {unit}")
    return fig


def _staleness_plot(hourly: pd.DataFrame) -> Plot:
    if hourly.empty or not np.nansum(hourly["hits"]) > 0 or hourly["stale_hits"].isna().all():
        return "no hits or no stale-hit counts in the timeseries"
    data, unit = _buckets(hourly)
    fig, ax = _time_axes()
    ax.plot(data.index, _ratio(data["stale_hits"], data["hits"]), color="tab:orange")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(bottom=0)
    ax.set_ylabel("stale hits / hits")
    ax.set_title(f"Stale hit share per {unit}")
    return fig


def _cost_plot(hourly: pd.DataFrame) -> Plot:
    if hourly.empty or hourly["origin_cost_usd"].isna().all():
        return "no origin cost in the timeseries"
    fig, ax = _time_axes()
    ax.plot(hourly.index, hourly["origin_cost_usd"].fillna(0).cumsum(), color="tab:red")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("cumulative origin cost (USD)")
    ax.set_title("Cumulative origin cost")
    return fig


# --- per-group charts ------------------------------------------------------------------------

def _bar_axes(names: list[str]) -> tuple[Figure, Any, np.ndarray]:
    fig = Figure(figsize=(max(6.0, 0.7 * len(names) + 2), 4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(names))
    ax.set_xticks(x, names, rotation=30 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center")
    ax.grid(axis="y", alpha=0.3)
    return fig, ax, x


def _target_marks(ax: Any, x: np.ndarray, names: list[str], targets: Mapping, half_width: float) -> None:
    """A dashed line over each bar whose group has a target."""
    points = [(i, _number(targets.get(name))) for i, name in zip(x, names) if targets.get(name) is not None]
    for n, (i, target) in enumerate(points):
        ax.hlines(target, i - half_width, i + half_width, colors="black", linestyles="--",
                  label="target" if n == 0 else None)


def _latency_plot(summary: Mapping) -> Plot:
    seasons = _map(summary, "by_season")
    names = [s for s in _ordered(seasons, SEASONS)
             if not np.isnan([_number(_map(seasons, s).get(k)) for k in ("p50_ms", "p95_ms")]).all()]
    if not names:
        return "no per-season latency in the summary"
    fig, ax, x = _bar_axes(names)
    for offset, key, color in ((-0.2, "p50_ms", "tab:blue"), (0.2, "p95_ms", "tab:purple")):
        ax.bar(x + offset, [_number(_map(seasons, s).get(key)) for s in names], 0.4, label=key[:3], color=color)
    _target_marks(ax, x, names, _map(_map(summary, "targets"), "response_time_ms_by_season"), 0.45)
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency by season")
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    return fig


def _hit_rate_plot(groups: Mapping, names: list[str], targets: Mapping, title: str) -> Plot:
    names = [n for n in names if not np.isnan(_number(_map(groups, n).get("hit_rate")))]
    if not names:
        return "no hit rates in the summary"
    fig, ax, x = _bar_axes(names)
    ax.bar(x, [_number(_map(groups, n).get("hit_rate")) for n in names], 0.6, color="tab:green", label="hit rate")
    _target_marks(ax, x, names, targets, 0.4)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    return fig


def _market_plot(summary: Mapping) -> Plot:
    markets = _map(summary, "by_market_tier")
    return _hit_rate_plot(markets, _ordered(markets, MARKET_TIERS),
                          _map(_map(summary, "targets"), "hit_rate_by_market_tier"), "Hit rate by market tier")


def _vendor_plot(summary: Mapping) -> Plot:
    vendors = _map(summary, "by_vendor_type")
    return _hit_rate_plot(vendors, _by_requests(vendors),
                          _map(_map(summary, "targets"), "hit_rate_by_vendor_type"), "Hit rate by vendor type")


def _charts(report: Report, summary: Mapping, hourly: pd.DataFrame) -> None:
    charts: list[tuple[str, Callable[[], Plot], str]] = [
        ("load_and_hit_rate", lambda: _load_plot(hourly), "Requests and hit rate over the run"),
        ("latency_by_season", lambda: _latency_plot(summary), "p50 and p95 latency per season"),
        ("hit_rate_by_market_tier", lambda: _market_plot(summary), "Hit rate per market tier against its target"),
        ("hit_rate_by_vendor_type", lambda: _vendor_plot(summary), "Hit rate per vendor type"),
        ("staleness", lambda: _staleness_plot(hourly), "Share of hits whose source data had changed"),
        ("cost", lambda: _cost_plot(hourly), "Cumulative origin cost over the run"),
    ]
    report.heading("Charts")
    for name, build, caption in charts:
        plot = build()
        if isinstance(plot, Figure):
            report.figure(name, plot, caption)
        else:
            report.paragraph(f"No {name}.png chart: {plot}.")
