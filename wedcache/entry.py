"""What a tier stores and how invalidation selects it: :class:`CacheEntry`, :class:`Selector`.

An entry carries its own expiry (``expires_at``, decided by the cache's clock), so every
tier and every process agrees on freshness; a backend's own timer only collects garbage.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, fields
from dataclasses import replace as dataclass_replace
from operator import attrgetter
from typing import Any, Literal

import orjson

from .errors import ContextError
from .keys import CACHE_TYPES, normalise_query, organization_uuid
from .policy import MARKET_TIERS, VENDOR_TYPES

Scope = Literal["organization", "wedding", "global"]
_new_entry = object.__new__


@dataclass(frozen=True, slots=True)
class EntryBody:
    """What an entry says and the tags invalidation selects on: everything but its key,
    times and size. Immutable, so every renewal of one answer shares it."""

    value: Any
    org_id: str
    cache_type: str = "general"
    query: str = ""
    wedding_id: str | None = None
    market_tier: str = "tier_3"
    vendor_types: tuple[str, ...] = ()
    context: dict | None = None


BODY_FIELDS = tuple(f.name for f in fields(EntryBody))


class CacheEntry:
    """One cached answer: a key and its times stamped on an :class:`EntryBody`.

    Reads as a flat record (``entry.value``, ``entry.org_id``… are the body's fields;
    setting one gives the entry a changed copy of its body). The split keeps a renewal
    cheap: :meth:`renewed` copies four references, not twelve, and an evicted entry frees
    one small object instead of touching every field of the answer (the simulation renews
    and evicts an entry per miss; in a CPU cache the difference is several cold lines).
    """

    __slots__ = ("key", "created_at", "expires_at", "body", "_size")

    def __init__(self, key: str, value: Any, created_at: float, expires_at: float, org_id: str,
                 cache_type: str = "general", query: str = "", wedding_id: str | None = None,
                 market_tier: str = "tier_3", vendor_types: tuple[str, ...] = (), context: dict | None = None,
                 _size: int = 0):
        self.key, self.created_at, self.expires_at, self._size = key, created_at, expires_at, _size
        self.body = EntryBody(value, org_id, cache_type, query, wedding_id, market_tier, vendor_types, context)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not CacheEntry:
            return NotImplemented
        return (self.key, self.created_at, self.expires_at, self.body) == (
            other.key, other.created_at, other.expires_at, other.body)

    __hash__ = None  # type: ignore[assignment]  (mutable, like the dataclass it replaced)

    def __repr__(self) -> str:
        return (f"CacheEntry(key={self.key!r}, created_at={self.created_at!r}, expires_at={self.expires_at!r}, "
                f"{', '.join(f'{n}={getattr(self.body, n)!r}' for n in BODY_FIELDS)})")

    def replace(self, **changes: Any) -> "CacheEntry":
        """A copy with ``changes`` (to any field, the body's included)."""
        copy = self.renewed(changes.pop("created_at", self.created_at), changes.pop("expires_at", self.expires_at))
        copy.key = changes.pop("key", self.key)
        copy._size = changes.pop("_size", self._size)
        if changes:
            copy.body = dataclass_replace(self.body, **changes)
        return copy

    def age(self, now: float) -> float:
        return max(0.0, now - self.created_at)

    def remaining(self, now: float) -> float:
        """Seconds of freshness left (negative once expired)."""
        return self.expires_at - now

    def renewed(self, created_at: float, expires_at: float) -> "CacheEntry":
        """A copy stamped with new times (same key and body; the size is kept).

        Built slot by slot without ``__init__`` (one call less: every simulated fill makes one)."""
        copy = _new_entry(CacheEntry)
        copy.key = self.key
        copy.created_at = created_at
        copy.expires_at = expires_at
        copy.body = self.body
        copy._size = self._size
        return copy

    def encode(self) -> bytes:
        """Compact bytes for Redis: a JSON array in field order."""
        b = self.body
        return orjson.dumps([self.key, b.value, self.created_at, self.expires_at, b.org_id, b.cache_type, b.query,
                             b.wedding_id, b.market_tier, b.vendor_types, b.context])

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


def _body_property(name: str) -> property:
    def change(entry: CacheEntry, value: Any) -> None:
        entry.body = dataclass_replace(entry.body, **{name: value})
    return property(attrgetter(f"body.{name}"), change, doc=f"The body's ``{name}``.")


for _name in BODY_FIELDS:
    setattr(CacheEntry, _name, _body_property(_name))


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
