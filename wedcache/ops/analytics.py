"""Reports over per-request metric rows: :func:`analytics` and :func:`slow_queries`.

The service writes one ``ai_cache_performance_metrics`` row per answered request
(:class:`~wedcache.metrics.MetricsBuffer`): ``metric_type`` ``'hit'`` or ``'miss'``,
``metric_value`` its response time in milliseconds, and the ``market_tier``,
``vendor_type`` (the request's first vendor type), ``season`` and ``tier`` (that answered)
columns. Both reports read the rows of one time window (:func:`~wedcache.ops.db.metric_window`)
and let PostgreSQL aggregate them: hit rate is hits / queries; response time is the mean
and the 95th percentile (``percentile_cont``, interpolated) in milliseconds.

:func:`analytics` — ``metric`` ``hitRate`` or ``responseTime`` per ``group_by`` group, with
the policy's target where it has one (market tiers and seasons, and the SLA for the total)::

    {"metric", "groupBy", "timeRange", "organizationId", "from", "to",
     "total":  {"queries", "hits", "hitRate", "target"} | {"queries", "meanMs", "p95Ms", "target"},
     "groups": [{"group", ...the same figures...}]}          # groups in label order

:func:`slow_queries` — the slowest cache keys (the source document's "slowest cache
queries": mean, p95 and max per key, with its normalised query when the entry is still
stored), p95 and requests over ``AI_CACHE_ALERT_THRESHOLD_MS`` per group, and the slowest
single requests::

    {"timeRange", "organizationId", "from", "to", "groupBy", "thresholdMs",
     "keys":    [{"cacheKey", "query", "queries", "meanMs", "p95Ms", "maxMs"}],
     "groups":  [{"group", "queries", "meanMs", "p95Ms", "maxMs", "overThreshold"}],
     "slowest": [{"recordedAt", "cacheKey", "organizationId", "tier", "marketTier", "vendorType",
                  "season", "responseMs"}]}
"""
from __future__ import annotations

from typing import Any

import psycopg_pool
from psycopg import sql

from ..policy import Policy
from .db import Window, check_choice, check_limit, group_column, iso, metric_window, ratio, rounded, rows

METRICS = ("hitRate", "responseTime")
_T = "m"
"""The alias of ``ai_cache_performance_metrics`` in this module's statements."""

_GROUPED = """SELECT GROUPING({label}) = 0, {label}, count(*), count(*) FILTER (WHERE metric_type = 'hit'),
  avg(metric_value)::float8, percentile_cont(0.95) WITHIN GROUP (ORDER BY metric_value::float8),
  max(metric_value)::float8, count(*) FILTER (WHERE metric_value > %s)
FROM ai_cache_performance_metrics m WHERE {where}
GROUP BY GROUPING SETS ((), ({label})) ORDER BY 1, 2"""

_KEYS = """SELECT m.cache_key, e.query_text, count(*), avg(m.metric_value)::float8,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY m.metric_value::float8), max(m.metric_value)::float8
FROM ai_cache_performance_metrics m LEFT JOIN ai_cache_entries e ON e.cache_key = m.cache_key
WHERE {where}
GROUP BY m.cache_key, e.query_text ORDER BY 4 DESC, 1 LIMIT %s"""

_SLOWEST = """SELECT date_part('epoch', recorded_at), cache_key, organization_id::text, coalesce(tier, 'origin'),
  market_tier::text, vendor_type::text, season::text, metric_value::float8
FROM ai_cache_performance_metrics m WHERE {where} ORDER BY metric_value DESC, recorded_at, id LIMIT %s"""


def analytics(pool: psycopg_pool.ConnectionPool, policy: Policy, *, now: float, metric: str, group_by: str,
              time_range: str = "24h", organization: str | None = None) -> dict[str, Any]:
    """``metric`` per ``group_by`` group over the window ending at ``now`` (see the module docstring).

    :raises InvalidInput: naming ``--metric``, ``--group-by``, ``--time-range`` or ``--organization``.
    """
    check_choice("--metric", metric, METRICS)
    window = metric_window(now, time_range, organization, _T)
    total, groups = _grouped(pool, window, group_by, threshold_ms=0)
    shape = _hit_rate if metric == "hitRate" else _response_time
    return {"metric": metric, "groupBy": group_by, **window.describe(time_range),
            "total": {**shape(total), "target": _target(policy, metric, None, None)},
            "groups": [{"group": name, **shape(row), "target": _target(policy, metric, group_by, name)}
                       for name, row in groups]}


def slow_queries(pool: psycopg_pool.ConnectionPool, *, now: float, time_range: str = "24h",
                 organization: str | None = None, group_by: str = "marketTier", threshold_ms: float = 100.0,
                 limit: int = 20) -> dict[str, Any]:
    """The slowest keys, p95 per group and the slowest requests (see the module docstring)."""
    window, limit = metric_window(now, time_range, organization, _T), check_limit(limit)
    _, groups = _grouped(pool, window, group_by, threshold_ms)
    keys = rows(pool, sql.SQL(_KEYS).format(where=window.where), [*window.params, limit])
    slowest = rows(pool, sql.SQL(_SLOWEST).format(where=window.where), [*window.params, limit])
    return {**window.describe(time_range), "groupBy": group_by, "thresholdMs": threshold_ms,
            "keys": [{"cacheKey": k, "query": q, "queries": n, "meanMs": rounded(mean), "p95Ms": rounded(p95),
                      "maxMs": rounded(most)} for k, q, n, mean, p95, most in keys],
            "groups": sorted(({"group": name, **_response_time(row), "maxMs": rounded(row[4]),
                               "overThreshold": row[5]} for name, row in groups),
                             key=lambda g: (-(g["p95Ms"] or 0), g["group"])),
            "slowest": [_request(row) for row in slowest]}


def _grouped(pool: psycopg_pool.ConnectionPool, window: Window, group_by: str,
             threshold_ms: float) -> tuple[tuple, list[tuple[str, tuple]]]:
    """The total row and ``(group, row)`` pairs; a row is (queries, hits, mean, p95, max, over threshold)."""
    label, _ = group_column(group_by, _T)
    found = rows(pool, sql.SQL(_GROUPED).format(label=label, where=window.where), [threshold_ms, *window.params])
    total = next((row[2:] for row in found if not row[0]), (0, 0, None, None, None, 0))
    return total, [(row[1], row[2:]) for row in found if row[0]]


def _hit_rate(row: tuple) -> dict[str, Any]:
    return {"queries": row[0], "hits": row[1], "hitRate": ratio(row[1], row[0])}


def _response_time(row: tuple) -> dict[str, Any]:
    return {"queries": row[0], "meanMs": rounded(row[2]), "p95Ms": rounded(row[3])}


def _target(policy: Policy, metric: str, group_by: str | None, group: str | None) -> float | None:
    """The policy's target hit rate or mean response time (ms) for a group, or the SLA's for the total."""
    sla = policy.sla
    if group_by is None:
        return sla.hit_rate if metric == "hitRate" else sla.dashboard.averageResponseTime
    targets = {"marketTier": sla.market_tier, "season": sla.seasonal}.get(group_by, {})
    target = targets.get(group)
    if target is None:
        return None
    return target.hitRate if metric == "hitRate" else target.responseTime


def _request(row: tuple) -> dict[str, Any]:
    at, key, org, tier, market_tier, vendor_type, season, ms = row
    return {"recordedAt": iso(at), "cacheKey": key, "organizationId": org, "tier": tier, "marketTier": market_tier,
            "vendorType": vendor_type, "season": season, "responseMs": rounded(ms)}
