"""Stale-while-revalidate (memory only, across tiers, on the default executor), the vendor TTL
strategy's grace and overrides, and seasonal scaling — all on a ManualClock (nobody sleeps)."""
import threading
from datetime import date, datetime, timezone

import pytest

from wedcache.cache import TieredCache
from wedcache.clock import ManualClock
from wedcache.context import parse_context
from wedcache.scaling import ScalingEvent, SeasonalScalingAutomator
from wedcache.singleflight import RedisLocks
from wedcache.tiers.memory import MemoryTier
from wedcache.tiers.redis import RedisTier
from wedcache.ttl import VendorCacheOptimizer, jittered

CTX = {"weddingDate": "2026-06-06", "location": "NYC", "vendorTypes": ["florist"]}
FLORIST_GRACE = 600  # vendors.florist.stale_while_revalidate_seconds
THREAD_WAIT = 5.0  # seconds to wait for a worker thread (never for the clock)


class Recorder:
    """A ``background=`` callable that only records tasks; the test runs them."""

    def __init__(self):
        self.tasks = []

    def __call__(self, task):
        self.tasks.append(task)

    def run_all(self):
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task()
        return len(tasks)


class Origin:
    """A compute function returning ``v1``, ``v2``, … and counting its calls."""

    def __init__(self, fail=False):
        self.calls, self.fail = 0, fail

    def __call__(self):
        self.calls += 1
        if self.fail:
            raise RuntimeError("model overloaded")
        return f"v{self.calls}"


@pytest.fixture
def background():
    return Recorder()


@pytest.fixture
def cache(clock, policy, background):
    made = TieredCache([MemoryTier(eviction="lru")], clock=clock, policy=policy, background=background)
    yield made
    made.close()


def expires_at(cache, key):
    return next(t for t in cache.tiers if t.name == "memory").get(key).expires_at


def warm(cache, clock, org_id, origin, ctx=CTX, query="peonies in June?"):
    """Store ``v1`` and return its key and expiry."""
    first = cache.get_or_compute(org_id, query, ctx, origin)
    assert (first.cached, first.value, first.stale) == (False, "v1", False)
    return first.key, expires_at(cache, first.key)


# -- stale-while-revalidate, memory only ---------------------------------------------------
def test_stale_entry_inside_grace_is_served_at_once_and_refreshed_once(cache, clock, background, org_id):
    origin, created = Origin(), clock.now()
    key, expiry = warm(cache, clock, org_id, origin)
    clock.advance(expiry - clock.now() + FLORIST_GRACE / 2)  # expired, inside the grace window

    stale = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
    assert (stale.value, stale.cached, stale.stale, stale.tier) == ("v1", True, True, "memory")
    assert stale.age_seconds == pytest.approx(clock.now() - created)
    assert origin.calls == 1 and len(background.tasks) == 1  # nothing computed inline; one refresh queued

    # more stale requests before the refresh runs: still the old value, no second refresh
    for _ in range(3):
        again = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
        assert (again.value, again.stale) == ("v1", True)
    assert len(background.tasks) == 1 and origin.calls == 1
    assert cache.stats()["stale_served"] == 4

    assert background.run_all() == 1 and origin.calls == 2
    fresh = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
    assert (fresh.value, fresh.cached, fresh.stale, fresh.age_seconds) == ("v2", True, False, 0.0)
    assert expires_at(cache, key) > clock.now()
    assert background.tasks == [] and cache.stats()["stale_served"] == 4


def test_a_new_refresh_may_start_once_the_previous_one_finished(cache, clock, background, org_id):
    origin = Origin()
    key, expiry = warm(cache, clock, org_id, origin)
    clock.advance(expiry - clock.now() + 1)
    assert cache.get_or_compute(org_id, "peonies in June?", CTX, origin).stale
    background.run_all()
    clock.advance(expires_at(cache, key) - clock.now() + 1)  # the refreshed entry expires too
    result = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
    assert (result.value, result.stale) == ("v2", True) and len(background.tasks) == 1
    background.run_all()
    assert cache.get(key).value == "v3"


