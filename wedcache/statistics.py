"""``GET /api/ai-cache/statistics`` over recorded metric rows: :func:`cache_statistics`.

The figures come from the per-request rows :class:`~wedcache.metrics.MetricsBuffer` writes
(``metric_type`` ``'hit'``/``'miss'``, ``metric_value`` = response time in ms), aggregated
by PostgreSQL in one query: the whole selection and each market tier (``GROUPING SETS``).
Rates are fractions (0-1) of all queries in the selection, so ``memoryCacheHitRate +
redisCacheHitRate + postgresHitRate == hitRate``; times are milliseconds.
"""
from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql

from .errors import ContextError
from .keys import organization_uuid
from .policy import MARKET_TIERS, VENDOR_TYPES

TIME_RANGES = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
"""``timeRange`` values and their length in seconds."""
DEFAULT_SEASONAL = {"currentSeason": "unknown", "scalingFactor": 1.0, "demandPrediction": "unknown"}
"""``seasonalMetrics`` when the caller has no seasonal scaling information."""

_QUERY = """SELECT GROUPING(market_tier) = 0, market_tier::text, count(*),
  count(*) FILTER (WHERE metric_type = 'hit'),
  count(*) FILTER (WHERE tier = 'memory'),
  count(*) FILTER (WHERE tier = 'redis'),
  count(*) FILTER (WHERE tier = 'postgres'),
  avg(metric_value)::float8,
  percentile_cont(0.95) WITHIN GROUP (ORDER BY metric_value::float8)
FROM ai_cache_performance_metrics
WHERE {}
GROUP BY GROUPING SETS ((), (market_tier))"""


def cache_statistics(conn_or_pool: psycopg.Connection | psycopg_pool.ConnectionPool, *, now: float,
                     time_range: str = "24h", organization_id: str | None = None, market_tier: str | None = None,
                     vendor_type: str | None = None, cache_size: int = 0,
                     seasonal: dict | None = None) -> dict[str, Any]:
    """The source document's statistics response for requests recorded in ``(now - time_range, now]``.

    :param now: epoch seconds, the end of the window.
    :param organization_id: a UUID or an organization name (mapped as everywhere in wedcache).
    :param vendor_type: matches a request's primary vendor type.
    :param cache_size: reported as ``cacheSize`` (entries the caller's cache holds).
    :param seasonal: ``seasonalMetrics`` (``currentSeason``, ``scalingFactor``,
        ``demandPrediction``), default :data:`DEFAULT_SEASONAL`.
    :raises ContextError: naming ``timeRange``, ``organizationId``, ``marketTier`` or ``vendorType``.
    """
    where, params = _selection(now, time_range, organization_id, market_tier, vendor_type)
    rows = _fetch(conn_or_pool, sql.SQL(_QUERY).format(where), params)
    overall = next(row for row in rows if not row[0])
    per_tier = {row[1]: row for row in rows if row[0]}
    queries = overall[2]
    return {
        "hitRate": ratio(overall[3], queries),
        "averageResponseTime": _ms(overall[7]),
        "totalQueries": queries,
        "cacheSize": cache_size,
        "memoryCacheHitRate": ratio(overall[4], queries),
        "redisCacheHitRate": ratio(overall[5], queries),
        "postgresHitRate": ratio(overall[6], queries),
        "seasonalMetrics": dict(seasonal or DEFAULT_SEASONAL),
        "marketTierPerformance": {f"tier{tier[-1]}": _performance(per_tier.get(tier)) for tier in MARKET_TIERS},
    }


def _selection(now: float, time_range: str, organization_id: str | None, market_tier: str | None,
               vendor_type: str | None) -> tuple[sql.Composable, list]:
    """The ``WHERE`` condition and its parameters; validates every filter."""
    if time_range not in TIME_RANGES:
        raise ContextError("timeRange", f"must be one of {', '.join(TIME_RANGES)}")
    clauses = ["metric_type IN ('hit', 'miss')", "recorded_at > to_timestamp(%s)", "recorded_at <= to_timestamp(%s)"]
    params: list = [now - TIME_RANGES[time_range], now]
    if organization_id is not None:
        clauses.append("organization_id = %s")
        params.append(organization_uuid(organization_id, "organizationId"))
    for column, field, value, allowed in (("market_tier", "marketTier", market_tier, MARKET_TIERS),
                                          ("vendor_type", "vendorType", vendor_type, VENDOR_TYPES)):
        if value is None:
            continue
        if value not in allowed:
            raise ContextError(field, f"must be one of {', '.join(allowed)}")
        clauses.append(f"{column} = %s")
        params.append(value)
    return sql.SQL(" AND ".join(clauses)), params


def _fetch(conn_or_pool: psycopg.Connection | psycopg_pool.ConnectionPool, query: sql.Composable,
           params: list) -> list[tuple]:
    if isinstance(conn_or_pool, psycopg_pool.ConnectionPool):
        with conn_or_pool.connection() as conn:
            return conn.execute(query, params).fetchall()
    return conn_or_pool.execute(query, params).fetchall()


def _performance(row: tuple | None) -> dict[str, Any]:
    """A PerformanceMetrics object from a market tier's row (zeros when it had no queries)."""
    if row is None:
        return {"hitRate": 0.0, "averageResponseTime": 0.0, "p95ResponseTime": 0.0, "totalQueries": 0}
    return {"hitRate": ratio(row[3], row[2]), "averageResponseTime": _ms(row[7]),
            "p95ResponseTime": _ms(row[8]), "totalQueries": row[2]}


def ratio(part: int, whole: int) -> float:
    """``part / whole`` to 4 places (0 for an empty whole): every rate the statistics report."""
    return round(part / whole, 4) if whole else 0.0


def _ms(value: float | None) -> float:
    return round(value, 3) if value is not None else 0.0
