"""Replicas stay coherent through the coherence bus (real Redis pub/sub).

In process, two caches stand for two replicas: each its own memory tier, both on the same
Redis. Then two real ``wedcache serve`` processes (:mod:`replicas_serving`): an invalidation
through one stops the other serving the old answer within 100 ms, an answer recomputed on one
is not served from the other's old memory copy, and a scaling change reaches the other. The
waits are bounded polls of real background subscribers, never sleeps for expiry.
"""
from __future__ import annotations

import statistics
import time
import uuid

import pytest
import redis as redis_py

from wedcache.cache import TieredCache
from wedcache.coherence import CoherenceBus
from wedcache.scaling import SeasonalScalingAutomator
from wedcache.seasonal_control import SeasonalControl
from wedcache.service_bench import bench_key
from wedcache.tiers.memory import MemoryTier

from replicas_serving import INVALIDATE_PATH, SCALING_PATH, two_replicas
from waiting import eventually

pytestmark = pytest.mark.integration

CTX = {"weddingDate": "2026-06-06", "location": "NYC", "vendorTypes": ["florist"], "weddingId": "w-1"}


def publish(redis_url: str, channel: str, *messages: bytes | str) -> None:
    """Send ``messages`` on ``channel`` as another replica (or an older one) would."""
    client = redis_py.Redis.from_url(redis_url)
    try:
        for message in messages:
            client.publish(channel, message)
    finally:
        client.close()


MiB = 1024 * 1024


@pytest.fixture
def replicas(redis_url, clock, policy):
    """Two in-process replicas: (cache, memory tier, bus), wired as the service wires them."""
    made, channel = [], f"wedcache:test:{uuid.uuid4().hex}"
    for _ in range(2):
        memory = MemoryTier(eviction="lru")
        cache = TieredCache([memory], clock=clock, policy=policy)
        bus = CoherenceBus(redis_url, memory, channel=channel)
        cache.events.invalidate.add_listener(bus.publish_invalidation)
        cache.events.store.add_listener(bus.publish_overwrite)
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
    assert bus_b.applied == {"invalidate": 1}
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
    publish(redis_url, bus_b.channel, b"not json", b'{"from": "x", "selector": {"nope": 1}}',
            b'{"kind": "overwrite", "from": "x", "key": 7}', b'{"kind": "nonsense", "from": "x"}')
    a.invalidate(org_id=org_id)
    assert eventually(lambda: bus_b.applied["invalidate"] == 1 and memory_b.stats()["entries"] == 0)
    assert sum(bus_b.applied.values()) == 1


def test_a_message_without_kind_is_an_invalidation(replicas, redis_url, org_id):
    """What replicas sent before messages had kinds still applies (a rolling upgrade)."""
    (_, _, _), (b, memory_b, bus_b) = replicas
    b.set(org_id, "peony florists", CTX, "answer")
    publish(redis_url, bus_b.channel, f'{{"from": "old", "selector": {{"org_id": "{org_id}"}}}}')
    assert eventually(lambda: bus_b.applied["invalidate"] == 1 and memory_b.stats()["entries"] == 0)


def test_an_answer_computed_on_one_replica_drops_the_others_memory_copy_and_only_that(replicas, org_id):
    (a, memory_a, bus_a), (b, memory_b, bus_b) = replicas
    other = {**CTX, "vendorTypes": ["venue"]}
    b.set(org_id, "peony florists", CTX, "old answer")
    b.set(org_id, "barn venues", other, "kept")
    assert not a.get_or_compute(org_id, "peony florists", CTX, lambda: "new answer").cached
    assert eventually(lambda: bus_b.applied["overwrite"] == 1)
    assert b.get_in_memory(org_id, "peony florists", CTX) is None
    assert b.get_in_memory(org_id, "barn venues", other).value == "kept"
    assert a.get_in_memory(org_id, "peony florists", CTX).value == "new answer"  # its own message is skipped
    assert a.get_or_compute(org_id, "peony florists", CTX, lambda: "unused").cached  # a hit publishes nothing
    b.invalidate(org_id=org_id)  # a marker: once A has it, anything published before it has arrived
    assert eventually(lambda: bus_a.applied["invalidate"] == 1)
    assert bus_b.applied["overwrite"] == 1 and bus_a.applied["overwrite"] == 0