def test_past_the_grace_window_the_request_computes_synchronously(cache, clock, background, org_id):
    origin = Origin()
    key, expiry = warm(cache, clock, org_id, origin)
    clock.advance(expiry - clock.now() + FLORIST_GRACE)  # exactly at the end of the window: outside
    result = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
    assert (result.value, result.cached, result.stale, result.tier) == ("v2", False, False, None)
    assert background.tasks == [] and origin.calls == 2
    stats = cache.stats()
    assert stats["stale_served"] == 0 and stats["misses"] == 2


def test_max_age_excludes_a_stale_entry_even_inside_grace(cache, clock, background, org_id):
    origin, created = Origin(), clock.now()
    key, expiry = warm(cache, clock, org_id, origin)
    clock.advance(expiry - clock.now() + FLORIST_GRACE / 2)
    too_young = (clock.now() - created) - 1  # the stale entry is older than this
    assert cache.get(key, max_age=too_young, allow_stale=True) is None
    result = cache.get_or_compute(org_id, "peonies in June?", CTX, origin, max_age=too_young)
    assert (result.value, result.cached, result.stale) == ("v2", False, False)
    assert background.tasks == [] and cache.stats()["stale_served"] == 0


def test_max_age_admits_a_stale_entry_young_enough(cache, clock, background, org_id):
    origin = Origin()
    key, expiry = warm(cache, clock, org_id, origin)
    clock.advance(expiry - clock.now() + FLORIST_GRACE / 2)
    result = cache.get_or_compute(org_id, "peonies in June?", CTX, origin, max_age=10 * 86400)
    assert (result.value, result.stale) == ("v1", True) and len(background.tasks) == 1


def test_grace_zero_never_serves_stale(clock, policy, background, org_id):
    ttl = VendorCacheOptimizer(policy, grace_seconds=0)
    cache = TieredCache([MemoryTier(eviction="lru")], clock=clock, policy=policy, ttl=ttl, background=background)
    origin = Origin()
    key, expiry = warm(cache, clock, org_id, origin)
    clock.advance(expiry - clock.now() + 1)
    assert cache.get(key, allow_stale=True) is None
    result = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
    assert (result.value, result.cached, result.stale) == ("v2", False, False)
    assert background.tasks == [] and cache.stats()["stale_served"] == 0
    cache.close()


def test_no_vendor_types_means_no_grace(cache, clock, background, org_id):
    origin = Origin()
    key, expiry = warm(cache, clock, org_id, origin, ctx={"location": "NYC"})
    clock.advance(expiry - clock.now() + 1)
    result = cache.get_or_compute(org_id, "peonies in June?", {"location": "NYC"}, origin)
    assert (result.value, result.cached) == ("v2", False) and background.tasks == []


def test_get_without_allow_stale_never_returns_a_stale_entry(cache, clock, background, org_id):
    origin = Origin()
    key, expiry = warm(cache, clock, org_id, origin)
    clock.advance(expiry - clock.now() + 1)
    assert cache.get(key) is None
    assert cache.lookup(key) is None
    assert cache.stats()["stale_served"] == 0
    stale = cache.get(key, allow_stale=True)
    assert (stale.value, stale.cached, stale.stale, stale.tier) == ("v1", True, True, "memory")
    entry, tier = cache.lookup(key, allow_stale=True)
    assert tier == "memory" and entry.expires_at <= clock.now()
    assert cache.stats()["stale_served"] == 2
    assert background.tasks == []  # get() itself never refreshes


def test_grace_seconds_of_an_entry_is_its_vendors(cache, clock, org_id):
    entry = cache.set(org_id, "q", {"vendorTypes": ["venue", "caterer"]}, "x")
    assert cache.grace_seconds(entry) == cache.policy.vendors["caterer"].stale_while_revalidate_seconds


def test_a_failing_refresh_does_not_reach_the_stale_caller_and_is_retried(cache, clock, background, org_id):
    origin = Origin()
    key, expiry = warm(cache, clock, org_id, origin)
    clock.advance(expiry - clock.now() + 1)
    origin.fail = True
    stale = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
    assert (stale.value, stale.stale) == ("v1", True)
    background.run_all()  # the refresh raises inside; nothing escapes
    assert origin.calls == 2 and cache.get(key, allow_stale=True).value == "v1"

    origin.fail = False
    retry = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
    assert (retry.value, retry.stale) == ("v1", True) and len(background.tasks) == 1  # a new refresh
    background.run_all()
    fresh = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
    assert (fresh.value, fresh.stale, fresh.cached) == ("v3", False, True)


