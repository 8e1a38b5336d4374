"""Vendor TTL strategy: :class:`VendorCacheOptimizer`.

The un-jittered TTL of an answer is::

    ttl = min(baseTtl of the context's vendor types, or AI_CACHE_DEFAULT_TTL when none)
          * ttlMultiplier of the location's market tier
          * ttl_adjustment_factor of the season of ``on_date``
    ttl = min(ttl, maxAge)            # when the request gives maxAge

The cache then shaves a deterministic per-key share off it (:func:`jittered`), so entries
written together do not expire together.
"""
from __future__ import annotations

import hashlib
from datetime import date

from .clock import Clock, today
from .context import WeddingContext
from .partition import LocationBasedCachePartitioner
from .policy import Policy


class VendorCacheOptimizer:
    """TTL per vendor type, market tier and season, from the policy."""

    def __init__(self, policy: Policy, default_ttl: int = 3600,
                 partitioner: LocationBasedCachePartitioner | None = None, *,
                 fixed_ttl: float | None = None, grace_seconds: float | None = None):
        self.policy = policy
        self.default_ttl = default_ttl
        self.partitioner = partitioner or LocationBasedCachePartitioner(policy)
        self.fixed_ttl = fixed_ttl
        """When set, every entry gets this TTL (a scenario's ``ttl_seconds``), capped by maxAge."""
        self.grace_override = grace_seconds
        """When set, the stale-while-revalidate grace for every vendor type."""
        self.active_season: str | None = None
        """Set by :class:`~wedcache.scaling.SeasonalScalingAutomator`: the season whose TTL
        adjustment applies, instead of the season of each entry's date."""
        self._grace = {name: v.stale_while_revalidate_seconds for name, v in policy.vendors.items()}

    def base_ttl(self, vendor_types: tuple[str, ...]) -> int:
        """The smallest ``baseTtl`` among ``vendor_types`` (the most volatile wins)."""
        if not vendor_types:
            return self.default_ttl
        return min(self.policy.vendors[v].baseTtl for v in vendor_types)

    def ttl_seconds(self, context: WeddingContext, on_date: date | None, max_age: float | None = None) -> float:
        """The formula above, without jitter."""
        if self.fixed_ttl is not None:
            return min(self.fixed_ttl, max_age) if max_age is not None else self.fixed_ttl
        tier = self.partitioner.tier_of(context.location)
        season = self.active_season or self.policy.season_of(on_date)
        ttl = (self.base_ttl(context.vendor_types)
               * self.partitioner.ttl_multiplier(tier)
               * self.policy.seasons[season].ttl_adjustment_factor)
        return min(ttl, max_age) if max_age is not None else ttl

    def ttl_now(self, context: WeddingContext, clock: Clock, max_age: float | None = None) -> float:
        """:meth:`ttl_seconds` on ``clock``'s date (a fixed TTL reads no calendar: a hot path)."""
        if self.fixed_ttl is not None:
            return self.fixed_ttl if max_age is None else min(self.fixed_ttl, max_age)
        return self.ttl_seconds(context, today(clock), max_age)

    def grace_seconds(self, vendor_types: tuple[str, ...]) -> float:
        """How long past expiry an entry may still be served (stale-while-revalidate).

        The policy's ``stale_while_revalidate_seconds`` of the governing vendor type (the one
        whose TTL is shortest), 0 without vendor types, or the override when one is set."""
        if self.grace_override is not None:
            return self.grace_override
        if not vendor_types:
            return 0.0
        if len(vendor_types) == 1:
            return self._grace[vendor_types[0]]
        return self._grace[self.primary_vendor(vendor_types)]

    def primary_vendor(self, vendor_types: tuple[str, ...]) -> str | None:
        """The vendor type whose TTL governs (the most volatile), or ``None``."""
        return min(vendor_types, key=lambda v: self.policy.vendors[v].baseTtl) if vendor_types else None


def jittered(ttl: float, key: str, jitter: float) -> float:
    """``ttl * (1 - jitter * u)`` with ``u`` in [0, 1) derived from ``key`` (same key, same TTL)."""
    if jitter <= 0:
        return ttl
    u = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64
    return ttl * (1.0 - jitter * u)
