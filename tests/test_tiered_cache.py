"""TieredCache against real Redis and PostgreSQL: promotion, write-through, invalidation,
single-flight across processes, and fail-open when a server stops mid-test."""
import multiprocessing as mp
import time

import pytest
import redis

from wedcache.cache import TieredCache
from wedcache.clock import SystemClock
from wedcache.migrations import apply_migrations
from wedcache.singleflight import RedisLocks
from wedcache.tiers.memory import MemoryTier
from wedcache.tiers.postgres import PostgresTier
from wedcache.tiers.redis import RedisTier

pytestmark = pytest.mark.integration
CTX = {"weddingDate": "2026-06-06", "location": "Chicago, IL", "vendorTypes": ["caterer"], "weddingId": "w-42"}


def build(clock, redis_url, database_url, **kw):
    r = RedisTier(redis_url, clock=clock, timeout_ms=kw.pop("redis_timeout_ms", 500))
    pg = PostgresTier(database_url, clock=clock, timeout_ms=kw.pop("pg_timeout_ms", 2000))
    return TieredCache([MemoryTier(eviction="lru"), r, pg], clock=clock, locks=RedisLocks(r.client), **kw)


@pytest.fixture
def cache(clock, redis_url, migrated_database_url):
    made = build(clock, redis_url, migrated_database_url)
    yield made
    made.close()


def tiers(cache):
    return {t.name: t for t in cache.tiers}


def test_miss_writes_through_to_every_tier(cache, org_id):
    result = cache.get_or_compute(org_id, "menu ideas", CTX, lambda: {"answer": "tacos"})
    assert not result.cached
    for name, tier in tiers(cache).items():
        assert tier.get(result.key).value == {"answer": "tacos"}, name


def test_lower_tier_hit_is_promoted_with_its_remaining_ttl(cache, clock, org_id):
    first = cache.get_or_compute(org_id, "menu ideas", CTX, lambda: "tacos")
    t = tiers(cache)
    expires = t["postgres"].get(first.key).expires_at
    t["memory"].delete(first.key)
    t["redis"].delete(first.key)
    clock.advance(1000)
    hit = cache.get_or_compute(org_id, "menu ideas", CTX, lambda: pytest.fail("must not recompute"))
    assert (hit.tier, hit.value) == ("postgres", "tacos") and hit.age_seconds == pytest.approx(1000, abs=0.01)
    assert t["memory"].get(first.key).expires_at == pytest.approx(expires, abs=1e-3)
    assert t["redis"].get(first.key).expires_at == pytest.approx(expires, abs=1e-3)
    remaining_ms = (expires - clock.now()) * 1000
    assert t["redis"].client.pttl(first.key) == pytest.approx(remaining_ms, abs=1500)
    t["memory"].delete(first.key)
    assert cache.get(first.key).tier == "redis"


def test_expired_everywhere_is_recomputed(cache, clock, org_id):
    calls = []
    cache.get_or_compute(org_id, "menu ideas", CTX, lambda: calls.append(1) or "v1")
    clock.advance(7 * 86400)
    assert not cache.get_or_compute(org_id, "menu ideas", CTX, lambda: calls.append(1) or "v2").cached
    assert len(calls) == 2


@pytest.mark.parametrize("selector", [
    dict(), dict(scope="wedding", wedding_id="w-42"), dict(vendor_types=["caterer"]),
    dict(market_tiers=["tier_2"]), dict(cache_types=["general"]), dict(patterns=["menu*"]),
])
def test_invalidation_removes_from_all_three_tiers(cache, org_id, selector):
    result = cache.get_or_compute(org_id, "menu ideas", CTX, lambda: "tacos")
    cache.get_or_compute(org_id, "flower ideas", {"vendorTypes": ["florist"]}, lambda: "peonies")
    per_tier = cache.invalidate_per_tier(org_id=org_id, **selector)
    expected = 2 if not selector or selector == dict(cache_types=["general"]) else 1
    assert per_tier == {"memory": expected, "redis": expected, "postgres": expected}
    assert all(t.get(result.key) is None for t in cache.tiers)


def test_invalidation_never_scans_the_keyspace(local_redis, clock, migrated_database_url, org_id):
    server = local_redis()
    cache = build(clock, server.url, migrated_database_url)
    for i in range(20):
        cache.get_or_compute(org_id, f"question {i}", CTX, lambda: "x")
    assert cache.invalidate(org_id=org_id, vendor_types=["caterer"]) == 60
    stats = redis.Redis.from_url(server.url).info("commandstats")
    assert not any(name in stats for name in ("cmdstat_scan", "cmdstat_keys"))
    cache.close()


def _compete(redis_url, database_url, org_id, start, counter_key, results):
    r = redis.Redis.from_url(redis_url)
    cache = build(SystemClock(), redis_url, database_url, lock_poll_seconds=0.02)

    def compute():
        r.incr(counter_key)
        time.sleep(1.0)
        return "computed once"
    start.wait(10)
    results.put(cache.get_or_compute(org_id, "shared question", CTX, compute).value)
    cache.close()