# -- the default executor -----------------------------------------------------------------
def test_default_executor_refreshes_in_a_thread_and_close_shuts_it_down(clock, policy, org_id):
    cache = TieredCache([MemoryTier(eviction="lru")], clock=clock, policy=policy)
    stored, workers, origin = threading.Event(), [], Origin()

    def compute():
        workers.append(threading.current_thread())
        return origin()
    cache.events.store.add_listener(lambda entry, **_: stored.set())
    first = cache.get_or_compute(org_id, "peonies in June?", CTX, compute)
    stored.clear()
    clock.advance(expires_at(cache, first.key) - clock.now() + 1)

    stale = cache.get_or_compute(org_id, "peonies in June?", CTX, compute)
    assert (stale.value, stale.stale) == ("v1", True)
    assert stored.wait(THREAD_WAIT), "the background refresh never stored its value"
    assert workers[-1] is not threading.current_thread()
    assert workers[-1].name.startswith("wedcache-revalidate")
    fresh = cache.get(first.key)
    assert (fresh.value, fresh.stale) == ("v2", False)

    cache.close()
    assert not workers[-1].is_alive()  # shutdown(wait=True) joined the pool's threads
    with pytest.raises(RuntimeError):
        cache._executor.submit(lambda: None)


def test_close_without_a_refresh_starts_no_executor(clock, policy, org_id):
    cache = TieredCache([MemoryTier(eviction="lru")], clock=clock, policy=policy)
    cache.get_or_compute(org_id, "q", CTX, lambda: "x")
    cache.close()
    assert cache._executor is None


# -- across tiers, real Redis ---------------------------------------------------------------
@pytest.mark.integration
def test_stale_entry_only_in_redis_is_served_and_refreshed(clock, policy, redis_url, background, org_id):
    redis_tier = RedisTier(redis_url, clock=clock, timeout_ms=500, grace_seconds=FLORIST_GRACE)
    memory = MemoryTier(eviction="lru")
    cache = TieredCache([memory, redis_tier], clock=clock, policy=policy, locks=RedisLocks(redis_tier.client),
                        background=background)
    try:
        origin = Origin()
        first = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
        key, expiry = first.key, memory.get(first.key).expires_at
        # Redis keeps the entry for its grace window past expiry
        remaining_ms = (expiry - clock.now() + FLORIST_GRACE) * 1000
        assert redis_tier.client.pttl(key) == pytest.approx(remaining_ms, abs=1500)

        memory.clear()
        clock.advance(expiry - clock.now() + FLORIST_GRACE / 2)
        assert cache.get(key) is None  # not fresh anywhere
        stale = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
        assert (stale.value, stale.cached, stale.stale, stale.tier) == ("v1", True, True, "redis")
        assert origin.calls == 1 and len(background.tasks) == 1
        assert memory.get(key) is None  # a stale entry is not promoted
        assert cache.get_or_compute(org_id, "peonies in June?", CTX, origin).stale
        assert len(background.tasks) == 1 and cache.stats()["stale_served"] == 2

        background.run_all()
        assert origin.calls == 2
        assert not redis_tier.client.exists(RedisLocks.name(key))  # the refresh released its lock
        for tier in (memory, redis_tier):
            entry = tier.get(key)
            assert entry.value == "v2" and entry.expires_at > clock.now()
        fresh = cache.get_or_compute(org_id, "peonies in June?", CTX, origin)
        assert (fresh.value, fresh.stale, fresh.tier) == ("v2", False, "memory")
        memory.clear()
        from_redis = cache.get(key)
        assert (from_redis.value, from_redis.tier, from_redis.stale) == ("v2", "redis", False)
    finally:
        cache.invalidate(org_id=org_id)
        cache.close()


# -- VendorCacheOptimizer -------------------------------------------------------------------
def grace_of(policy, vendor):
    return policy.vendors[vendor].stale_while_revalidate_seconds


