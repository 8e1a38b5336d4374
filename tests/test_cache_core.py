"""TieredCache behaviour that needs no server: expiry, max age, refresh, single-flight, origin errors."""
import threading

import pytest

from wedcache.answering import WeddingAICacheService
from wedcache.cache import TieredCache
from wedcache.errors import ContextError, OriginUnavailable
from wedcache.origin import SimulatedOrigin
from wedcache.tiers.memory import MemoryTier

CTX = {"weddingDate": "2026-06-06", "location": "NYC", "vendorTypes": ["florist"]}
FLORIST_NYC_JUNE = 14400 * 1.5 * 0.8  # baseTtl x tier_1 x summer


@pytest.fixture
def cache(clock, policy):
    return TieredCache([MemoryTier(eviction="lru")], clock=clock, policy=policy)


def counting(value="answer"):
    calls = []

    def compute():
        calls.append(1)
        return value
    return compute, calls


def test_second_lookup_is_a_memory_hit(cache, org_id):
    compute, calls = counting()
    first = cache.get_or_compute(org_id, "peonies in June?", CTX, compute)
    second = cache.get_or_compute(org_id, "Peonies  in june?", CTX, compute)
    assert (first.cached, second.cached, second.tier, second.value, len(calls)) == (False, True, "memory", "answer", 1)


def test_expiry_follows_the_manual_clock(cache, clock, org_id):
    compute, calls = counting()
    cache.get_or_compute(org_id, "q", CTX, compute)
    clock.advance(FLORIST_NYC_JUNE * 0.85)  # inside the jittered TTL (jitter shaves at most 10 %)
    assert cache.get_or_compute(org_id, "q", CTX, compute).cached
    clock.advance(FLORIST_NYC_JUNE * 0.2)
    result = cache.get_or_compute(org_id, "q", CTX, compute)
    assert not result.cached and len(calls) == 2


def test_age_and_max_age(cache, clock, org_id):
    compute, calls = counting()
    cache.get_or_compute(org_id, "q", CTX, compute)
    clock.advance(120)
    assert cache.get_or_compute(org_id, "q", CTX, compute).age_seconds == pytest.approx(120)
    assert not cache.get_or_compute(org_id, "q", CTX, compute, max_age=60).cached
    assert len(calls) == 2


def test_force_refresh_recomputes(cache, org_id):
    compute, calls = counting()
    cache.get_or_compute(org_id, "q", CTX, compute)
    assert not cache.get_or_compute(org_id, "q", CTX, compute, force_refresh=True).cached
    assert len(calls) == 2


def test_fifty_threads_missing_one_key_compute_once(cache, org_id):
    release, calls = threading.Event(), []

    def slow_compute():
        calls.append(1)
        release.wait(5)
        return "shared"
    results, barrier = [], threading.Barrier(50)

    def worker():
        barrier.wait()
        results.append(cache.get_or_compute(org_id, "one key", CTX, slow_compute))
    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    while len(calls) == 0:
        pass
    threading.Timer(0.2, release.set).start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1
    assert len(results) == 50 and {r.value for r in results} == {"shared"}


def test_origin_failure_is_origin_unavailable_and_not_cached(cache, org_id):
    def broken():
        raise RuntimeError("model overloaded")
    with pytest.raises(OriginUnavailable):
        cache.get_or_compute(org_id, "q", CTX, broken)
    compute, calls = counting()
    assert not cache.get_or_compute(org_id, "q", CTX, compute).cached and len(calls) == 1


def test_bad_input_names_the_field(cache, org_id):
    compute, _ = counting()
    with pytest.raises(ContextError, match="weddingContext.guestCount"):
        cache.get_or_compute(org_id, "q", {"guestCount": -3}, compute)
    with pytest.raises(ContextError, match="cache_type"):
        cache.get_or_compute(org_id, "q", CTX, compute, cache_type="poems")