def test_a_scaling_change_on_one_replica_is_applied_once_by_the_other(redis_url, clock, policy):
    channel, made = f"wedcache:test:{uuid.uuid4().hex}", []
    try:
        for _ in range(2):
            memory, plans = MemoryTier(64 * MiB, 10_000, eviction="lru"), policy.model_copy(deep=True)
            cache = TieredCache([memory], clock=clock, policy=plans)
            control = SeasonalControl(SeasonalScalingAutomator(plans, clock, memory, cache.ttl, 64 * MiB, 10_000),
                                      plans, clock)
            bus = CoherenceBus(redis_url, memory, scaling=control, channel=channel)
            control.listeners.append(bus.publish_scaling)
            cache.events.invalidate.add_listener(bus.publish_invalidation)
            assert bus.wait_subscribed()
            made.append((cache, memory, control, bus))
        (a, _, control_a, bus_a), (b, memory_b, control_b, bus_b) = made
        # no plan without every field, none for an unknown season
        publish(redis_url, channel, b'{"kind": "scaling", "from": "x", "season": "summer"}',
                b'{"kind": "scaling", "from": "x", "season": "monsoon", "traffic_multiplier": 1, '
                b'"cache_size_multiplier": 1, "apply": true}')
        control_a.configure("summer", 2.0, 1.5, 1.0)
        assert eventually(lambda: bus_b.applied["scaling"] == 1)
        assert control_b.policy.seasons["summer"].cache_size_multiplier == 1.5 and not control_b.automator.events
        control_a.execute("summer")
        assert eventually(lambda: bus_b.applied["scaling"] == 2)
        applied = control_b.automator.events[-1]
        assert (applied.season, applied.cache_size_multiplier) == ("summer", 1.5)
        assert memory_b.stats()["max_bytes"] == int(64 * MiB * 1.5) and control_b.automator.ttl.active_season == "summer"
        b.invalidate(scope="global")  # a marker (see above): an echo of B's would reach A before it
        assert eventually(lambda: bus_a.applied["invalidate"] == 1)
        assert bus_a.applied["scaling"] == 0 and len(control_a.automator.events) == 1
    finally:
        for *_, bus in made:
            bus.close()


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
        one.post("/api/ai-cache/query", json=body, headers=headers)
        assert eventually(lambda: two.post("/api/ai-cache/query", json=body,
                                           headers=headers).headers["X-Cache"] == "HIT-memory")
        assert one.post("/api/ai-cache/query", json=body, headers=headers).headers["X-Cache"] == "HIT-memory"
        removed = one.request("DELETE", "/api/ai-cache/invalidate", headers=headers,
                              json={"scope": "wedding", "weddingId": body["weddingContext"]["weddingId"]})
        assert removed.status_code == 200 and removed.json()["removed"]["memory"] == 1
        memory_two = two.app.state.wedcache.cache.memory
        assert eventually(lambda: memory_two.stats()["entries"] == 0, seconds=2.0)
        assert two.post("/api/ai-cache/query", json=body, headers=headers).headers["X-Cache"] == "MISS"


# --- two `wedcache serve` processes -------------------------------------------------------

ROUNDS = 20
BOUND_SECONDS = 0.100
"""The issue's bound: after an invalidation through one replica, no replica serves the old value longer."""


@pytest.fixture(scope="module")
def served(services, redis_url, migrated_database_url):
    """Replicas A and B (real processes) and the secret of a fresh enterprise key."""
    _, secret = bench_key(migrated_database_url)
    with two_replicas(redis_url, migrated_database_url, secret) as (a, b):
        yield a, b