def test_grace_per_vendor_comes_from_the_policy(policy):
    ttl = VendorCacheOptimizer(policy)
    for vendor in policy.vendors:
        assert ttl.grace_seconds((vendor,)) == grace_of(policy, vendor)
    assert ttl.grace_seconds(("florist",)) == 600 and ttl.grace_seconds(("venue",)) == 7200  # default.toml


def test_grace_of_several_vendors_is_the_governing_ones(policy):
    ttl = VendorCacheOptimizer(policy)
    assert ttl.primary_vendor(("venue", "band_dj")) == "band_dj"
    assert ttl.grace_seconds(("venue", "band_dj")) == grace_of(policy, "band_dj")
    assert ttl.grace_seconds(("band_dj", "venue")) == grace_of(policy, "band_dj")
    assert ttl.grace_seconds(("officiant", "wedding_planner", "venue")) == grace_of(policy, "wedding_planner")
    assert ttl.grace_seconds(("venue", "florist")) == 600


def test_grace_without_vendors_is_zero_and_the_override_wins(policy):
    assert VendorCacheOptimizer(policy).grace_seconds(()) == 0
    override = VendorCacheOptimizer(policy, grace_seconds=42)
    assert override.grace_seconds(()) == 42
    assert override.grace_seconds(("venue",)) == 42 and override.grace_seconds(("florist", "venue")) == 42
    assert VendorCacheOptimizer(policy, grace_seconds=0).grace_seconds(("venue",)) == 0


def test_fixed_ttl_overrides_the_formula_but_max_age_caps_it(policy, clock, org_id):
    ctx = parse_context(CTX)
    fixed = VendorCacheOptimizer(policy, fixed_ttl=120)
    assert fixed.ttl_seconds(ctx, date(2026, 1, 15)) == 120
    assert fixed.ttl_seconds(ctx, date(2026, 7, 1)) == 120
    assert fixed.ttl_seconds(ctx, date(2026, 7, 1), max_age=60) == 60
    assert fixed.ttl_seconds(ctx, date(2026, 7, 1), max_age=600) == 120
    assert VendorCacheOptimizer(policy).ttl_seconds(ctx, date(2026, 7, 1)) == pytest.approx(14400 * 1.5 * 0.8)

    cache = TieredCache([MemoryTier(eviction="lru")], clock=clock, policy=policy, ttl=fixed)
    entry = cache.set(org_id, "q", CTX, "x")
    assert entry.expires_at - entry.created_at == pytest.approx(jittered(120, entry.key, policy.jitter))
    capped = cache.set(org_id, "q2", CTX, "x", max_age=30)
    assert capped.expires_at - capped.created_at == pytest.approx(jittered(30, capped.key, policy.jitter))
    cache.close()


def test_active_season_replaces_the_dates_season(policy):
    ctx = parse_context(CTX)
    ttl = VendorCacheOptimizer(policy)
    base = 14400 * 1.5  # florist x tier_1
    winter, summer = (policy.seasons[s].ttl_adjustment_factor for s in ("winter", "summer"))
    assert ttl.ttl_seconds(ctx, date(2026, 1, 15)) == pytest.approx(base * winter)
    assert ttl.ttl_seconds(ctx, date(2026, 7, 1)) == pytest.approx(base * summer)
    ttl.active_season = "summer"
    assert ttl.ttl_seconds(ctx, date(2026, 1, 15)) == pytest.approx(base * summer)
    ttl.active_season = "winter"
    assert ttl.ttl_seconds(ctx, date(2026, 7, 1)) == pytest.approx(base * winter)
    assert ttl.ttl_seconds(ctx, date(2026, 7, 1), max_age=100) == 100


# -- SeasonalScalingAutomator -------------------------------------------------------------
BASE_BYTES, BASE_ENTRIES = 64 * 1024 * 1024, 10
DAY = 86400


