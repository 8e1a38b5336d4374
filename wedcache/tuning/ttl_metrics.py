"""TTL tuning from the service's recorded metrics: :func:`tune_from_metrics` (``--from-metrics``).

The service writes one ``ai_cache_performance_metrics`` row per answered request
(:class:`wedcache.metrics.MetricsBuffer`): its ``cache_key``, time, hit or miss, response
time, market tier, primary vendor type and season. No row records an entry's age or when
vendor data changed, so both are reconstructed:

**Replay.** Per vendor type and candidate ``(baseTtl, window)``, the requests of each key
(in time order) are replayed through a TTL cache that works as the service's does: the
entry's TTL is ``baseTtl × ttlMultiplier(market tier) × ttl_adjustment_factor(season)``,
jittered per key (:func:`wedcache.ttl.jittered`); a request younger than the TTL is a hit, one
inside the stale-while-revalidate window after it is a hit that refreshes the entry, any other
is a miss that stores a new one. A hit's *age* is the time since that entry was stored. The
first request of a key in the window is a miss at every point. Evictions and other
processes' writes are not modelled: ``calibration`` in ``tuning.json`` sets the replay at the
policy in force against the hit rate the rows record, so their distance is visible.

**Staleness.** Data changes are the simulation's model: per vendor type a Poisson process at
``volatilityFactor / baseTtl`` (of the policy in force), so a hit of age ``a`` is stale with
probability ``1 - exp(-rate × a)``; the stale-hit fraction is its mean over the hits.

**Cost and p95.** Origin cost is misses × ``costs.origin_per_1k`` / 1000. p95 is the 95th
percentile of the mixture of the recorded hit and miss response times, weighted by the
point's hit rate.

The choice, the tuned policy, ``tuning.json`` and the report are those of
:mod:`wedcache.tuning.ttl`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from ..ops.db import metric_window
from ..policy import Policy, load_policy
from ..ttl import jittered
from .ttl import (DEFAULT_MAX_STALE, Grid, Progress, decide, point_settings, seed_settings, staleness_bounds,
                  tuned_policy, weighted, write_outputs)

_SELECT = ("SELECT cache_key, vendor_type::text, market_tier::text, season::text, "
           "extract(epoch FROM recorded_at)::float8, metric_type = 'hit', metric_value::float8 "
           "FROM ai_cache_performance_metrics WHERE {} AND vendor_type IS NOT NULL AND cache_key IS NOT NULL "
           "ORDER BY cache_key, recorded_at")


@dataclass
class Requests:
    """One vendor type's recorded requests, ordered by key then time."""

    keys: list[str]
    t: list[float]
    scale: list[float]
    """``ttlMultiplier × ttl_adjustment_factor × jitter`` of each request: TTL = baseTtl × scale."""
    hit: np.ndarray
    """What the service recorded."""
    ms: np.ndarray


def fetch_rows(database_url: str, now: float, time_range: str) -> list[tuple]:
    """The hit and miss rows of ``(now - time_range, now]`` that name a vendor type."""
    window = metric_window(now, time_range, None)
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        return conn.execute(sql.SQL(_SELECT).format(window.where), window.params).fetchall()


def group_requests(rows: list[tuple], policy: Policy) -> dict[str, Requests]:
    """Rows per vendor type, with each request's TTL scale from the policy in force."""
    columns: dict[str, list[list]] = {}
    jitter_of: dict[str, float] = {}
    for key, vendor, tier, season, t, hit, ms in rows:
        tiers, seasons = policy.market_tiers, policy.seasons
        factor = (tiers[tier].ttlMultiplier if tier in tiers else 1.0) * \
                 (seasons[season].ttl_adjustment_factor if season in seasons else 1.0)
        if key not in jitter_of:
            jitter_of[key] = jittered(1.0, key, policy.jitter)
        cols = columns.setdefault(vendor, [[], [], [], [], []])
        for col, value in zip(cols, (key, t, factor * jitter_of[key], hit, ms)):
            col.append(value)
    return {vendor: Requests(c[0], c[1], c[2], np.array(c[3], bool), np.array(c[4], float))
            for vendor, c in columns.items()}


def replay(req: Requests, base_ttl: float, grace: float) -> tuple[np.ndarray, np.ndarray]:
    """Hits and their ages (NaN for misses) of a TTL cache with ``base_ttl`` and ``grace``."""
    hits, ages = np.zeros(len(req.t), bool), np.full(len(req.t), np.nan)
    last_key, stored = None, -math.inf
    for i, (key, t, scale) in enumerate(zip(req.keys, req.t, req.scale)):
        if key != last_key:
            last_key, stored = key, -math.inf
        age, ttl = t - stored, base_ttl * scale
        if age < ttl + grace:
            hits[i], ages[i] = True, age
        if age >= ttl:
            stored = t
    return hits, ages


