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

from .context import WeddingContext
from .partition import LocationBasedCachePartitioner
from .policy import Policy


class VendorCacheOptimizer:
    """TTL per vendor type, market tier and season, from the policy."""

    def __init__(self, policy: Policy, default_ttl: int = 3600,
                 partitioner: LocationBasedCachePartitioner | None = None):
        self.policy = policy
        self.default_ttl = default_ttl
        self.partitioner = partitioner or LocationBasedCachePartitioner(policy)

    def base_ttl(self, vendor_types: tuple[str, ...]) -> int:
        """The smallest ``baseTtl`` among ``vendor_types`` (the most volatile wins)."""
        if not vendor_types:
            return self.default_ttl
        return min(self.policy.vendors[v].baseTtl for v in vendor_types)

    def ttl_seconds(self, context: WeddingContext, on_date: date, max_age: float | None = None) -> float:
        """The formula above, without jitter."""
        tier = self.partitioner.tier_of(context.location)
        season = self.policy.season_of(on_date)
        ttl = (self.base_ttl(context.vendor_types)
               * self.partitioner.ttl_multiplier(tier)
               * self.policy.seasons[season].ttl_adjustment_factor)
        return min(ttl, max_age) if max_age is not None else ttl

    def primary_vendor(self, vendor_types: tuple[str, ...]) -> str | None:
        """The vendor type whose TTL governs (the most volatile), or ``None``."""
        return min(vendor_types, key=lambda v: self.policy.vendors[v].baseTtl) if vendor_types else None


def jittered(ttl: float, key: str, jitter: float) -> float:
    """``ttl * (1 - jitter * u)`` with ``u`` in [0, 1) derived from ``key`` (same key, same TTL)."""
    if jitter <= 0:
        return ttl
    u = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64
    return ttl * (1.0 - jitter * u)