def test_service_returns_the_seed_response(cache, clock, org_id):
    origin = SimulatedOrigin(clock, latency_median_ms=1200, latency_p95_ms=2500, cost_per_call_usd=0.01)
    service = WeddingAICacheService(cache, origin.answer)
    miss = service.query(org_id, "barn venues near Austin", {"location": "Austin, TX", "vendorTypes": ["venue"]})
    hit = service.query(org_id, "barn venues near Austin", {"location": "Austin, TX", "vendorTypes": ["venue"]},
                        {"includeAnalytics": True})
    assert set(miss) == {"success", "data", "cached", "responseTime"} and miss["responseTime"] > 100
    assert hit["cached"] and hit["cacheAge"] == 0 and hit["data"] == miss["data"]
    assert hit["analytics"]["hitRate"] == 0.5 and 0 <= hit["analytics"]["performanceScore"] <= 100
    assert origin.calls == 1 and origin.cost_usd == pytest.approx(0.01)
    with pytest.raises(ContextError, match="options.maxAge"):
        service.query(org_id, "q", {}, {"maxAge": 0})


def test_origin_latency_matches_its_median_and_p95(clock):
    import numpy as np
    origin = SimulatedOrigin(clock, latency_median_ms=1200, latency_p95_ms=2500, seed=3)
    draws = np.array([origin.latency_seconds() for _ in range(20000)])
    assert np.median(draws) == pytest.approx(1.2, rel=0.03)
    assert np.percentile(draws, 95) == pytest.approx(2.5, rel=0.05)


def test_a_renewed_entry_shares_its_body_and_changes_only_the_times():
    from wedcache.entry import CacheEntry

    entry = CacheEntry("ai:{o}:general:k", {"answer": 1}, 1.0, 2.0, "o", "venue_search", "q", "w", "tier_1",
                       ("venue",), {"location": "NYC"}, 321)
    renewed = entry.renewed(10.0, 20.0)
    assert renewed == CacheEntry("ai:{o}:general:k", {"answer": 1}, 10.0, 20.0, "o", "venue_search", "q", "w",
                                 "tier_1", ("venue",), {"location": "NYC"})
    assert renewed._size == 321 and renewed is not entry and renewed.body is entry.body
    assert (renewed.org_id, renewed.query, renewed.context) == ("o", "q", {"location": "NYC"})


def test_changing_a_body_field_gives_the_entry_its_own_body():
    from wedcache.entry import CacheEntry

    entry = CacheEntry("k", {"answer": 1}, 1.0, 2.0, "o")
    renewed = entry.renewed(3.0, 4.0)
    renewed.value = {"answer": 2}
    assert entry.value == {"answer": 1} and renewed.value == {"answer": 2}
    assert renewed != entry.renewed(3.0, 4.0) and "answer" in repr(renewed)


def test_a_memory_only_cache_stores_straight_into_the_memory_tier(clock, policy):
    memory = MemoryTier(eviction="lru")
    cache = TieredCache([memory], clock=clock, policy=policy)
    cache.set("acme", "q", CTX, "a")
    assert memory.stats()["entries"] == 1 and cache.stats()["tiers"]["memory"]["entries"] == 1


def test_answer_from_memory_answers_only_fresh_memory_hits_and_counts_them_once(cache, clock, org_id):
    service = WeddingAICacheService(cache, SimulatedOrigin(clock, latency_median_ms=0, latency_p95_ms=0).answer)
    assert service.answer_from_memory(org_id, "barn venues", CTX) is None  # a miss: answer() must run
    assert cache.requests == 0
    first = service.answer(org_id, "barn venues", CTX)
    hit = service.answer_from_memory(org_id, "barn venues", CTX)
    assert hit.x_cache == "HIT-memory" and hit.body["data"] == first.body["data"] and hit.body["cached"] is True
    assert (cache.requests, cache.hits) == (2, 1)
    assert service.answer_from_memory(org_id, "barn venues", CTX, {"forceRefresh": True}) is None
    clock.advance(FLORIST_NYC_JUNE + 1)  # expired (a grace-window answer needs a refresh: not this path)
    assert service.answer_from_memory(org_id, "barn venues", CTX) is None
    with pytest.raises(ContextError, match="weddingContext.guestCount"):
        service.answer_from_memory(org_id, "barn venues", {**CTX, "guestCount": -3})
