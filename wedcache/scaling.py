"""Seasonal scaling: :class:`SeasonalScalingAutomator` and the :class:`ScalingEvent` it records.

Wedding traffic triples in summer. The automator reads the calendar from the cache's clock
and, when the season changes, applies that season's plan from the policy
(``ai_cache_seasonal_configs``): the memory tier's budget becomes the base budget times
``cache_size_multiplier``, and the TTL strategy switches to the season's
``ttl_adjustment_factor`` (``VendorCacheOptimizer.active_season``). The service calls
:meth:`SeasonalScalingAutomator.tick` from a timer; the simulation calls it from a SimPy
process every simulated hour, so the same code scales both.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable

from .clock import Clock, today
from .policy import Policy
from .tiers.memory import MemoryTier
from .ttl import VendorCacheOptimizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScalingEvent:
    """One applied plan."""

    at: float
    """Clock time (epoch seconds) when the plan was applied."""
    season: str
    cache_size_multiplier: float
    ttl_adjustment_factor: float
    memory_bytes: int
    memory_entries: int
    evicted: int
    """Entries evicted because the budget shrank."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SeasonalScalingAutomator:
    """Applies the policy's seasonal plan to a memory tier and a TTL strategy.

    :param base_bytes: the memory budget at ``cache_size_multiplier`` 1.0 (winter).
    :param base_entries: the entry bound at multiplier 1.0.
    :param enabled: ``AI_CACHE_SEASONAL_SCALING_ENABLED``; when off, :meth:`tick` does nothing.
    """

    def __init__(self, policy: Policy, clock: Clock, memory: MemoryTier | None, ttl: VendorCacheOptimizer,
                 base_bytes: int, base_entries: int, enabled: bool = True):
        self.policy, self.clock, self.memory, self.ttl = policy, clock, memory, ttl
        self.base_bytes, self.base_entries, self.enabled = base_bytes, base_entries, enabled
        self.season: str | None = None
        self.events: list[ScalingEvent] = []
        self.listeners: list[Callable[[ScalingEvent], None]] = []
        """Called with every applied plan (the service counts them in Prometheus)."""

    def tick(self) -> ScalingEvent | None:
        """Apply the current season's plan if the season changed; returns the event, if any."""
        if not self.enabled:
            return None
        season = self.policy.season_of(today(self.clock))
        if season == self.season:
            return None
        return self.apply(season)

    def apply(self, season: str) -> ScalingEvent:
        """Apply ``season``'s plan now (also the service's "execute immediately")."""
        plan = self.policy.seasons[season]
        max_bytes = max(1, int(self.base_bytes * plan.cache_size_multiplier))
        max_entries = max(1, int(self.base_entries * plan.cache_size_multiplier))
        evicted = self.memory.resize(max_bytes, max_entries) if self.memory is not None else 0
        self.ttl.active_season = self.season = season
        event = ScalingEvent(self.clock.now(), season, plan.cache_size_multiplier, plan.ttl_adjustment_factor,
                             max_bytes, max_entries, evicted)
        self.events.append(event)
        for listener in self.listeners:
            listener(event)
        log.info("seasonal scaling: %s plan applied (memory %d bytes / %d entries, TTL x%.2f, %d evicted)",
                 season, max_bytes, max_entries, plan.ttl_adjustment_factor, evicted)
        return event

    def status(self) -> dict[str, Any]:
        """The active season and plan, for the service's ``status`` action and for reports."""
        plan = self.policy.seasons[self.season] if self.season else None
        return {"enabled": self.enabled, "season": self.season,
                "trafficMultiplier": plan.traffic_multiplier if plan else None,
                "cacheSizeMultiplier": plan.cache_size_multiplier if plan else None,
                "ttlAdjustmentFactor": plan.ttl_adjustment_factor if plan else None,
                "events": len(self.events)}
