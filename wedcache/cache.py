"""The cache core: :class:`TieredCache` and the :class:`CacheResult` it returns.

Read path (``get_or_compute``): memory -> Redis -> PostgreSQL. The first tier holding a
fresh entry answers; the entry is then promoted to the faster tiers with its *remaining*
TTL (its ``expires_at`` travels with it). On a miss the answer is computed once — one
caller per key in this process (:class:`~wedcache.singleflight.SingleFlight`) and one
process per key across the fleet (a Redis lock; other processes wait for the stored value)
— and written through to every tier.

Fail-open: every backend tier sits behind a :class:`~wedcache.breaker.CircuitBreaker`. A
tier that raises :class:`~wedcache.errors.TierUnavailable` is skipped (and its breaker
counts the failure); an open breaker skips the tier without trying it. Only when no tier
holds the answer *and* the origin fails does a request fail
(:class:`~wedcache.errors.OriginUnavailable`).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .breaker import Backoff, CircuitBreaker
from .clock import Clock, SystemClock, today
from .context import WeddingContext, check_query, parse_context
from .entry import CacheEntry, Selector
from .errors import OriginUnavailable, TierUnavailable, WedcacheError
from .events import CacheEvents
from .keys import cache_key, check_cache_type, normalise_query, organization_uuid
from .policy import Policy, load_policy
from .singleflight import RedisLocks, SingleFlight
from .tiers import Tier
from .ttl import VendorCacheOptimizer, jittered

log = logging.getLogger(__name__)

_SKIPPED = object()


@dataclass(slots=True)
class CacheResult:
    """What a lookup returns."""

    value: Any
    cached: bool
    tier: str | None
    """``memory``, ``redis``, ``postgres``, or ``None`` when computed now."""
    age_seconds: float
    key: str


class TierCounters:
    """Lookups and hits per tier (thread-safe enough: increments under the GIL)."""

    __slots__ = ("lookups", "hits", "errors", "skipped")

    def __init__(self) -> None:
        self.lookups = self.hits = self.errors = self.skipped = 0


class TieredCache:
    """Memory, Redis and PostgreSQL tiers in front of an origin.

    :param tiers: fastest first; the first tier named ``memory`` (if any) is never guarded.
    :param clock: the time every freshness decision reads.
    :param policy: TTLs, seasons and jitter (default: the shipped policy).
    :param ttl: the TTL strategy (default: :class:`VendorCacheOptimizer` over ``policy``).
    :param locks: cross-process single-flight locks (default: none, in-process only).
    :param breaker_failures: consecutive errors that open a tier's breaker.
    :param breaker_reset_seconds: first cool-down before a half-open probe.
    :param lock_wait_seconds: how long a process waits for a peer's computation.
    """

    def __init__(self, tiers: Sequence[Tier], *, clock: Clock | None = None, policy: Policy | None = None,
                 ttl: VendorCacheOptimizer | None = None, locks: RedisLocks | None = None,
                 breaker_failures: int = 5, breaker_reset_seconds: float = 5.0,
                 lock_wait_seconds: float = 30.0, lock_poll_seconds: float = 0.01):
        self.tiers = list(tiers)
        self.clock = clock or SystemClock()
        self.policy = policy or load_policy()
        self.ttl = ttl or VendorCacheOptimizer(self.policy)
        self.locks = locks
        self.events = CacheEvents()
        self.lock_wait_seconds, self.lock_poll_seconds = lock_wait_seconds, lock_poll_seconds
        backoff = Backoff(base=breaker_reset_seconds, cap=max(60.0, breaker_reset_seconds))
        self.breakers = {t.name: CircuitBreaker(t.name, self.clock, breaker_failures, backoff, self._breaker_changed)
                         for t in self.tiers if t.name != "memory"}
        self.counters = {t.name: TierCounters() for t in self.tiers}
        self.memory = next((t for t in self.tiers[:1] if t.name == "memory"), None)
        self._memory_counters = self.counters["memory"] if self.memory else None
        self._now = self.clock.now
        self._hit_listeners = self.events.hit.listeners
        self._flights = SingleFlight()
        self.requests = self.hits = self.coalesced = self.origin_calls = 0
        self._count_lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------
    def get(self, key: str, max_age: float | None = None) -> CacheResult | None:
        """The fresh entry under ``key`` from the fastest tier holding it, or ``None``.

        ``max_age`` (seconds) also treats entries older than that as missing. The memory
        tier is tried inline (the hot path); the others through :meth:`_get_lower`.
        """
        now = self._now()
        memory = self._memory_counters
        if memory is not None:
            memory.lookups += 1
            entry = self.memory.get(key)
            if entry is not None and entry.expires_at > now and (max_age is None or now - entry.created_at <= max_age):
                memory.hits += 1
                if self._hit_listeners:
                    self._fire_hit(key, "memory", entry, now)
                return CacheResult(entry.value, True, "memory", now - entry.created_at, key)
        return self._get_lower(key, max_age, now)

    def _get_lower(self, key: str, max_age: float | None, now: float) -> CacheResult | None:
        for index, tier in enumerate(self.tiers):
            if tier is self.memory:
                continue
            entry = self._read(tier, key)
            if entry is None or entry is _SKIPPED:
                continue
            if entry.expires_at <= now or (max_age is not None and now - entry.created_at > max_age):
                continue
            self.counters[tier.name].hits += 1
            if index:
                self._promote(entry, self.tiers[:index])
            self._fire_hit(key, tier.name, entry, now)
            return CacheResult(entry.value, True, tier.name, now - entry.created_at, key)
        return None

    def get_or_compute(self, org_id: str, query: str, context: WeddingContext | dict | None,
                       compute: Callable[[], Any], *, cache_type: str = "general",
                       force_refresh: bool = False, max_age: float | None = None) -> CacheResult:
        """The cached answer to ``query`` in ``context`` for ``org_id``, computing it on a miss.

        :raises ContextError: for an invalid query, context or cache type (naming the field).
        :raises OriginUnavailable: when no tier holds the answer and ``compute`` fails.
        """
        org, ctx = organization_uuid(org_id), parse_context(context)
        key = cache_key(org, check_query(query), ctx, check_cache_type(cache_type))
        with self._count_lock:
            self.requests += 1
        if not force_refresh:
            hit = self.get(key, max_age)
            if hit is not None:
                with self._count_lock:
                    self.hits += 1
                return hit
        if self.events.miss.listeners:
            self.events.miss.fire(key=key)
        fill = lambda: self._fill(key, org, query, ctx, compute, cache_type, max_age, force_refresh)  # noqa: E731
        result, leader = self._flights.do(key, fill)
        if not leader:
            with self._count_lock:
                self.coalesced += 1
        return result

    # -- writing -------------------------------------------------------------------------
    def set(self, org_id: str, query: str, context: WeddingContext | dict | None, value: Any, *,
            cache_type: str = "general", max_age: float | None = None) -> CacheEntry:
        """Store ``value`` as the answer to ``query`` in every tier; returns the entry."""
        org, ctx = organization_uuid(org_id), parse_context(context)
        key = cache_key(org, check_query(query), ctx, check_cache_type(cache_type))
        entry = self.make_entry(key, org, query, ctx, value, cache_type, max_age)
        self.store(entry)
        return entry

    def make_entry(self, key: str, org: str, query: str, ctx: WeddingContext, value: Any,
                   cache_type: str, max_age: float | None = None) -> CacheEntry:
        """An entry stamped now, with the policy's TTL for ``ctx`` (jittered per key)."""
        now = self.clock.now()
        ttl = jittered(self.ttl.ttl_seconds(ctx, today(self.clock), max_age), key, self.policy.jitter)
        wedding = organization_uuid(ctx.wedding_id, "weddingId") if ctx.wedding_id else None
        return CacheEntry(key=key, value=value, created_at=now, expires_at=now + ttl, org_id=org,
                          cache_type=cache_type, query=normalise_query(query), wedding_id=wedding,
                          market_tier=self.ttl.partitioner.tier_of(ctx.location),
                          vendor_types=tuple(ctx.vendor_types), context=ctx.to_json() or None)

    def store(self, entry: CacheEntry) -> None:
        """Write ``entry`` through to every tier (skipping unavailable ones)."""
        for tier in self.tiers:
            self._guarded(tier, tier.set, entry)

    def delete(self, key: str) -> int:
        """Remove ``key`` from every tier; returns in how many tiers it was found."""
        return sum(1 for tier in self.tiers if self._guarded(tier, tier.delete, key) is True)

    def invalidate(self, **selector: Any) -> int:
        """Remove what the selector matches from every tier; returns the total removed.

        Keywords: ``org_id``, ``wedding_id``, ``vendor_types``, ``market_tiers``,
        ``cache_types``, ``patterns``, ``scope`` (see :class:`~wedcache.entry.Selector`).
        """
        return sum(n for n in self.invalidate_per_tier(**selector).values() if n > 0)

    def invalidate_per_tier(self, **selector: Any) -> dict[str, int]:
        """Like :meth:`invalidate`, by tier; ``-1`` marks a tier that was unavailable."""
        sel = Selector.build(**selector)
        removed = {}
        for tier in self.tiers:
            count = self._guarded(tier, tier.invalidate, sel)
            removed[tier.name] = -1 if count is _SKIPPED else count
            if count is _SKIPPED:
                log.warning("invalidation skipped the unavailable %s tier", tier.name)
        self.events.invalidate.fire(selector=sel, removed=removed)
        return removed

    # -- observing -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Requests, hit rates, per-tier hits/misses/sizes/evictions and breaker states."""
        tiers = {}
        for tier in self.tiers:
            counters = self.counters[tier.name]
            sizes = self._guarded(tier, tier.stats)
            tiers[tier.name] = {
                **({} if sizes is _SKIPPED else sizes),
                "lookups": counters.lookups, "hits": counters.hits,
                "misses": counters.lookups - counters.hits,
                "hit_rate": counters.hits / counters.lookups if counters.lookups else 0.0,
                "errors": counters.errors, "skipped": counters.skipped,
                "breaker": self.breakers[tier.name].snapshot() if tier.name in self.breakers else None,
            }
        return {"requests": self.requests, "hits": self.hits, "misses": self.requests - self.hits,
                "hit_rate": self.hits / self.requests if self.requests else 0.0,
                "coalesced": self.coalesced, "origin_calls": self.origin_calls, "tiers": tiers}

    def close(self) -> None:
        for tier in self.tiers:
            try:
                tier.close()
            except WedcacheError as exc:  # closing a broken tier must not stop the others
                log.warning("closing %s: %s", tier.name, exc)

    # -- internals -----------------------------------------------------------------------
    def _read(self, tier: Tier, key: str) -> CacheEntry | None | object:
        self.counters[tier.name].lookups += 1
        return self._guarded(tier, tier.get, key)

    def _guarded(self, tier: Tier, operation: Callable, *args: Any) -> Any:
        """Run a tier operation behind its breaker; ``_SKIPPED`` when skipped or failed."""
        return self._behind(tier.name, operation, *args)

    def _behind(self, name: str, operation: Callable, *args: Any) -> Any:
        """Run ``operation`` behind the breaker of the tier called ``name`` (Redis locks too)."""
        breaker, counters = self.breakers.get(name), self.counters.get(name)
        if breaker is not None and not breaker.allow():
            if counters is not None:
                counters.skipped += 1
            return _SKIPPED
        try:
            result = operation(*args)
        except TierUnavailable as exc:
            if counters is not None:
                counters.errors += 1
            if breaker is not None:
                breaker.failure()
            self.events.tier_error.fire(tier=name, error=exc)
            return _SKIPPED
        if breaker is not None:
            breaker.success()
        return result

    def _promote(self, entry: CacheEntry, faster: list[Tier]) -> None:
        for tier in faster:
            self._guarded(tier, tier.set, entry)

    def _fill(self, key: str, org: str, query: str, ctx: WeddingContext, compute: Callable[[], Any],
              cache_type: str, max_age: float | None, force_refresh: bool) -> CacheResult:
        token = self._acquire(key)
        try:
            if token is None and not force_refresh:
                peer = self._await_peer(key, max_age)
                if peer is not None:
                    return peer
            started = self.clock.now()
            value = self._compute(compute)
            entry = self.make_entry(key, org, query, ctx, value, cache_type, max_age)
            self.store(entry)
            self.events.store.fire(entry=entry, compute_seconds=entry.created_at - started)
            return CacheResult(value, False, None, 0.0, key)
        finally:
            if isinstance(token, str):
                self._behind("redis", self.locks.release, key, token)

    def _compute(self, compute: Callable[[], Any]) -> Any:
        with self._count_lock:
            self.origin_calls += 1
        try:
            return compute()
        except OriginUnavailable:
            raise
        except Exception as exc:
            raise OriginUnavailable(f"the origin failed: {exc}") from exc

    def _acquire(self, key: str) -> str | None | bool:
        """``True``-ish token when we compute; ``None`` when a peer holds the lock.

        Without locks, or with Redis unavailable, returns ``True`` (compute locally).
        """
        if self.locks is None:
            return True
        token = self._behind("redis", self.locks.acquire, key)
        return True if token is _SKIPPED else token

    def _await_peer(self, key: str, max_age: float | None) -> CacheResult | None:
        """Wait for another process to store ``key``; ``None`` if it gives up or times out."""
        deadline = self.clock.now() + self.lock_wait_seconds
        while self.clock.now() < deadline:
            self.clock.sleep(self.lock_poll_seconds)
            hit = self.get(key, max_age)
            if hit is not None:
                return hit
            if self._behind("redis", self.locks.held, key) is not True:
                return self.get(key, max_age)
        return None

    def _fire_hit(self, key: str, tier: str, entry: CacheEntry, now: float) -> None:
        if self._hit_listeners:
            self.events.hit.fire(key=key, tier=tier, entry=entry, age=now - entry.created_at)

    def _breaker_changed(self, tier: str, old: str, new: str) -> None:
        log.warning("%s tier breaker: %s -> %s", tier, old, new)
        self.events.breaker_change.fire(tier=tier, old=old, new=new)
