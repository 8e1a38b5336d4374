"""One contract, every tier: memory, Redis (a single server and a cluster) and PostgreSQL (real servers) behave alike."""
import uuid

import pytest

from wedcache.entry import CacheEntry, Selector
from wedcache.tiers.memory import MemoryTier
from wedcache.tiers.postgres import PostgresTier
from wedcache.tiers.redis import RedisTier

pytestmark = pytest.mark.integration


@pytest.fixture(params=["memory", "redis", "redis-cluster", "postgres"])
def tier(request, clock):
    if request.param == "memory":
        made = MemoryTier(eviction="tinylfu")
    elif request.param == "redis":
        made = RedisTier(request.getfixturevalue("redis_url"), clock=clock, timeout_ms=500)
    elif request.param == "redis-cluster":
        made = RedisTier(request.getfixturevalue("redis_cluster_url"), clock=clock, timeout_ms=500)
    else:
        made = PostgresTier(request.getfixturevalue("migrated_database_url"), clock=clock, timeout_ms=2000)
    yield made
    made.close()


def make(org, n, clock, **tags):
    wedding = tags.pop("wedding_id", None)
    return CacheEntry(key=f"ai:{{{org}}}:general:{uuid.uuid4().hex}", value={"answer": f"a{n}", "n": n},
                      created_at=clock.now(), expires_at=clock.now() + 3600, org_id=org,
                      query=tags.pop("query", f"question {n}"), wedding_id=wedding, **tags)


def test_round_trip_keeps_every_field(tier, clock, org_id):
    wedding = str(uuid.uuid4())
    entry = make(org_id, 1, clock, wedding_id=wedding, market_tier="tier_1", vendor_types=("venue", "florist"),
                 cache_type="venue_search", context={"location": "NYC", "guestCount": 150})
    tier.set(entry)
    got = tier.get(entry.key)
    assert (got.key, got.value, got.org_id, got.wedding_id, got.market_tier, got.cache_type, got.query) == \
        (entry.key, entry.value, org_id, wedding, "tier_1", "venue_search", "question 1")
    assert set(got.vendor_types) == {"venue", "florist"} and got.context == entry.context
    assert got.expires_at == pytest.approx(entry.expires_at, abs=1e-3)
    assert got.created_at == pytest.approx(entry.created_at, abs=1e-3)


def test_set_replaces_and_delete_removes(tier, clock, org_id):
    entry = make(org_id, 1, clock)
    tier.set(entry)
    entry.value = {"answer": "newer"}
    tier.set(CacheEntry(**{f: getattr(entry, f) for f in ("key", "value", "created_at", "expires_at", "org_id")}))
    assert tier.get(entry.key).value == {"answer": "newer"}
    assert tier.delete(entry.key) is True
    assert tier.get(entry.key) is None and tier.delete(entry.key) is False


def test_expired_entries_are_returned_for_the_cache_to_judge(tier, clock, org_id):
    entry = make(org_id, 1, clock)
    tier.set(entry)
    clock.advance(3000)  # still inside its lifetime for the backend's garbage collector
    assert tier.get(entry.key).expires_at < clock.now() + 1000


SELECTORS = {
    "organization": lambda org, w: dict(org_id=org),
    "wedding": lambda org, w: dict(scope="wedding", org_id=org, wedding_id=w),
    "vendor_types": lambda org, w: dict(org_id=org, vendor_types=("florist", "baker")),
    "market_tiers": lambda org, w: dict(org_id=org, market_tiers=("tier_2",)),
    "cache_types": lambda org, w: dict(org_id=org, cache_types=("budget_estimate",)),
    "patterns": lambda org, w: dict(org_id=org, patterns=("barn venue*",)),
    "global": lambda org, w: dict(scope="global", patterns=(f"{org} *",)),
}


@pytest.mark.parametrize("kind", SELECTORS)
def test_invalidate_removes_exactly_what_the_selector_matches(tier, clock, org_id, kind):
    other_org, wedding = str(uuid.uuid4()), str(uuid.uuid4())
    entries = [
        make(org_id, 0, clock, wedding_id=wedding, vendor_types=("florist",), market_tier="tier_2",
             cache_type="budget_estimate", query=f"{org_id} barn venues in june"),
        make(org_id, 1, clock, vendor_types=("venue",), market_tier="tier_1", query="barn venues near austin"),
        make(org_id, 2, clock, vendor_types=("baker", "venue"), query=f"{org_id} cake tasting"),
        make(other_org, 3, clock, wedding_id=wedding, vendor_types=("florist",), market_tier="tier_2",
             cache_type="budget_estimate", query="barn venues in june"),
    ]
    for e in entries:
        tier.set(e)
    selector = Selector.build(**SELECTORS[kind](org_id, Selector.build(org_id=org_id, wedding_id=wedding).wedding_id))
    expected = {e.key for e in entries if selector.matches(e)}
    assert expected, "the scenario must select something"
    assert tier.invalidate(selector) == len(expected)
    assert {e.key for e in entries if tier.get(e.key) is None} == expected


def test_corrupt_bytes_in_redis_read_as_a_miss_and_are_removed(any_redis_url, org_id):
    from wedcache.redis_client import redis_client
    from wedcache.tiers.redis import RedisTier

    tier, client = RedisTier(any_redis_url, timeout_ms=500), redis_client(any_redis_url)
    try:
        key = f"ai:{{{org_id}}}:general:corrupt"
        client.set(key, b"\xff not an entry")
        assert tier.get(key) is None
        assert client.exists(key) == 0
    finally:
        tier.close()
        client.close()
