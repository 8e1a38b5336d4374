"""From what a run observed to what people and CI read: :func:`summarize` and :func:`timeseries`.

Counts are scaled back to the full workload (``source.scale``: requests in the full
workload per sampled request, about ``1 / sample_rate``); rates and percentiles are not. The
sampling error of the hit rate is the spread of the hit rate over ten groups of objects
(objects, not requests, are what sampling keeps). Field names are a contract (issue 3).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from wedcache.policy import MARKET_TIERS, VENDOR_TYPES, Policy

from .engine import COALESCED, MISS_COLD, MISS_EVICTED, MISS_EXPIRED, Records, hash_groups
from .sla import p95_analysis, sla_checks

SEASONS = ("spring", "summer", "fall", "winter")


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def group_stats(rec: Records, mask: np.ndarray, scale: float, cost_per_call: float) -> dict[str, Any]:
    """``requests`` (scaled), ``hit_rate``, latency figures and staleness of the requests in ``mask``."""
    code, latency, stale = rec.code[mask], rec.latency_ms[mask], rec.stale[mask]
    hits = code <= 2
    n = int(code.size)
    origin_calls = int(np.isin(code, (MISS_COLD, MISS_EXPIRED, MISS_EVICTED)).sum())
    return {"requests": round(n * scale), "hit_rate": float(hits.mean()) if n else None,
            "p50_ms": _pct(latency, 50), "p95_ms": _pct(latency, 95), "p99_ms": _pct(latency, 99),
            "mean_ms": float(latency.mean()) if n else None,
            "stale_hit_fraction": float(stale[hits].mean()) if hits.any() else 0.0,
            "origin_cost_usd": origin_calls * scale * cost_per_call}


def _by(rec: Records, labels: np.ndarray, names: tuple[str, ...], scale: float, cost: float) -> dict[str, Any]:
    return {name: group_stats(rec, labels == code, scale, cost)
            for code, name in enumerate(names) if (labels == code).any()}


def season_codes(t: np.ndarray, start: datetime, policy: Policy) -> np.ndarray:
    """The season (index into :data:`SEASONS`) of each request time."""
    days = np.datetime64(start.date()) + (t // 86400).astype("timedelta64[D]")
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    table = np.zeros(13, np.int8)
    for code, name in enumerate(SEASONS):
        table[policy.seasons[name].months] = code
    return table[month]


def sampling_error(rec: Records) -> float:
    """Standard error of the hit rate across ten hash groups of objects."""
    groups = hash_groups(rec.object_id)
    rates = [float((rec.code[groups == g] <= 2).mean()) for g in range(10) if (groups == g).any()]
    return float(np.std(rates, ddof=1) / np.sqrt(len(rates))) if len(rates) > 1 else 0.0


def summarize(rec: Records, *, scenario: Any, policy: Policy, start: datetime, source: Any,
              origin: Any, backends: str, wall_seconds: float) -> dict[str, Any]:
    """The ``summary.json`` of a run (see the README for every field)."""
    rate, cost = scenario.run.sample_rate, origin.cost_per_call_usd
    scale, n = source.scale, int(rec.code.size)
    everything = np.ones(n, bool)
    overall = group_stats(rec, everything, scale, cost)
    vendors, tiers = source.vendor_codes[rec.object_id], source.tier_codes[rec.object_id]
    calls = int(rec.origin_call_times.size)
    summary = {
        "scenario": scenario.name, "seed": scenario.run.seed, "sample_rate": rate, "backends": backends,
        "start_date": start.date().isoformat(), "days": source.duration_seconds / 86400,
        "requests": overall["requests"], "sampled_requests": n, "wall_seconds": wall_seconds,
        "setup_seconds": rec.setup_seconds,
        "sim_requests_per_second": n / rec.loop_seconds if rec.loop_seconds > 0 else None,
        "hit_rate": overall["hit_rate"] or 0.0,
        "tier_hit_rate": {name: float((rec.code == code).mean()) if n else 0.0 for name, code in
                          (("memory", 0), ("redis", 1), ("postgres", 2))},
        "stale_hit_fraction": overall["stale_hit_fraction"],
        "latency_ms": {k: overall[f"{k}_ms"] for k in ("mean", "p50", "p95", "p99")},
        "origin_calls": round(calls * scale), "origin_cost_usd": calls * scale * cost,
        "cost_saved_usd": max(0.0, (n - calls) * scale * cost),
        "coalesced": round(int((rec.code == COALESCED).sum()) * scale),
        "misses": {name: float((rec.code == code).mean()) if n else 0.0 for name, code in
                   (("cold", MISS_COLD), ("expired", MISS_EXPIRED), ("evicted", MISS_EVICTED),
                    ("coalesced", COALESCED))},
        "swr": _swr(rec),
        "by_season": _by(rec, season_codes(rec.t, start, policy), SEASONS, scale, cost),
        "by_market_tier": _by(rec, tiers, MARKET_TIERS, scale, cost),
        "by_vendor_type": _by(rec, vendors, VENDOR_TYPES, scale, cost),
        "sampling": {"rate": rate, "scale": scale, "objects": int(np.unique(rec.object_id).size),
                     "hit_rate_stderr": sampling_error(rec)},
    }
    summary["p95_analysis"] = p95_analysis(rec, summary, policy, origin)
    summary["sla"] = sla_checks(rec, summary, policy)
    summary["targets"] = targets(policy)
    summary["config"] = scenario.to_dict()
    return summary


def semantic_summary(rec: Records, source: Any, *, scenario: Any, threshold: float | None,
                     exact: dict[str, Any] | None) -> dict[str, Any]:
    """Semantic matching against exact matching (``summary["semantic"]``).

    ``exact`` is the summary of the same scenario run with exact keys only (same requests:
    same seed), the baseline of ``hit_rate_gain`` (``hit_rate - exact_hit_rate``, as a
    fraction: 0.12 is 12 points) and ``origin_calls_saved``; ``None`` when this run is that
    one. A semantic hit is false when the entry it served has another ground-truth answer
    (``source.answer_ids``) than the question asked: a near miss served its neighbour's answer."""
    n, scale = int(rec.code.size), source.scale
    matched = rec.semantic if rec.semantic is not None else np.full(n, -1, np.int64)
    semantic = matched >= 0
    truth = source.answer_ids
    false = semantic & (truth[np.maximum(matched, 0)] != truth[rec.object_id])
    variants = getattr(source, "variants", None)
    near = variants.near_misses(rec.object_id) if variants is not None else np.zeros(n, bool)
    hit_rate = float((rec.code <= 2).mean()) if n else 0.0
    exact_hit_rate = exact["hit_rate"] if exact is not None else hit_rate
    count = lambda mask: round(int(mask.sum()) * scale)  # noqa: E731
    return {"enabled": rec.semantic is not None, "threshold": threshold,
            "paraphrase_variants": scenario.queries.paraphrase_variants,
            "near_miss_share": scenario.queries.near_miss_share,
            "near_miss_requests": count(near),
            "semantic_hits": count(semantic), "semantic_hit_rate": float(semantic.mean()) if n else 0.0,
            "false_hits": count(false), "false_hit_rate": float(false.sum() / semantic.sum()) if semantic.any() else 0.0,
            "near_misses_served": count(false & near),
            "hit_rate": hit_rate, "exact_hit_rate": exact_hit_rate, "hit_rate_gain": hit_rate - exact_hit_rate,
            "origin_calls_saved": (exact["origin_calls"] if exact is not None else 0)
            - round(int(rec.origin_call_times.size) * scale)}