def test_two_processes_missing_one_key_compute_once(redis_url, migrated_database_url, org_id):
    ctx = mp.get_context("spawn")
    start, results, counter = ctx.Event(), ctx.Queue(), f"test:computes:{org_id}"
    procs = [ctx.Process(target=_compete, args=(redis_url, migrated_database_url, org_id, start, counter, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(1.5)  # both processes imported and built their caches
    start.set()
    values = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
    assert values == ["computed once", "computed once"]
    assert int(redis.Redis.from_url(redis_url).get(counter)) == 1


def _breaker(cache, tier):
    return cache.stats()["tiers"][tier]["breaker"]["state"]


def test_redis_stopped_mid_test_fails_open_and_recovers(local_redis, clock, migrated_database_url, org_id):
    server = local_redis()
    cache = build(clock, server.url, migrated_database_url, redis_timeout_ms=100, breaker_failures=3,
                  breaker_reset_seconds=5)
    cache.get_or_compute(org_id, "warm question", CTX, lambda: "warm")
    server.stop()
    tiers(cache)["memory"].clear()
    assert cache.get_or_compute(org_id, "warm question", CTX, lambda: "recomputed").tier == "postgres"
    answers = [cache.get_or_compute(org_id, f"new {i}", CTX, lambda: "fresh").value for i in range(5)]
    assert answers == ["fresh"] * 5 and _breaker(cache, "redis") == "open"
    server.start()
    clock.advance(6)
    cache.get_or_compute(org_id, "after restart", CTX, lambda: "back")
    assert _breaker(cache, "redis") == "closed"
    assert cache.get_or_compute(org_id, "after restart", CTX, lambda: "again").cached
    cache.close()


def test_postgres_stopped_mid_test_fails_open_and_recovers(local_postgres, clock, redis_url, org_id):
    server = local_postgres()
    apply_migrations(server.url)
    cache = build(clock, redis_url, server.url, pg_timeout_ms=300, breaker_failures=3, breaker_reset_seconds=5)
    cache.get_or_compute(org_id, "warm question", CTX, lambda: "warm")
    server.stop()
    answers = [cache.get_or_compute(org_id, f"new {i}", CTX, lambda: "fresh").value for i in range(5)]
    assert answers == ["fresh"] * 5 and _breaker(cache, "postgres") == "open"
    tiers(cache)["memory"].clear()
    assert cache.get_or_compute(org_id, "warm question", CTX, lambda: "recomputed").tier == "redis"
    server.start()
    tiers(cache)["postgres"].wait_ready()  # the pool reconnects in the background (real time)
    clock.advance(6)
    result = cache.get_or_compute(org_id, "after restart", CTX, lambda: "back")
    assert _breaker(cache, "postgres") == "closed"
    assert tiers(cache)["postgres"].get(result.key).value == "back"
    cache.close()


def test_build_cache_assembles_the_three_tiers_from_settings(redis_url, migrated_database_url, clock, org_id):
    from wedcache.assembly import build_cache, build_service
    from wedcache.config import load_settings

    cache = build_cache(load_settings({"AI_CACHE_EVICTION": "lru"}), clock=clock, redis_url=redis_url,
                        database_url=migrated_database_url)
    service = build_service(cache)
    assert [t.name for t in cache.tiers] == ["memory", "redis", "postgres"] and cache.locks is not None
    first = service.query(org_id, "string quartet for the ceremony?", {"vendorTypes": ["band_dj"]})
    second = service.query(org_id, "String quartet for the ceremony?", {"vendorTypes": ["band_dj"]})
    assert (first["cached"], second["cached"], second["data"]) == (False, True, first["data"])
    cache.close()


def test_a_slow_redis_is_skipped_not_waited_for(local_redis, clock, migrated_database_url, org_id):
    """Redis stalls (DEBUG SLEEP) longer than the tier timeout: answers come from PostgreSQL."""
    import threading

    server = local_redis()
    cache = build(clock, server.url, migrated_database_url, redis_timeout_ms=100, breaker_failures=2)
    stored = cache.get_or_compute(org_id, "slow day question", CTX, lambda: "from before")
    tiers(cache)["memory"].clear()
    stall = threading.Thread(target=redis.Redis.from_url(server.url).execute_command, args=("DEBUG", "SLEEP", "1.5"))
    stall.start()
    time.sleep(0.1)
    hits = [cache.get(stored.key) for _ in range(3)]
    answered_during_stall = stall.is_alive()  # the answers did not wait for Redis to wake up
    stall.join()
    assert answered_during_stall
    assert [h.tier for h in hits] == ["postgres", "memory", "memory"]
    # the read and the promotion both timed out: two errors open a breaker set to two
    assert cache.stats()["tiers"]["redis"]["errors"] == 2 and _breaker(cache, "redis") == "open"
    cache.close()
