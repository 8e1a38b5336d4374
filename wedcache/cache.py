"""The cache core: :class:`TieredCache` and the :class:`CacheResult` it returns.

Read path (``get_or_compute``): memory -> Redis -> PostgreSQL. The first tier holding a
fresh entry answers; the entry is then promoted to the faster tiers with its *remaining*
TTL (its ``expires_at`` travels with it). On a miss the answer is computed once — one
caller per key in this process (:class:`~wedcache.singleflight.SingleFlight`) and one
process per key across the fleet (a Redis lock; other processes wait for the stored value)
— and written through to every tier.

Semantic matching is opt-in (``semantic=``, a :class:`~wedcache.semantic.matcher.SemanticMatcher`;
``None`` costs nothing): after an exact miss, the single-flight leader asks it for a stored
question that means the same (only for the cache types its settings name, never on
``force_refresh``); a fresh entry under the matched key is returned (``similarity`` set), else
the origin answers and the new entry's vector is remembered once. Deleting, invalidating or
evicting an entry forgets its vector. A semantic failure (model, pgvector) is logged and the
request goes on with exact matching.

Fail-open: every backend tier sits behind a :class:`~wedcache.breaker.CircuitBreaker`. A
tier that raises :class:`~wedcache.errors.TierUnavailable` is skipped (and its breaker
counts the failure); an open breaker skips the tier without trying it. Only when no tier
holds the answer *and* the origin fails does a request fail
(:class:`~wedcache.errors.OriginUnavailable`).
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence

from .breaker import Backoff, CircuitBreaker
from .clock import Clock, SystemClock
from .context import WeddingContext, check_query, parse_context
from .entry import CacheEntry, Selector
from .errors import OriginUnavailable, TamperedEntry, TierUnavailable, WedcacheError
from .events import CacheEvents
from .keys import cache_key, check_cache_type, normalise_query, organization_uuid
from .policy import Policy, load_policy
from .singleflight import RedisLocks, SingleFlight
from .tiers import Tier, Unreadable
from .ttl import VendorCacheOptimizer, jittered

if TYPE_CHECKING:
    from .semantic.matcher import SemanticMatcher

log = logging.getLogger(__name__)

LOCKS = "redis-locks"
"""The breaker name of the cross-process single-flight locks."""
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
    stale: bool = False
    """Served inside the stale-while-revalidate grace window (a refresh is under way)."""
    similarity: float | None = None
    """Set for a semantic hit: the cosine similarity of the question to the matched one."""
    matched_key: str | None = None
    """Set for a semantic hit: the key of the entry that answered (``key`` is the question's own)."""
    index_tier: str | None = None
    """Set for a semantic hit: where the vector was found (``memory`` or ``postgres``)."""

    @property
    def semantic(self) -> bool:
        """Answered by a stored question that means the same (not by the exact key)."""
        return self.similarity is not None


class EntryCodec(Protocol):
    """What turns an entry into what the tiers store and back (:class:`~wedcache.encryption.EntrySealer`)."""

    def seal(self, entry: CacheEntry) -> CacheEntry: ...

    def open(self, entry: CacheEntry) -> CacheEntry:
        """The plaintext entry; raises :class:`~wedcache.encryption.TamperedEntry` when it fails its check."""


class TierCounters:
    """Hits and misses per tier (thread-safe enough: increments under the GIL).

    A lookup counts once, as a hit or a miss (a memory hit is one increment: the hot path).
    """

    __slots__ = ("hits", "misses", "errors", "skipped")

    def __init__(self) -> None:
        self.hits = self.misses = self.errors = self.skipped = 0

    @property
    def lookups(self) -> int:
        return self.hits + self.misses


@dataclass(frozen=True, slots=True)
class MemoryReader:
    """See :meth:`TieredCache.memory_reader`."""

    get: Callable[[str], CacheEntry | None]
    rest: Callable[[str, float | None, bool, CacheEntry | None], tuple[CacheEntry, str] | None]
    counters: TierCounters


def _find_nothing(key: str) -> None:
    return None


class TieredCache:
    """Memory, Redis and PostgreSQL tiers in front of an origin.

    :param tiers: fastest first; the first tier named ``memory`` (if any) is never guarded.
    :param clock: the time every freshness decision reads.
    :param policy: TTLs, seasons and jitter (default: the shipped policy).
    :param ttl: the TTL strategy (default: :class:`VendorCacheOptimizer` over ``policy``).
    :param locks: cross-process single-flight locks (default: none, in-process only).
    :param breaker_failures: consecutive errors that open a tier's breaker.
    :param breaker_reset_seconds: the cool-down before each half-open probe.
    :param lock_wait_seconds: how long a process waits for a peer's computation.
    :param background: runs stale-while-revalidate refreshes (default: a small thread pool;
        the simulation passes one that schedules them in simulated time).
    :param codec: seals every entry before any tier stores it and opens what :meth:`get`
        returns (encryption and integrity tags); ``None`` stores entries as they are.
    :param semantic: near-match lookups after an exact miss (see the module docstring);
        ``None`` (the default) turns them off at no cost.
    """

    def __init__(self, tiers: Sequence[Tier], *, clock: Clock | None = None, policy: Policy | None = None,
                 ttl: VendorCacheOptimizer | None = None, locks: RedisLocks | None = None,
                 breaker_failures: int = 5, breaker_reset_seconds: float = 5.0,
                 lock_wait_seconds: float = 30.0, lock_poll_seconds: float = 0.01,
                 background: Callable[[Callable[[], Any]], Any] | None = None, codec: EntryCodec | None = None,
                 semantic: "SemanticMatcher | None" = None):
        self.tiers = list(tiers)
        self.semantic = semantic
        self.semantic_hits = self.semantic_errors = 0
        self.codec = codec
        self.clock = clock or SystemClock()
        self.policy = policy or load_policy()
        self.ttl = ttl or VendorCacheOptimizer(self.policy)
        self._jitter = self.policy.jitter
        self.locks = locks
        self.events = CacheEvents()
        self.lock_wait_seconds, self.lock_poll_seconds = lock_wait_seconds, lock_poll_seconds
        # A down tier is probed with one request every cool-down, never less often: a longer cool-down
        # after failed probes would keep a restarted Redis or PostgreSQL unused for up to a minute (the
        # fault drills hold the service to 10 s), and one probe per cool-down per process costs nothing.
        backoff = Backoff(base=breaker_reset_seconds, cap=breaker_reset_seconds)
        self.breakers = {t.name: CircuitBreaker(t.name, self.clock, breaker_failures, backoff, self._breaker_changed)
                         for t in self.tiers if t.name != "memory"}
        if locks is not None:  # the locks' own: a slow tier read must not turn fleet-wide single flight off
            self.breakers[LOCKS] = CircuitBreaker(LOCKS, self.clock, breaker_failures, backoff, self._breaker_changed)
        self.counters = {t.name: TierCounters() for t in self.tiers}
        self.memory = next((t for t in self.tiers[:1] if t.name == "memory"), None)
        self._memory_counters = self.counters["memory"] if self.memory else None
        self._lower = [(i, t) for i, t in enumerate(self.tiers) if t is not self.memory]
        self.background, self._executor = background, None
        self._now = self.clock.now
        self._hit_listeners = self.events.hit.listeners
        self._flights = SingleFlight()
        self.requests = self.hits = self.coalesced = self.origin_calls = self.stale_served = 0
        self._count_lock = threading.Lock()
        if self.memory is not None and not self._lower and codec is None:
            self.store = self.memory.set

    # -- reading -------------------------------------------------------------------------
    def lookup(self, key: str, max_age: float | None = None,
               allow_stale: bool = False) -> tuple[CacheEntry, str] | None:
        """The entry under ``key`` and the name of the tier that answered, or ``None``.

        The fastest tier holding a *fresh* entry answers (entries older than ``max_age``
        seconds count as missing); the memory tier is tried inline (the hot path). With
        ``allow_stale``, when no tier holds a fresh entry, an entry expired for less than its
        grace window (:meth:`grace_seconds`) answers instead: the caller sees it is stale by
        ``entry.expires_at <= clock.now()`` and should refresh it (:meth:`get_or_compute` does).
        """
        memory, entry = self.memory, None
        if memory is not None:
            entry = memory.get(key)
            if entry is not None:
                now = self._now()
                if entry.expires_at > now and (max_age is None or now - entry.created_at <= max_age):
                    self._memory_counters.hits += 1
                    if self._hit_listeners:
                        self._fire_hit(key, "memory", entry, now)
                    return entry, "memory"
        return self.lookup_below_memory(key, max_age, allow_stale, entry)

    def lookup_below_memory(self, key: str, max_age: float | None, allow_stale: bool,
                            in_memory: CacheEntry | None) -> tuple[CacheEntry, str] | None:
        """The rest of :meth:`lookup` once the memory tier had no fresh entry under ``key``
        (``in_memory`` is what it had, expired or too old, or ``None``): counts the memory
        miss, then the lower tiers and the grace window."""
        if self.memory is not None:
            self._memory_counters.misses += 1
        if self._lower or allow_stale:
            return self._lookup_past_memory(key, max_age, allow_stale, in_memory)
        return None

    def memory_reader(self, inline: bool = True) -> "MemoryReader":
        """:meth:`lookup` split for a driver that replays many requests in one loop (the
        simulation's engine), so a fresh memory hit costs no call into the cache.

        The driver does, per request: ``entry = reader.get(key)``; when ``entry`` is not
        ``None`` and ``entry.expires_at > now`` it is a memory hit, which the driver counts
        (``reader.counters.hits += n``, in bulk); anything else goes to
        ``reader.rest(key, None, allow_stale, entry)``, which is :meth:`lookup` from there on.
        That is exactly :meth:`lookup` without ``max_age``. When hits have listeners (they must
        fire per hit), without a memory tier, or with ``inline=False``, ``get`` finds nothing
        and ``rest`` is the whole :meth:`lookup`."""
        if inline and self.memory is not None and not self._hit_listeners:
            return MemoryReader(self.memory.get, self.lookup_below_memory, self._memory_counters)
        lookup = self.lookup
        return MemoryReader(_find_nothing, lambda key, max_age, allow_stale, _: lookup(key, max_age, allow_stale),
                            TierCounters())

    def get(self, key: str, max_age: float | None = None, allow_stale: bool = False) -> CacheResult | None:
        """:meth:`lookup` as a :class:`CacheResult` (``stale`` set for a grace-window answer).

        :raises TamperedEntry: when the entry fails the codec's check; it is first removed
            from every tier (and the ``tampered`` hook fired), so the next request recomputes.
        """
        found = self.lookup(key, max_age, allow_stale)
        if found is None:
            return None
        entry, tier = found
        if self.codec is not None:
            entry = self._open(entry, tier)
        now = self._now()
        return CacheResult(entry.value, True, tier, now - entry.created_at, key, entry.expires_at <= now)

    def grace_seconds(self, entry: CacheEntry) -> float:
        """How long past its expiry ``entry`` may be served while it is refreshed."""
        return self.ttl.grace_seconds(entry.vendor_types)

    def _lookup_past_memory(self, key: str, max_age: float | None, allow_stale: bool,
                            expired: CacheEntry | None) -> tuple[CacheEntry, str] | None:
        """The memory tier had no fresh entry (``expired`` is what it had; its miss is
        counted): the lower tiers, then the grace window."""
        stale = (expired, "memory") if expired is not None and allow_stale else None
        if self._lower:
            return self._lookup_lower(key, max_age, self._now(), stale, allow_stale)
        return self._serve_stale(stale, max_age, self._now()) if allow_stale else None

    def _lookup_lower(self, key: str, max_age: float | None, now: float,
                      stale: tuple[CacheEntry, str] | None, allow_stale: bool) -> tuple[CacheEntry, str] | None:
        for index, tier in self._lower:
            entry = self._guarded(tier, tier.get, key)
            counters = self.counters[tier.name]
            if entry is None or entry is _SKIPPED or (max_age is not None and now - entry.created_at > max_age):
                counters.misses += 1
                continue
            if entry.expires_at <= now:
                counters.misses += 1
                if allow_stale and (stale is None or entry.expires_at > stale[0].expires_at):
                    stale = (entry, tier.name)
                continue
            counters.hits += 1
            if index:
                self._promote(entry, self.tiers[:index])
            self._fire_hit(key, tier.name, entry, now)
            return entry, tier.name
        return self._serve_stale(stale, max_age, now) if allow_stale else None

    def _serve_stale(self, found: tuple[CacheEntry, str] | None, max_age: float | None,
                     now: float) -> tuple[CacheEntry, str] | None:
        if found is None:
            return None
        entry, tier = found
        if now - entry.expires_at >= self.grace_seconds(entry):
            return None
        if max_age is not None and now - entry.created_at > max_age:
            return None
        counters = self.counters[tier]
        counters.misses -= 1  # that tier's miss turns out to be a (stale) hit
        counters.hits += 1
        self.stale_served += 1
        self._fire_hit(entry.key, tier, entry, now)
        return found

    def get_or_compute(self, org_id: str, query: str, context: WeddingContext | dict | None,
                       compute: Callable[[], Any], *, cache_type: str = "general",
                       force_refresh: bool = False, max_age: float | None = None) -> CacheResult:
        """The cached answer to ``query`` in ``context`` for ``org_id``, computing it on a miss.

        An entry inside its stale-while-revalidate grace window is returned at once
        (``stale=True``) and refreshed in the background, once per key. With ``semantic`` on,
        an exact miss may be answered by a near match (``similarity`` set; see :meth:`_fill`).

        :raises ContextError: for an invalid query, context or cache type (naming the field).
        :raises OriginUnavailable: when no tier holds the answer and ``compute`` fails.
        """
        org, ctx = organization_uuid(org_id), parse_context(context)
        key = cache_key(org, check_query(query), ctx, check_cache_type(cache_type))
        with self._count_lock:
            self.requests += 1
        fill = lambda: self._fill(key, org, query, ctx, compute, cache_type, max_age, force_refresh)  # noqa: E731
        if not force_refresh:
            hit = self.get(key, max_age, allow_stale=True)
            if hit is not None:
                with self._count_lock:
                    self.hits += 1
                if hit.stale:
                    self._revalidate(key, org, query, ctx, compute, cache_type, max_age)
                return hit
        if self.events.miss.listeners:
            self.events.miss.fire(key=key)
        result, leader = self._flights.do(key, fill)
        if not leader:
            with self._count_lock:
                self.coalesced += 1
        return result

    def get_in_memory(self, org_id: str, query: str, context: WeddingContext | dict | None, *,
                      cache_type: str = "general", max_age: float | None = None) -> CacheResult | None:
        """The answer :meth:`get_or_compute` would give when the memory tier holds it fresh,
        counted as that request and hit; ``None`` otherwise, with nothing counted (the caller
        then asks :meth:`get_or_compute`). No I/O: an event loop may call it inline.

        :raises ContextError: for an invalid query, context or cache type (naming the field).
        """
        if self.memory is None:
            return None
        org, ctx = organization_uuid(org_id), parse_context(context)
        key = cache_key(org, check_query(query), ctx, check_cache_type(cache_type))
        entry, now = self.memory.get(key), self._now()
        if entry is None or entry.expires_at <= now or (max_age is not None and now - entry.created_at > max_age):
            return None
        self._memory_counters.hits += 1
        with self._count_lock:
            self.requests += 1
            self.hits += 1
        self._fire_hit(key, "memory", entry, now)
        if self.codec is not None:
            entry = self._open(entry, "memory")
        return CacheResult(entry.value, True, "memory", now - entry.created_at, key, False)

    def _revalidate(self, key: str, org: str, query: str, ctx: WeddingContext, compute: Callable[[], Any],
                    cache_type: str, max_age: float | None) -> None:
        """Refresh ``key`` in the background unless a computation for it is already running."""
        refresh = lambda: self._fill(key, org, query, ctx, compute, cache_type, max_age, True, peer_wait=False)  # noqa: E731
        self._flights.launch(key, refresh, self._submit)

    def _submit(self, task: Callable[[], Any]) -> None:
        if self.background is not None:
            self.background(task)
            return
        with self._count_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="wedcache-revalidate")
        self._executor.submit(task)

    # -- writing -------------------------------------------------------------------------
    def set(self, org_id: str, query: str, context: WeddingContext | dict | None, value: Any, *,
            cache_type: str = "general", max_age: float | None = None) -> CacheEntry:
        """Store ``value`` as the answer to ``query`` in every tier; returns the entry."""
        org, ctx = organization_uuid(org_id), parse_context(context)
        key = cache_key(org, check_query(query), ctx, check_cache_type(cache_type))
        entry = self.make_entry(key, org, query, ctx, value, cache_type, max_age)
        self.store(entry)
        if self._semantic_applies(cache_type):
            self._semantic_call("remember", org, key, query, ctx, cache_type)
        return entry

    def make_entry(self, key: str, org: str, query: str, ctx: WeddingContext, value: Any,
                   cache_type: str, max_age: float | None = None) -> CacheEntry:
        """An entry stamped now, with the policy's TTL for ``ctx`` (jittered per key)."""
        now = self.clock.now()
        ttl = self.entry_ttl(key, ctx, max_age)
        wedding = organization_uuid(ctx.wedding_id, "weddingId") if ctx.wedding_id else None
        return CacheEntry(key=key, value=value, created_at=now, expires_at=now + ttl, org_id=org,
                          cache_type=cache_type, query=normalise_query(query), wedding_id=wedding,
                          market_tier=self.ttl.partitioner.tier_of(ctx.location),
                          vendor_types=tuple(ctx.vendor_types), context=ctx.to_json() or None)

    def entry_ttl(self, key: str, ctx: WeddingContext, max_age: float | None = None) -> float:
        """The TTL an entry for ``key`` in ``ctx`` gets now: the policy's, jittered per key."""
        fixed, jitter = self.ttl.fixed_ttl, self._jitter
        # a scenario's fixed TTL needs no calendar (ttl_now's own shortcut, a call sooner: every fill asks)
        ttl = fixed if fixed is not None and max_age is None else self.ttl.ttl_now(ctx, self.clock, max_age)
        return jittered(ttl, key, jitter) if jitter > 0 else ttl

    def store(self, entry: CacheEntry) -> None:
        """Write ``entry`` through to every tier (skipping unavailable ones), sealed by the codec.

        A cache of the memory tier alone without a codec rebinds this to the tier's ``set``
        (in ``__init__``): the simulation's fill path, with no layer in between."""
        if self.codec is not None:
            entry = self.codec.seal(entry)
        if self.memory is not None:
            self.memory.set(entry)  # in-process: nothing to guard
        for _, tier in self._lower:
            self._guarded(tier, tier.set, entry)

    def delete(self, key: str) -> int:
        """Remove ``key`` from every tier (and its vector); returns in how many tiers it was found."""
        found = sum(1 for tier in self.tiers if self._guarded(tier, tier.delete, key) is True)
        if self.semantic is not None:
            self._semantic_call("forget", key)
        return found

    def invalidate(self, **selector: Any) -> int:
        """Remove what the selector matches from every tier; returns the total removed.

        Keywords: ``org_id``, ``wedding_id``, ``vendor_types``, ``market_tiers``,
        ``cache_types``, ``patterns``, ``scope`` (see :class:`~wedcache.entry.Selector`).
        """
        return sum(n for n in self.invalidate_per_tier(**selector).values() if n > 0)

    def invalidate_per_tier(self, **selector: Any) -> dict[str, int]:
        """Like :meth:`invalidate`, by tier; ``-1`` marks a tier that was unavailable."""
        sel = Selector.build(**selector)
        doomed = self._semantic_doomed(sel) if self.semantic is not None else None
        removed = {}
        for tier in self.tiers:
            count = self._guarded(tier, tier.invalidate, sel)
            removed[tier.name] = -1 if count is _SKIPPED else count
            if count is _SKIPPED:
                log.warning("invalidation skipped the unavailable %s tier", tier.name)
        if self.semantic is not None:
            self._semantic_forget(sel, doomed)
        self.events.invalidate.fire(selector=sel, removed=removed)
        return removed

    # -- tier by tier (compliance work: :mod:`wedcache.security`) -------------------------
    def on_tier(self, name: str, operation: str, *args: Any) -> Any:
        """Call tier ``name``'s method ``operation`` behind the tier's breaker.

        :raises TierUnavailable: when the tier fails or its open breaker skips it.
        """
        tier = next(t for t in self.tiers if t.name == name)
        result = self._guarded(tier, getattr(tier, operation), *args)
        if result is _SKIPPED:
            raise TierUnavailable(name, "unavailable (failed or skipped by its open breaker)")
        return result

    def entries_per_tier(self, org_id: str) -> dict[str, list[CacheEntry | Unreadable] | None]:
        """What each tier stores for ``org_id`` (:class:`~wedcache.tiers.ListableTier`), as stored
        (sealed entries stay sealed); ``None`` for a tier that is unavailable or cannot list."""
        org, found = organization_uuid(org_id), {}
        for tier in self.tiers:
            listed = _SKIPPED
            if hasattr(tier, "entries"):
                listed = self._guarded(tier, lambda t=tier: list(t.entries(org)))
            found[tier.name] = None if listed is _SKIPPED else listed
        return found

    # -- observing -----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Requests, hit rates, per-tier hits/misses/sizes/evictions and breaker states."""
        tiers = {}
        for tier in self.tiers:
            counters = self.counters[tier.name]
            sizes = self._guarded(tier, tier.stats)
            tiers[tier.name] = {
                **({} if sizes is _SKIPPED else sizes),
                "lookups": counters.lookups, "hits": counters.hits, "misses": counters.misses,
                "hit_rate": counters.hits / counters.lookups if counters.lookups else 0.0,
                "errors": counters.errors, "skipped": counters.skipped,
                "breaker": self.breakers[tier.name].snapshot() if tier.name in self.breakers else None,
            }
        out = {"requests": self.requests, "hits": self.hits, "misses": self.requests - self.hits,
               "hit_rate": self.hits / self.requests if self.requests else 0.0,
               "coalesced": self.coalesced, "stale_served": self.stale_served,
               "origin_calls": self.origin_calls, "tiers": tiers}
        if self.semantic is not None:
            out["semantic"] = {"hits": self.semantic_hits, "errors": self.semantic_errors}
        return out

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self.semantic is not None:
            self._semantic_call("close")
        for tier in self.tiers:
            try:
                tier.close()
            except WedcacheError as exc:  # closing a broken tier must not stop the others
                log.warning("closing %s: %s", tier.name, exc)

    # -- internals -----------------------------------------------------------------------
    def _guarded(self, tier: Tier, operation: Callable, *args: Any) -> Any:
        """Run a tier operation behind its breaker; ``_SKIPPED`` when skipped or failed."""
        return self._behind(tier.name, operation, *args)

    def _behind(self, name: str, operation: Callable, *args: Any) -> Any:
        """Run ``operation`` behind the breaker called ``name`` (a tier's, or :data:`LOCKS`)."""
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
              cache_type: str, max_age: float | None, force_refresh: bool, peer_wait: bool = True) -> CacheResult | None:
        """Compute and store ``key`` holding the fleet-wide lock; when a peer holds it, wait for
        the peer's value (``peer_wait``) or, for a background refresh, leave it to the peer.

        With semantic matching on for ``cache_type``, a near match answers first (no lock
        needed), and the stored entry's vector is remembered with what that lookup computed."""
        semantic = self._semantic_applies(cache_type)
        prepared = None
        if semantic and not force_refresh and peer_wait:
            prepared = self._semantic_call("prepare", query, ctx)
            hit = self._semantic_hit(key, org, query, ctx, cache_type, max_age, prepared) if prepared else None
            if hit is not None:
                return hit
        token = self._acquire(key)
        try:
            if token is None and not peer_wait:
                return None
            if token is None and not force_refresh:
                peer = self._await_peer(key, max_age)
                if peer is not None:
                    return peer
            started = self.clock.now()
            value = self._compute(compute)
            entry = self.make_entry(key, org, query, ctx, value, cache_type, max_age)
            self.store(entry)
            self.events.store.fire(entry=entry, compute_seconds=entry.created_at - started)
            if semantic:  # a refresh has nothing prepared: remember computes it
                self._semantic_call("remember", org, key, query, ctx, cache_type, prepared)
            return CacheResult(value, False, None, 0.0, key)
        finally:
            if isinstance(token, str):
                self._behind(LOCKS, self.locks.release, key, token)

    # -- semantic matching (only with ``semantic``) -----------------------------------------
    def _semantic_applies(self, cache_type: str) -> bool:
        return self.semantic is not None and self.semantic.settings.applies_to(cache_type)

    def _semantic_call(self, method: str, *args: Any) -> Any:
        """``semantic.<method>(*args)``; ``None`` when it fails: semantic matching degrades to
        exact matching (a missing model, a failing pgvector), it never fails a request."""
        try:
            return getattr(self.semantic, method)(*args)
        except Exception as exc:  # noqa: BLE001  (any failure here only costs a near match)
            with self._count_lock:
                self.semantic_errors += 1
            log.warning("semantic %s skipped: %s", method, exc)
            return None

    def _semantic_hit(self, key: str, org: str, query: str, ctx: WeddingContext, cache_type: str,
                      max_age: float | None, prepared: Any) -> CacheResult | None:
        """The fresh entry of the question that means the same, as a hit for ``key``; ``None``
        when there is none. A match whose entry is gone (expired, deleted, removed on another
        replica) is forgotten, so it is not offered again."""
        match = self._semantic_call("match", org, query, ctx, cache_type, prepared)
        if match is None:
            return None
        try:
            hit = self.get(match.key, max_age)
        except TamperedEntry:  # removed (and reported) by get; answer as a miss
            hit = None
        if hit is None:
            if max_age is None:  # too old for this caller is not gone
                self._semantic_call("forget", match.key)
            return None
        with self._count_lock:
            self.hits += 1
            self.semantic_hits += 1
        return replace(hit, key=key, similarity=match.similarity, matched_key=match.key, index_tier=match.tier)

    def _semantic_doomed(self, sel: Selector) -> list[str] | None:
        """The keys an organization's narrower invalidation (a wedding, vendor types, patterns)
        is about to remove, read from the tiers that can list (their vectors go with them);
        ``None`` when the selector takes a whole organization or every one."""
        narrower = (sel.wedding_id, sel.vendor_types, sel.market_tiers, sel.cache_types, sel.patterns)
        if sel.org_id is None or not any(narrower):
            return None
        keys = {item.key for listed in self.entries_per_tier(sel.org_id).values() for item in listed or ()
                if isinstance(item, CacheEntry) and sel.matches(item)}
        return sorted(keys)

    def _semantic_forget(self, sel: Selector, doomed: list[str] | None) -> None:
        if doomed is not None:
            self._semantic_call("forget_many", doomed)
        elif sel.org_id is not None:
            self._semantic_call("forget_organization", sel.org_id)
        # a global invalidation leaves vectors behind: a match on one finds no entry and forgets it

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
        token = self._behind(LOCKS, self.locks.acquire, key)
        return True if token is _SKIPPED else token

    def _await_peer(self, key: str, max_age: float | None) -> CacheResult | None:
        """Wait for another process to store ``key``; ``None`` if it gives up or times out."""
        deadline = self.clock.now() + self.lock_wait_seconds
        while self.clock.now() < deadline:
            self.clock.sleep(self.lock_poll_seconds)
            hit = self.get(key, max_age)
            if hit is not None:
                return hit
            if self._behind(LOCKS, self.locks.held, key) is not True:
                return self.get(key, max_age)
        return None

    def _open(self, entry: CacheEntry, tier: str) -> CacheEntry:
        try:
            return self.codec.open(entry)
        except TamperedEntry:
            self.delete(entry.key)
            self.events.tampered.fire(key=entry.key, org_id=entry.org_id, tier=tier)
            raise

    def _fire_hit(self, key: str, tier: str, entry: CacheEntry, now: float) -> None:
        if self._hit_listeners:
            self.events.hit.fire(key=key, tier=tier, entry=entry, age=now - entry.created_at)

    def _breaker_changed(self, tier: str, old: str, new: str) -> None:
        log.warning("%s tier breaker: %s -> %s", tier, old, new)
        self.events.breaker_change.fire(tier=tier, old=old, new=new)