def at(month, day):
    return datetime(2026, month, day, 12, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def winter_clock():
    return ManualClock(datetime(2026, 1, 15, 12, tzinfo=timezone.utc))


def scaled(policy, clock, enabled=True):
    memory = MemoryTier(max_bytes=BASE_BYTES, max_entries=BASE_ENTRIES, eviction="lru")
    cache = TieredCache([memory], clock=clock, policy=policy)
    automator = SeasonalScalingAutomator(policy, clock, memory, cache.ttl, BASE_BYTES, BASE_ENTRIES, enabled)
    return cache, memory, automator


def budget(memory):
    stats = memory.stats()
    return stats["max_bytes"], stats["max_entries"]


def test_status_before_any_tick(policy, winter_clock):
    _, _, automator = scaled(policy, winter_clock)
    assert automator.status() == {"enabled": True, "season": None, "trafficMultiplier": None,
                                  "cacheSizeMultiplier": None, "ttlAdjustmentFactor": None, "events": 0}


def test_seasons_scale_memory_and_ttl(policy, winter_clock, org_id):
    clock = winter_clock
    cache, memory, automator = scaled(policy, clock)

    winter = automator.tick()
    assert winter == ScalingEvent(clock.now(), "winter", 1.0, 1.0, BASE_BYTES, BASE_ENTRIES, 0)
    assert automator.events == [winter] and budget(memory) == (BASE_BYTES, BASE_ENTRIES)
    assert cache.ttl.active_season == "winter"
    assert automator.tick() is None and len(automator.events) == 1  # same season: nothing

    clock.advance(at(6, 10) - clock.now())
    summer = automator.tick()
    assert (summer.season, summer.cache_size_multiplier, summer.ttl_adjustment_factor) == ("summer", 3.0, 0.8)
    assert (summer.at, summer.evicted) == (clock.now(), 0)
    assert (summer.memory_bytes, summer.memory_entries) == (BASE_BYTES * 3, BASE_ENTRIES * 3)
    assert budget(memory) == (BASE_BYTES * 3, BASE_ENTRIES * 3)
    assert cache.ttl.active_season == "summer"
    ctx = parse_context(CTX)
    assert cache.ttl.ttl_seconds(ctx, date(2026, 1, 15)) == pytest.approx(14400 * 1.5 * 0.8)
    entry = cache.set(org_id, "q", CTX, "x")
    assert entry.expires_at - entry.created_at == pytest.approx(jittered(14400 * 1.5 * 0.8, entry.key, policy.jitter))
    assert automator.status() == {"enabled": True, "season": "summer", "trafficMultiplier": 3.0,
                                  "cacheSizeMultiplier": 3.0, "ttlAdjustmentFactor": 0.8, "events": 2}

    clock.advance(30 * DAY)  # still summer (July)
    assert automator.tick() is None and len(automator.events) == 2
    assert budget(memory) == (BASE_BYTES * 3, BASE_ENTRIES * 3)
    assert [e.to_dict()["season"] for e in automator.events] == ["winter", "summer"]
    cache.close()


def test_shrinking_evicts_from_a_full_memory_tier(policy, winter_clock, org_id):
    clock = winter_clock
    cache, memory, automator = scaled(policy, clock)
    clock.advance(at(7, 1) - clock.now())
    automator.tick()
    full = BASE_ENTRIES * 3
    keys = [cache.set(org_id, f"question {i}", CTX, f"answer {i}").key for i in range(full)]
    assert memory.stats()["entries"] == full and memory.evictions == 0

    clock.advance(at(9, 15) - clock.now())
    fall = automator.tick()
    kept = int(BASE_ENTRIES * policy.seasons["fall"].cache_size_multiplier)
    assert (fall.season, fall.memory_entries, fall.evicted) == ("fall", kept, full - kept)
    assert memory.stats()["entries"] == kept and memory.evictions == full - kept
    assert cache.ttl.active_season == "fall"
    # least recently used went first: the newest entries survive
    assert [memory.get(k) is not None for k in keys] == [False] * (full - kept) + [True] * kept
    assert automator.status()["season"] == "fall" and automator.status()["events"] == 2
    cache.close()


def test_disabled_automator_changes_nothing(policy, winter_clock):
    clock = winter_clock
    cache, memory, automator = scaled(policy, clock, enabled=False)
    assert automator.tick() is None
    clock.advance(at(6, 10) - clock.now())
    assert automator.tick() is None
    assert automator.events == [] and automator.season is None and cache.ttl.active_season is None
    assert budget(memory) == (BASE_BYTES, BASE_ENTRIES)
    assert automator.status() == {"enabled": False, "season": None, "trafficMultiplier": None,
                                  "cacheSizeMultiplier": None, "ttlAdjustmentFactor": None, "events": 0}
    cache.close()
