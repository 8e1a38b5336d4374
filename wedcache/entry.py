"""What a tier stores and how invalidation selects it: :class:`CacheEntry`, :class:`Selector`.

An entry carries its own expiry (``expires_at``, decided by the cache's clock), so every
tier and every process agrees on freshness; a backend's own timer only collects garbage.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .errors import ContextError
from .keys import CACHE_TYPES, normalise_query, organization_uuid
from .policy import MARKET_TIERS, VENDOR_TYPES

Scope = Literal["organization", "wedding", "global"]
_new_entry = object.__new__


@dataclass(slots=True)
class CacheEntry:
    """One cached answer with the tags invalidation selects on."""

    key: str
    value: Any
    created_at: float
    expires_at: float
    org_id: str
    cache_type: str = "general"
    query: str = ""
    wedding_id: str | None = None
    market_tier: str = "tier_3"
    vendor_types: tuple[str, ...] = ()
    context: dict | None = None
    _size: int = field(default=0, repr=False, compare=False)

    def age(self, now: float) -> float:
        return max(0.0, now - self.created_at)

    def remaining(self, now: float) -> float:
        """Seconds of freshness left (negative once expired)."""
        return self.expires_at - now

    def renewed(self, created_at: float, expires_at: float) -> "CacheEntry":
        """A copy stamped with new times (same key, value and tags; the size is kept).

        Built slot by slot without ``__init__`` (one call less: every simulated fill makes one)."""
        copy = _new_entry(CacheEntry)
        copy.key = self.key
        copy.value = self.value
        copy.created_at = created_at
        copy.expires_at = expires_at
        copy.org_id = self.org_id
        copy.cache_type = self.cache_type
        copy.query = self.query
        copy.wedding_id = self.wedding_id
        copy.market_tier = self.market_tier
        copy.vendor_types = self.vendor_types
        copy.context = self.context
        copy._size = self._size
        return copy

    def encode(self) -> bytes:
        """Compact bytes for Redis: a JSON array in field order."""
        return orjson.dumps([self.key, self.value, self.created_at, self.expires_at, self.org_id,
                             self.cache_type, self.query, self.wedding_id, self.market_tier,
                             self.vendor_types, self.context])

    @classmethod
    def decode(cls, data: bytes) -> "CacheEntry":
        key, value, created, expires, org, ctype, query, wedding, tier, vendors, ctx = orjson.loads(data)
        return cls(key, value, created, expires, org, ctype, query, wedding, tier, tuple(vendors), ctx)

    @property
    def size(self) -> int:
        """Bytes of the encoded entry (what the memory tier budgets)."""
        if not self._size:
            self._size = len(self.encode())
        return self._size


def _names(values, allowed: tuple[str, ...], field_name: str) -> tuple[str, ...]:
    values = tuple(values or ())
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ContextError(field_name, f"unknown value {bad[0]!r}; expected one of {', '.join(allowed)}")
    return values


@dataclass(frozen=True, slots=True)
class Selector:
    """Which entries an invalidation removes.

    Within one field any value matches (vendor types ``venue`` or ``florist``); across
    fields all must match. ``patterns`` are shell-style globs over the normalised query
    (``"barn venue*"``). ``organization`` scope needs ``org_id``; ``wedding`` scope needs
    ``org_id`` and ``wedding_id``; ``global`` spans every organization.
    """

    scope: Scope = "organization"
    org_id: str | None = None
    wedding_id: str | None = None
    vendor_types: tuple[str, ...] = ()
    market_tiers: tuple[str, ...] = ()
    cache_types: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @classmethod
    def build(cls, *, scope: Scope = "organization", org_id=None, wedding_id=None, vendor_types=None,
              market_tiers=None, cache_types=None, patterns=None) -> "Selector":
        """Validate and normalise; raises :class:`ContextError` naming the field."""
        if scope not in ("organization", "wedding", "global"):
            raise ContextError("scope", "must be organization, wedding or global")
        if scope != "global" and org_id is None:
            raise ContextError("organization_id", f"is required for scope {scope!r}")
        if scope == "wedding" and wedding_id is None:
            raise ContextError("weddingId", "is required for scope 'wedding'")
        return cls(
            scope=scope,
            org_id=organization_uuid(org_id) if org_id is not None else None,
            wedding_id=organization_uuid(wedding_id, "weddingId") if wedding_id is not None else None,
            vendor_types=_names(vendor_types, VENDOR_TYPES, "vendorTypes"),
            market_tiers=_names(market_tiers, MARKET_TIERS, "marketTiers"),
            cache_types=_names(cache_types, CACHE_TYPES, "cacheTypes"),
            patterns=tuple(normalise_query(p) for p in (patterns or ()) if p.strip()),
        )

    def matches(self, entry: CacheEntry) -> bool:
        return ((self.org_id is None or entry.org_id == self.org_id)
                and (self.wedding_id is None or entry.wedding_id == self.wedding_id)
                and (not self.vendor_types or bool(set(self.vendor_types) & set(entry.vendor_types)))
                and (not self.market_tiers or entry.market_tier in self.market_tiers)
                and (not self.cache_types or entry.cache_type in self.cache_types)
                and (not self.patterns or any(fnmatch.fnmatchcase(entry.query, p) for p in self.patterns)))