def _question(n: int) -> dict:
    return {"query": f"peony florists for a garden wedding, round {n}",
            "weddingContext": {**CTX, "weddingId": f"w-{uuid.uuid4().hex}"}}


def _held_by_both(a, b, body: dict) -> None:
    assert a.ask(body).headers["X-Cache"] == "MISS"
    b.hold_in_memory(body)
    assert a.ask(body).headers["X-Cache"] == "HIT-memory"


def test_an_invalidation_through_one_replica_stops_the_other_serving_the_old_answer_within_100_ms(served):
    """Measured from A's invalidate response while B is polled back to back, over :data:`ROUNDS`
    invalidations after one unmeasured round: no request sent to B later than 100 ms gets the
    old answer, and B's first fresh answer (a miss it computes and stores) arrives within 100 ms
    in the median round (the slowest round is printed: it holds B's own fill, not the bus)."""
    a, b = served
    rounds = []
    for n in range(ROUNDS + 1):
        body = _question(n)
        _held_by_both(a, b, body)
        removed = a.http.request("DELETE", INVALIDATE_PATH,
                                 json={"scope": "wedding", "weddingId": body["weddingContext"]["weddingId"]})
        assert removed.status_code == 200 and removed.json()["removed"]["memory"] == 1
        fresh = b.first_fresh(body)
        assert fresh.response.headers["X-Cache"] == "MISS"  # the invalidation reached every tier
        rounds.append(fresh)
    measured = [r.seconds for r in rounds[1:]]
    print(f"\ninvalidation A -> B over {ROUNDS}: first fresh answer median {statistics.median(measured) * 1000:.1f} ms, "
          f"max {max(measured) * 1000:.1f} ms; its request sent after at most "
          f"{max(r.sent_after for r in rounds[1:]) * 1000:.1f} ms; polls per round at most {max(r.polls for r in rounds)}")
    assert all(r.sent_after < BOUND_SECONDS for r in rounds[1:])
    assert statistics.median(measured) < BOUND_SECONDS


def test_an_answer_recomputed_on_one_replica_is_not_served_from_the_others_old_copy(served):
    a, b = served
    body = _question(-1)
    _held_by_both(a, b, body)
    asked = time.perf_counter()
    refreshed = a.ask({**body, "options": {"forceRefresh": True}})
    assert refreshed.headers["X-Cache"] == "MISS"
    fresh = b.first_fresh(body)
    since_refresh = time.perf_counter() - asked
    assert fresh.response.headers["X-Cache"] == "HIT-redis"
    assert fresh.response.json()["cacheAge"] <= since_refresh + 0.001  # A's new entry (cacheAge is rounded to 1 ms)
    assert fresh.sent_after < BOUND_SECONDS
    assert b.ask(body).headers["X-Cache"] == "HIT-memory"  # the new entry, promoted


def test_a_scaling_change_through_one_replica_reaches_the_other(served):
    a, b = served
    before_a, before_b = len(a.status()["lastEvents"]), len(b.status()["lastEvents"])
    size = round(1.1 + uuid.uuid4().int % 50 / 100, 2)  # a multiplier no earlier run left behind
    done = a.http.post(SCALING_PATH, json={"action": "configure", "executeImmediate": True, "seasonConfig": {
        "season": "summer", "trafficMultiplier": 2.5, "cacheSize": size, "costBudget": 1.0}})
    assert done.status_code == 200, done.text
    event = done.json()["event"]

    def reached() -> bool:
        status = b.status()
        return status["lastEvents"] and status["lastEvents"][-1]["cacheSizeMultiplier"] == size

    assert eventually(reached, seconds=2.0)
    status = b.status()
    assert status["currentSeason"] == "summer" and status["scalingFactor"] == size and status["loadFactor"] == 2.5
    assert status["lastEvents"][-1]["memoryBytes"] == event["memoryBytes"]
    assert len(status["lastEvents"]) == min(10, before_b + 1) and len(a.status()["lastEvents"]) == min(10, before_a + 1)
