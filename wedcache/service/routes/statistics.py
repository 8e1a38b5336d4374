"""``GET /api/ai-cache/statistics``: the source document's performance analytics.

The figures are :func:`~wedcache.statistics.cache_statistics` over the per-request rows in
``ai_cache_performance_metrics`` (one per answered query, written in batches by each worker's
:class:`~wedcache.metrics.MetricsBuffer`), for ``timeRange`` up to now on the service's clock,
plus live figures:

- ``cacheSize``: entries of the selection still fresh in PostgreSQL, the tier every answer
  is written through to (counted in SQL, filtered like the rows, so it never includes other
  organizations' entries and never runs behind the tier's breaker and 200 ms timeout);
- ``seasonalMetrics``: the season, scaling factor and load factor of
  :meth:`~wedcache.seasonal_control.SeasonalControl.status`; ``demandPrediction`` is
  ``peak`` (the season with the highest traffic multiplier), ``baseline`` (the lowest) or
  ``elevated`` (in between).

Tenancy: a member key sees its own organization, and naming another one in
``organizationId`` is ``CACHE_007`` (audited). An admin key may name any organization, and
without ``organizationId`` sees every organization together.

Freshness: this worker's buffered rows are flushed before reading, so a client sees its own
requests at once when it talks to one worker; other workers' rows arrive within their
buffer's flush interval (one second).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ...apikeys import ApiKey
from ...policy import MarketTier, VendorType
from ...seasonal_control import SeasonalControl
from ...statistics import TIME_RANGES, cache_statistics
from ..auth import caller, organization_scope
from ..errors import ApiError
from ..models import COMMON_ERRORS, errors, json_response

router = APIRouter(tags=["analytics"])

TimeRange = Literal[tuple(TIME_RANGES)]  # type: ignore[valid-type]  # "1h", "24h", "7d", "30d"
DATABASE_TIMEOUT = 2.0
"""Seconds the endpoint waits for a database connection before answering ``CACHE_004``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PerformanceMetrics(_Strict):
    hitRate: float = Field(description="fraction (0-1) of the queries answered from a cache tier")
    averageResponseTime: float = Field(description="milliseconds")
    p95ResponseTime: float = Field(description="milliseconds")
    totalQueries: int


class SeasonalMetrics(_Strict):
    currentSeason: str
    scalingFactor: float = Field(description="the cache-size multiplier in force (1.0 before any plan is applied)")
    demandPrediction: str = Field(description="peak, elevated or baseline: the season's traffic multiplier "
                                              "against the other seasons'")


class MarketTierPerformance(_Strict):
    tier1: PerformanceMetrics
    tier2: PerformanceMetrics
    tier3: PerformanceMetrics


class StatisticsResponse(_Strict):
    """Rates are fractions (0-1) of ``totalQueries``; the three tier rates add up to ``hitRate``."""

    hitRate: float
    averageResponseTime: float = Field(description="milliseconds")
    totalQueries: int
    cacheSize: int = Field(description="fresh entries of the selection in the cache")
    memoryCacheHitRate: float
    redisCacheHitRate: float
    postgresHitRate: float
    seasonalMetrics: SeasonalMetrics
    marketTierPerformance: MarketTierPerformance


@router.get("/api/ai-cache/statistics", summary="Cache performance analytics", response_model=None,
            responses={200: {"model": StatisticsResponse}, **errors(*COMMON_ERRORS, "CACHE_007")})
def statistics(request: Request, key: ApiKey = Depends(caller),
               time_range: Annotated[TimeRange, Query(alias="timeRange")] = "24h",
               organization_id: Annotated[str | None, Query(alias="organizationId", min_length=1,
                                                            max_length=200)] = None,
               market_tier: Annotated[MarketTier | None, Query(alias="marketTier")] = None,
               vendor_type: Annotated[VendorType | None, Query(alias="vendorType")] = None) -> Response:
    state = request.app.state.wedcache
    org = None if key.is_admin and organization_id is None else organization_scope(request, key, organization_id)
    state.metrics_buffer.flush()
    now = state.clock.now()
    try:
        with state.pool.connection(DATABASE_TIMEOUT) as conn:
            body = cache_statistics(conn, now=now, time_range=time_range, organization_id=org,
                                    market_tier=market_tier, vendor_type=vendor_type,
                                    cache_size=_cache_size(conn, now, org, market_tier, vendor_type),
                                    seasonal=seasonal_metrics(state.scaling))
    except psycopg.Error as exc:
        raise ApiError("CACHE_004", f"statistics are unavailable: the database does not answer ({exc})") from None
    return json_response(body, request.state.rate_headers)


def _cache_size(conn: psycopg.Connection, now: float, org: str | None, market_tier: str | None,
                vendor_type: str | None) -> int:
    """Entries of the selection in ``ai_cache_entries`` that have not expired at ``now``."""
    clauses, params = [sql.SQL("expires_at > to_timestamp(%s)")], [now]
    for column, value in (("organization_id", org), ("market_tier", market_tier), ("vendor_type", vendor_type)):
        if value is not None:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    query = sql.SQL("SELECT count(*) FROM ai_cache_entries WHERE {}").format(sql.SQL(" AND ").join(clauses))
    return conn.execute(query, params).fetchone()[0]


def seasonal_metrics(control: SeasonalControl) -> dict[str, Any]:
    """``seasonalMetrics`` from the seasonal control's status."""
    status = control.status()
    multipliers = [season.traffic_multiplier for season in control.policy.seasons.values()]
    return {"currentSeason": status["currentSeason"], "scalingFactor": status["scalingFactor"],
            "demandPrediction": demand_level(status["loadFactor"], multipliers)}


def demand_level(load_factor: float, multipliers: list[float]) -> str:
    """``peak``, ``baseline`` or ``elevated``: ``load_factor`` against every season's multiplier."""
    if load_factor >= max(multipliers):
        return "peak"
    if load_factor <= min(multipliers):
        return "baseline"
    return "elevated"
