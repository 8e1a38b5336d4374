"""Seasonal scaling as it stands: :func:`scaling_status`.

The service's own logic answers: a :class:`~wedcache.scaling.SeasonalScalingAutomator` with
the service's settings ticks once on the caller's clock (without a memory tier, so nothing
is resized) and so yields the plan a service applies now; :class:`~wedcache.seasonal_control.SeasonalControl`
gives the load and scaling factors and the next predicted peak. The database adds what was
done: the stored ``ai_cache_seasonal_configs`` rows and the latest ``SCALING_CHANGE`` and
``CONFIG_CHANGE`` (of ``SEASONAL_CONFIG``) audit rows. JSON shape::

    {"at", "currentSeason", "enabled", "loadFactor", "scalingFactor", "nextPredictedPeak",
     "plan": {"season", "trafficMultiplier", "cacheSizeMultiplier", "ttlAdjustmentFactor", "costFactor",
              "memoryBytes", "memoryEntries"},
     "seasons": [{"season", "months", "trafficMultiplier", "cacheSizeMultiplier", "ttlAdjustmentFactor",
                  "costFactor", "current"}],
     "storedConfigs": [{"id", "season", "trafficMultiplier", "cacheSizeMultiplier", "ttlAdjustmentFactor",
                        "costFactor", "startDate", "endDate", "isActive", "createdAt"}],   # newest first
     "events": [{"createdAt", "actionType", "resourceType", "organizationId", "details"}]}  # newest first
"""
from __future__ import annotations

from typing import Any

import psycopg_pool

from ..audit import AuditLog
from ..clock import Clock
from ..config import Settings
from ..policy import Policy
from ..scaling import SeasonalScalingAutomator
from ..seasonal_control import SeasonalControl
from ..ttl import VendorCacheOptimizer
from .db import check_limit, iso, rows

SCALING_ACTIONS = (("SCALING_CHANGE", None), ("CONFIG_CHANGE", "SEASONAL_CONFIG"))
"""Audit rows that record scaling: (action type, resource type or ``None`` for any)."""

_CONFIGS = """SELECT id::text, season::text, traffic_multiplier::float8, cache_size_multiplier::float8,
  ttl_adjustment_factor::float8, cost_factor::float8, start_date::text, end_date::text, is_active,
  date_part('epoch', created_at)
FROM ai_cache_seasonal_configs ORDER BY created_at DESC, id LIMIT %s"""
_CONFIG_FIELDS = ("id", "season", "trafficMultiplier", "cacheSizeMultiplier", "ttlAdjustmentFactor", "costFactor",
                  "startDate", "endDate", "isActive", "createdAt")


def scaling_status(pool: psycopg_pool.ConnectionPool, policy: Policy, settings: Settings, clock: Clock, *,
                   limit: int = 10) -> dict[str, Any]:
    """The current season, its plan, every season, stored configs and scaling audit rows."""
    limit = check_limit(limit)
    automator = SeasonalScalingAutomator(policy, clock, None, VendorCacheOptimizer(policy, settings.default_ttl),
                                         settings.memory_size_bytes, settings.max_entries,
                                         settings.seasonal_scaling_enabled)
    event = automator.tick()
    status = SeasonalControl(automator, policy, clock).status()
    season = status["currentSeason"]
    return {"at": iso(clock.now()), "currentSeason": season, "enabled": status["enabled"],
            "loadFactor": status["loadFactor"], "scalingFactor": status["scalingFactor"],
            "nextPredictedPeak": status["nextPredictedPeak"],
            "plan": {"season": season, **_season_figures(policy, season),
                     "memoryBytes": event.memory_bytes if event else settings.memory_size_bytes,
                     "memoryEntries": event.memory_entries if event else settings.max_entries},
            "seasons": [{"season": name, "months": list(conf.months), **_season_figures(policy, name),
                         "current": name == season} for name, conf in policy.seasons.items()],
            "storedConfigs": stored_configs(pool, limit),
            "events": scaling_events(pool, clock, limit)}


def stored_configs(pool: psycopg_pool.ConnectionPool, limit: int = 10) -> list[dict[str, Any]]:
    """The newest ``ai_cache_seasonal_configs`` rows."""
    return [dict(zip(_CONFIG_FIELDS, (*row[:9], iso(row[9])))) for row in rows(pool, _CONFIGS, (limit,))]


def scaling_events(pool: psycopg_pool.ConnectionPool, clock: Clock, limit: int = 10) -> list[dict[str, Any]]:
    """The newest audit rows of :data:`SCALING_ACTIONS`, read through :meth:`AuditLog.recent`."""
    log, found = AuditLog(pool, clock), []
    for action, resource in SCALING_ACTIONS:
        found += [row for row in log.recent(action_type=action, limit=limit)
                  if resource is None or row["resourceType"] == resource]
    found.sort(key=lambda row: row["createdAt"], reverse=True)
    return [{"createdAt": iso(row["createdAt"]), "actionType": row["actionType"], "resourceType": row["resourceType"],
             "organizationId": row["organizationId"], "details": row["details"]} for row in found[:limit]]


def _season_figures(policy: Policy, season: str) -> dict[str, float]:
    conf = policy.seasons[season]
    return {"trafficMultiplier": conf.traffic_multiplier, "cacheSizeMultiplier": conf.cache_size_multiplier,
            "ttlAdjustmentFactor": conf.ttl_adjustment_factor, "costFactor": conf.cost_factor}
