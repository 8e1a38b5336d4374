"""Replicas' memory tiers stay coherent through the invalidation bus (real Redis pub/sub).

Two caches stand for two replicas: each its own memory tier, both on the same Redis. The
waits are bounded polls of a real background subscriber, never sleeps for expiry.
"""
from __future__ import annotations

import time

import pytest
import redis as redis_py

from wedcache.cache import TieredCache
from wedcache.coherence import InvalidationBus
from wedcache.tiers.memory import MemoryTier

from waiting import eventually

pytestmark = pytest.mark.integration

CTX = {"weddingDate": "2026-06-06", "location": "NYC", "vendorTypes": ["florist"], "weddingId": "w-1"}


@pytest.fixture
def replicas(redis_url, clock, policy):
    made = []
    for _ in range(2):
        memory = MemoryTier(eviction="lru")
        cache = TieredCache([memory], clock=clock, policy=policy)
        bus = InvalidationBus(redis_url, memory, channel=f"wedcache:test:{id(made)}")
        cache.events.invalidate.add_listener(bus.publish)
        assert bus.wait_subscribed()
        made.append((cache, memory, bus))
    yield made
    for _, _, bus in made:
        bus.close()


def test_an_invalidation_on_one_replica_empties_the_other_replicas_memory(replicas, org_id):
    (a, memory_a, _), (b, memory_b, bus_b) = replicas
    for cache in (a, b):
        cache.set(org_id, "peony florists", CTX, "answer")
        cache.set(org_id, "barn venues", {**CTX, "vendorTypes": ["venue"]}, "other")
    assert a.invalidate(org_id=org_id, wedding_id="w-1", scope="wedding", vendor_types=["florist"]) == 1
    assert eventually(lambda: memory_b.stats()["entries"] == 1)
    assert bus_b.applied == 1
    assert b.get_in_memory(org_id, "barn venues", {**CTX, "vendorTypes": ["venue"]}) is not None


def test_a_replica_whose_subscription_broke_drops_its_memory_on_reconnect(replicas, org_id, redis_url):
    (_, _, _), (b, memory_b, bus_b) = replicas
    b.set(org_id, "peony florists", CTX, "answer")
    client = redis_py.Redis.from_url(redis_url)
    try:
        client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # every subscription breaks
    finally:
        client.close()
    assert eventually(lambda: bus_b.resets == 1 and memory_b.stats()["entries"] == 0)
    assert bus_b.wait_subscribed()


def test_a_malformed_message_is_skipped_and_the_next_one_applied(replicas, redis_url, org_id):
    (a, _, _), (b, memory_b, bus_b) = replicas
    b.set(org_id, "peony florists", CTX, "answer")
    client = redis_py.Redis.from_url(redis_url)
    try:
        client.publish(bus_b.channel, b"not json")
        client.publish(bus_b.channel, b'{"from": "x", "selector": {"nope": 1}}')
    finally:
        client.close()
    a.invalidate(org_id=org_id)
    assert eventually(lambda: bus_b.applied == 1 and memory_b.stats()["entries"] == 0)


def test_two_service_replicas_a_wedding_invalidated_through_one_is_gone_from_the_other(
        services, redis_url, migrated_database_url):
    from fastapi.testclient import TestClient

    from wedcache.apikeys import ApiKeyStore
    from wedcache.config import load_settings
    from wedcache.service import create_app

    settings = load_settings(redis_url=redis_url, database_url=migrated_database_url, origin_latency_median_ms=0,
                             origin_latency_p95_ms=0, memory_size_mb=16)
    _, secret = ApiKeyStore(migrated_database_url).create(f"coherence-{time.time_ns()}", "enterprise", "admin")
    body = {"query": "peony florists", "weddingContext": {**CTX, "weddingId": f"w-{time.time_ns()}"}}
    headers = {"X-API-Key": secret}
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        for replica in (one, two):
            replica.post("/api/ai-cache/query", json=body, headers=headers)
            assert replica.post("/api/ai-cache/query", json=body, headers=headers).headers["X-Cache"] == "HIT-memory"
        removed = one.request("DELETE", "/api/ai-cache/invalidate", headers=headers,
                              json={"scope": "wedding", "weddingId": body["weddingContext"]["weddingId"]})
        assert removed.status_code == 200 and removed.json()["removed"]["memory"] == 1
        memory_two = two.app.state.wedcache.cache.memory
        assert eventually(lambda: memory_two.stats()["entries"] == 0, seconds=2.0)
        assert two.post("/api/ai-cache/query", json=body, headers=headers).headers["X-Cache"] == "MISS"