def mixture_p95(hit_ms: np.ndarray, miss_ms: np.ndarray, hit_rate: float) -> float | None:
    """The 95th percentile of recorded hit and miss times mixed at ``hit_rate``."""
    parts = [(hit_ms, hit_rate), (miss_ms, 1.0 - hit_rate)]
    parts = [(values, share) for values, share in parts if values.size and share > 0]
    if not parts:
        return None
    values = np.concatenate([v for v, _ in parts])
    weights = np.concatenate([np.full(v.size, share / v.size) for v, share in parts])
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][min(np.searchsorted(cumulative, 0.95), values.size - 1)])


def measure(req: Requests, hits: np.ndarray, ages: np.ndarray, rate_per_second: float,
            cost_per_call: float) -> dict[str, Any]:
    """A sweep point's figures from one replay."""
    n = hits.size
    hit_rate = float(hits.mean()) if n else None
    stale = float(np.mean(-np.expm1(-rate_per_second * ages[hits]))) if hits.any() else 0.0
    p95 = mixture_p95(req.ms[req.hit], req.ms[~req.hit], hit_rate or 0.0)
    return {"hit_rate": hit_rate, "stale_hit_fraction": stale, "origin_cost_usd": int(n - hits.sum()) * cost_per_call,
            "p95_ms": p95, "requests": n}


def sweep_metrics(groups: dict[str, Requests], seed: Policy, grid: Grid
                  ) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """The seed's point and every grid point, per vendor type, by replay."""
    cost = seed.costs.origin_per_1k / 1000
    candidates = [((1.0, None, True), seed_settings(seed))] + \
                 [((f, s, False), point_settings(seed, f, s)) for f, s in grid.points()]
    seed_points: dict[str, dict] = {}
    sweeps: dict[str, list[dict]] = {}
    for vendor, req in groups.items():
        rate = seed.vendors[vendor].volatilityFactor / seed.vendors[vendor].baseTtl
        for (factor, fraction, is_seed), settings in candidates:
            ttl, swr = settings[vendor]
            point = {"factor": factor, "swr_fraction": fraction, "is_seed": is_seed, "ttl_seconds": ttl,
                     "swr_seconds": swr, **measure(req, *replay(req, ttl, swr), rate, cost)}
            sweeps.setdefault(vendor, []).append(point)
            if is_seed:
                seed_points[vendor] = point
    return seed_points, sweeps


METHOD_METRICS = ("Each vendor type's recorded requests (per key, in time order) replayed through a TTL cache "
                  "for every candidate baseTtl and window (market-tier, season and jitter factors as the "
                  "service applies them); hit ages give the stale-hit fraction under Poisson data changes at "
                  "volatilityFactor / baseTtl of the policy in force; per vendor type the TTL with the highest "
                  "hit rate whose stale-hit fraction is within the bound.")


def tune_from_metrics(database_url: str | None, out: Path | None = None, *, time_range: str = "7d",
                      max_stale: float = DEFAULT_MAX_STALE, max_stale_vendor: dict[str, float] | None = None,
                      grid: Grid = Grid(), policy: Policy | None = None, progress: Progress | None = None,
                      now: float | None = None) -> dict[str, Any]:
    """Tune from the metric rows of the last ``time_range``; returns ``tuning.json`` (files in ``out``).

    :param database_url: default: found as everywhere (``AI_CACHE_DATABASE_URL``, else a local server).
    :param policy: the policy in force when the rows were recorded (default: the shipped one
        with ``AI_CACHE_POLICY_FILE`` merged).
    :raises InvalidInput: naming ``--time-range``, ``--max-stale`` … or ``--from-metrics`` when
        no row names a vendor type."""
    say = progress or (lambda message: None)
    bounds = staleness_bounds(max_stale, max_stale_vendor)
    seed = policy or _policy_in_force()
    now = time.time() if now is None else now
    rows = fetch_rows(database_url or _database_url(say), now, time_range)
    groups = group_requests(rows, seed)
    if not groups:
        from ..errors import InvalidInput
        raise InvalidInput("--from-metrics", f"no hit or miss rows with a vendor type in the last {time_range}")
    say(f"{len(rows):,} metric rows, {len(groups)} vendor types: replaying {len(grid.points()) + 1} points")
    seed_points, sweeps = sweep_metrics(groups, seed, grid)
    vendors = decide(seed_points, sweeps, bounds)
    result = {"source": "metrics", "time_range": time_range, "rows": len(rows), "max_stale": max_stale,
              "max_stale_vendor": dict(max_stale_vendor or {}), "grid": dataclasses.asdict(grid), "method": METHOD_METRICS,
              "overall": {"seed": weighted(vendors, "seed"), "predicted": weighted(vendors, "chosen")},
              "calibration": {v: {"recorded_hit_rate": float(g.hit.mean()),
                                  "replayed_hit_rate": seed_points[v]["hit_rate"]} for v, g in groups.items()},
              "vendors": vendors}
    if out is not None:
        result["files"] = write_outputs(result, tuned_policy(seed, vendors), Path(out))
    return result


def _policy_in_force() -> Policy:
    from ..config import load_settings

    return load_policy(load_settings().policy_file)


def _database_url(say: Progress) -> str:
    from ..services import ensure_services

    return ensure_services(progress=say).database_url
