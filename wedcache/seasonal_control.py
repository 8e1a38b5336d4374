"""Operating seasonal scaling in the service: :class:`SeasonalControl`.

The API's three actions on :class:`~wedcache.scaling.SeasonalScalingAutomator`:

- ``configure`` stores a season's plan as a row of ``ai_cache_seasonal_configs`` (the source
  document's table: traffic and cache-size multipliers, the TTL and cost factors the policy
  gives that season, the season's dates this year) and makes it the plan this process
  applies for that season. ``cacheSize`` is the cache-size multiplier (the table's
  ``cache_size_multiplier``); ``costBudget`` is kept in the row's cost column as given.
- ``execute`` applies the plan now. One execution at a time across every worker: a Redis
  lock (``SET NX PX``) or, with Redis down, a process lock; a second one gets
  :class:`ScalingInProgress` (``CACHE_006``).
- ``status`` reports the season, the load factor (the season's traffic multiplier: the
  load the plan is sized for against the winter baseline), the scaling factor in force, the
  last events and the next predicted peak (the next Saturday in the busiest season).

Several replicas: a ``configure`` or ``execute`` tells :attr:`SeasonalControl.listeners`
(the service publishes the change on its :class:`~wedcache.coherence.CoherenceBus`); every
other replica hands it to :meth:`SeasonalControl.apply_change`, which adopts the plan and,
for an execution, applies it, telling no listener, so a change travels once.
"""
from __future__ import annotations

import threading
import uuid
from datetime import date, timedelta
from typing import Any, Callable

import psycopg_pool
import redis

from .clock import Clock, today
from .errors import ContextError, WedcacheError
from .policy import Policy, SeasonPolicy
from .redis_client import ERRORS as REDIS_ERRORS
from .scaling import ScalingEvent, SeasonalScalingAutomator

LOCK_KEY = "ai:scaling:execute"
LOCK_MS = 60_000
SATURDAY = 5


class ScalingInProgress(WedcacheError):
    """Another ``execute`` is applying a plan."""


