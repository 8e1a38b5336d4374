"""Location to market tier: :class:`LocationBasedCachePartitioner`.

The source document's three-tier market system: tier 1 (NYC, LA, SF), tier 2 (Atlanta,
Dallas, Chicago, Boston, Seattle), tier 3 (every other, regional market). Matching is
case-insensitive, ignores punctuation and spacing, accepts the policy's aliases
("New York, NY", "Manhattan", "Chicago, IL" …) and a trailing US state ("Boston, MA").
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .policy import Policy

_STATE_SUFFIX = re.compile(r",?\s+(?:[a-z]{2}|usa|us)$")
_NON_WORD = re.compile(r"[^\w]+")


def _canon(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    return _NON_WORD.sub(" ", text).strip()


class LocationBasedCachePartitioner:
    """Maps a free-text location to ``tier_1``, ``tier_2`` or ``tier_3`` and tier settings."""

    default_tier = "tier_3"

    def __init__(self, policy: Policy):
        self.policy = policy
        self._lookup: dict[str, str] = {}
        for tier, conf in policy.market_tiers.items():
            for name in (*conf.markets, *conf.aliases):
                self._lookup[_canon(name)] = tier
        self.tier_of = lru_cache(maxsize=4096)(self.tier_of)  # every entry asks; locations repeat

    def tier_of(self, location: str | None) -> str:
        """The market tier of ``location``; unknown or missing locations are ``tier_3``."""
        if not location:
            return self.default_tier
        lowered = unicodedata.normalize("NFKC", location).casefold().strip()
        for candidate in (lowered, _STATE_SUFFIX.sub("", lowered), lowered.split(",")[0]):
            tier = self._lookup.get(_canon(candidate))
            if tier:
                return tier
        return self.default_tier

    def ttl_multiplier(self, tier: str) -> float:
        return self.policy.market_tiers[tier].ttlMultiplier

    def cache_size_bytes(self, tier: str) -> int:
        """The memory budget the policy gives ``tier`` (``cacheSize``)."""
        return self.policy.market_tiers[tier].cache_size_bytes