def _swr(rec: Records) -> dict[str, Any]:
    served = rec.grace
    return {"grace_served": float(served.mean()) if served.size else 0.0,
            "grace_served_stale_fraction": float(rec.stale[served].mean()) if served.any() else 0.0,
            "p95_ms": _pct(rec.latency_ms, 95), "p95_ms_without": _pct(rec.latency_without_grace_ms, 95)}


def targets(policy: Policy) -> dict[str, Any]:
    """The seasonal and market-tier targets, for plots."""
    sla = policy.sla
    return {"hit_rate_by_season": {s: t.hitRate for s, t in sla.seasonal.items()},
            "response_time_ms_by_season": {s: t.responseTime for s, t in sla.seasonal.items()},
            "hit_rate_by_market_tier": {m: t.hitRate for m, t in sla.market_tier.items()},
            "response_time_ms_by_market_tier": {m: t.responseTime for m, t in sla.market_tier.items()}}


def timeseries(rec: Records, start: datetime, scale: float, cost_per_call: float) -> pd.DataFrame:
    """One row per simulated hour (counts scaled back by ``scale``)."""
    hour = (rec.t // 3600).astype(np.int64)
    hours = int(hour.max()) + 1 if hour.size else 0
    count = lambda mask: np.bincount(hour[mask], minlength=hours) * scale  # noqa: E731
    frame = pd.DataFrame({
        "hour": pd.Timestamp(start) + pd.to_timedelta(np.arange(hours), unit="h"),
        "requests": count(np.ones(hour.size, bool)), "hits_memory": count(rec.code == 0),
        "hits_redis": count(rec.code == 1), "hits_postgres": count(rec.code == 2),
        "misses": count(rec.code > 2), "stale_hits": count(rec.stale & (rec.code <= 2)),
    })
    frame["p95_ms"] = pd.Series(rec.latency_ms).groupby(hour).quantile(0.95).reindex(range(hours)).to_numpy()
    calls = np.bincount((rec.origin_call_times // 3600).astype(np.int64), minlength=hours)[:hours]
    frame["origin_cost_usd"] = calls * scale * cost_per_call
    memory = pd.DataFrame(rec.memory_samples, columns=["t", "memory_bytes", "memory_entries"])
    memory["hour"] = (memory["t"] // 3600).astype(np.int64)
    memory = memory.drop_duplicates("hour", keep="last").set_index("hour").reindex(range(hours)).ffill()
    frame["memory_bytes"] = memory["memory_bytes"].to_numpy()
    frame["memory_entries"] = memory["memory_entries"].to_numpy()
    return frame