class SeasonalControl:
    def __init__(self, automator: SeasonalScalingAutomator, policy: Policy, clock: Clock,
                 pool: psycopg_pool.ConnectionPool | None = None, redis_client: redis.Redis | None = None):
        self.automator, self.policy, self.clock = automator, policy, clock
        self.pool, self.redis = pool, redis_client
        self._local = threading.Lock()
        self.listeners: list[Callable[..., Any]] = []
        """Called after each ``configure`` (``apply=False``) and ``execute`` (``apply=True``) with
        keywords ``season``, ``traffic_multiplier``, ``cache_size_multiplier``, ``apply``."""

    def configure(self, season: str, traffic_multiplier: float, cache_size: float, cost_budget: float) -> dict:
        """Store and adopt ``season``'s plan; returns the stored row (camelCase)."""
        _positive("seasonConfig.costBudget", cost_budget, 9.99, allow_zero=True)
        plan = self._adopt(season, traffic_multiplier, cache_size)
        start, end = _season_dates(plan.months, today(self.clock))
        row = {"season": season, "trafficMultiplier": traffic_multiplier, "cacheSizeMultiplier": cache_size,
               "ttlAdjustmentFactor": plan.ttl_adjustment_factor, "costFactor": cost_budget,
               "startDate": start.isoformat(), "endDate": end.isoformat()}
        if self.pool is not None:
            with self.pool.connection() as conn:
                row["id"] = str(conn.execute(
                    "INSERT INTO ai_cache_seasonal_configs (season, traffic_multiplier, cache_size_multiplier, "
                    "ttl_adjustment_factor, cost_factor, start_date, end_date) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "RETURNING id", (season, traffic_multiplier, cache_size, plan.ttl_adjustment_factor,
                                     cost_budget, start, end)).fetchone()[0])
        self._announce(season, apply=False)
        return row

    def execute(self, season: str | None = None) -> ScalingEvent:
        """Apply ``season``'s plan (default: the calendar's season) now, once at a time."""
        season = season or self.policy.season_of(today(self.clock))
        _known(self.policy, season)
        token = self._lock()
        try:
            event = self.automator.apply(season)
        finally:
            self._unlock(token)
        self._announce(season, apply=True)
        return event

    def apply_change(self, season: str, traffic_multiplier: float, cache_size_multiplier: float,
                     apply: bool) -> ScalingEvent | None:
        """Another replica's ``configure`` or ``execute``: adopt its plan for ``season`` and, when
        ``apply``, apply it now. No listener hears it (it is no change of this replica's) and no
        lock is taken (the replica that executed it held the lock)."""
        self._adopt(season, traffic_multiplier, cache_size_multiplier)
        return self.automator.apply(season) if apply else None

    def _adopt(self, season: str, traffic_multiplier: float, cache_size: float) -> SeasonPolicy:
        """Make ``season``'s plan the one with these multipliers (validated) in this process."""
        _known(self.policy, season)
        _positive("seasonConfig.trafficMultiplier", traffic_multiplier, 99.9)
        _positive("seasonConfig.cacheSize", cache_size, 99.9)
        plan = self.policy.seasons[season].model_copy(
            update={"traffic_multiplier": traffic_multiplier, "cache_size_multiplier": cache_size})
        self.policy.seasons[season] = plan
        return plan

    def _announce(self, season: str, apply: bool) -> None:
        plan = self.policy.seasons[season]
        for listener in self.listeners:
            listener(season=season, traffic_multiplier=plan.traffic_multiplier,
                     cache_size_multiplier=plan.cache_size_multiplier, apply=apply)

    def status(self) -> dict[str, Any]:
        current = self.automator.season or self.policy.season_of(today(self.clock))
        plan = self.policy.seasons[current]
        return {"currentSeason": current, "loadFactor": plan.traffic_multiplier,
                "scalingFactor": plan.cache_size_multiplier if self.automator.season else 1.0,
                "enabled": self.automator.enabled,
                "lastEvents": [event_json(e) for e in self.automator.events[-10:]],
                "nextPredictedPeak": self.next_peak(today(self.clock)).isoformat()}

    def next_peak(self, day: date) -> date:
        """The next Saturday (after ``day``) in the season with the highest traffic multiplier."""
        peak = max(self.policy.seasons.values(), key=lambda s: s.traffic_multiplier)
        candidate = day + timedelta(days=1)
        for _ in range(800):
            if candidate.month in peak.months and candidate.weekday() == SATURDAY:
                return candidate
            candidate += timedelta(days=1)
        raise AssertionError("a season without a Saturday")  # months are validated non-empty

    def _lock(self) -> str | None:
        if self.redis is not None:
            token = uuid.uuid4().hex
            try:
                if self.redis.set(LOCK_KEY, token, nx=True, px=LOCK_MS):
                    return token
                raise ScalingInProgress("a seasonal scaling execution is already running")
            except REDIS_ERRORS:
                pass  # Redis down: this process's lock
        if not self._local.acquire(blocking=False):
            raise ScalingInProgress("a seasonal scaling execution is already running")
        return None

    def _unlock(self, token: str | None) -> None:
        if token is None:
            self._local.release()
            return
        try:
            if self.redis.get(LOCK_KEY) == token.encode():
                self.redis.delete(LOCK_KEY)
        except REDIS_ERRORS:
            pass  # the lock expires by itself


def _known(policy: Policy, season: str) -> None:
    if season not in policy.seasons:
        raise ContextError("seasonConfig.season", f"must be one of {', '.join(policy.seasons)}")


def _positive(field: str, value: float, most: float, allow_zero: bool = False) -> None:
    if not (value >= 0 if allow_zero else value > 0) or value > most:
        raise ContextError(field, f"must be {'at least 0' if allow_zero else 'above 0'} and at most {most}")


def _season_dates(months: list[int], day: date) -> tuple[date, date]:
    """First and last day of the season's months around ``day``'s year (winter spans the new year)."""
    ordered = sorted(months, key=lambda m: (m - months[0]) % 12)
    first, last = ordered[0], ordered[-1]
    start = date(day.year, first, 1)
    end_year = day.year + (1 if last < first else 0)
    end = (date(end_year + (last == 12), (last % 12) + 1, 1)) - timedelta(days=1)
    return start, end


def event_json(event: ScalingEvent) -> dict[str, Any]:
    return {"at": event.at, "season": event.season, "cacheSizeMultiplier": event.cache_size_multiplier,
            "ttlAdjustmentFactor": event.ttl_adjustment_factor, "memoryBytes": event.memory_bytes,
            "memoryEntries": event.memory_entries, "evicted": event.evicted}
