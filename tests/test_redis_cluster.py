"""Redis Cluster as L2: the client factory, the Redis tier, locks, rate limits and pub/sub on a
real 3-master loopback cluster (:func:`redis_cluster_url`), and ``services up --redis-cluster``.
A cluster that is down when the client is built (a free loopback port): the client is lazy, the
service answers from its other tiers and takes the cluster up once a node answers there.

The tier contract itself runs over the cluster in ``test_tier_contract.py``.
"""
from __future__ import annotations

import json
import uuid

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster
from typer.testing import CliRunner

from wedcache import services as svc
from wedcache.cache import TieredCache
from wedcache.clock import ManualClock
from wedcache.coherence import CoherenceBus
from wedcache.config import load_settings
from wedcache.entry import CacheEntry, Selector
from wedcache.errors import ConfigError
from wedcache.ratelimit import RateLimiter
from wedcache.redis_client import (LazyRedisCluster, cluster_nodes, cluster_url, is_cluster, is_cluster_url,
                                   redis_client, redis_url_from_env)
from wedcache.services.cluster import LocalRedisCluster, cluster_port
from wedcache.singleflight import RedisLocks
from wedcache.tiers import tier_from_url
from wedcache.tiers.memory import MemoryTier
from wedcache.tiers.redis import RedisTier, index_keys

from waiting import eventually

pytestmark = pytest.mark.integration

CTX = {"weddingDate": "2026-06-06", "location": "NYC", "vendorTypes": ["florist"], "weddingId": "w-1"}


@pytest.fixture
def tier(redis_cluster_url, clock):
    made = RedisTier(redis_cluster_url, clock=clock, timeout_ms=500)
    yield made
    made.close()


def make(org, n, clock, **tags):
    return CacheEntry(key=f"ai:{{{org}}}:general:{uuid.uuid4().hex}", value={"n": n}, created_at=clock.now(),
                      expires_at=clock.now() + 3600, org_id=org, query=f"question {n}", **tags)


# --- URLs and settings ------------------------------------------------------------------

def test_cluster_urls_and_the_nodes_variable():
    assert is_cluster_url("redis+cluster://a:1") and is_cluster_url("rediss+cluster://a:1")
    assert not is_cluster_url("redis://127.0.0.1:6379/0") and not is_cluster_url(None)
    assert cluster_url("127.0.0.1:7000, 127.0.0.1:7001") == "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"
    assert cluster_nodes("redis+cluster://u:p@h1:1,h2:2/0?socket_timeout=1") == [("h1", 1), ("h2", 2)]
    assert redis_url_from_env({"AI_CACHE_REDIS_CLUSTER_NODES": "h:1"}) == "redis+cluster://h:1"
    assert redis_url_from_env({"AI_CACHE_REDIS_URL": "redis://x:1/0"}) == "redis://x:1/0"
    with pytest.raises(ValueError, match="host:port"):
        cluster_url("nohost")
    assert load_settings({"AI_CACHE_REDIS_CLUSTER_NODES": "h:1,h:2"}).redis_url == "redis+cluster://h:1,h:2"
    with pytest.raises(ConfigError, match="AI_CACHE_REDIS_CLUSTER_NODES"):
        load_settings({"AI_CACHE_REDIS_CLUSTER_NODES": "h"})
    with pytest.raises(ConfigError, match="not both"):
        load_settings({"AI_CACHE_REDIS_CLUSTER_NODES": "h:1", "AI_CACHE_REDIS_URL": "redis://h:1/0"})


def test_a_plain_url_still_gets_a_plain_client(redis_url):
    client = redis_client(redis_url)
    try:
        assert type(client) is redis.Redis and client.ping()
    finally:
        client.close()


def test_the_factory_and_tier_from_url_make_cluster_clients(redis_cluster_url, clock):
    client = redis_client(redis_cluster_url, socket_timeout=1)
    try:
        assert isinstance(client, RedisCluster) and len(client.get_primaries()) == 3
    finally:
        client.close()
    tier = tier_from_url(redis_cluster_url, clock=clock)
    try:
        assert isinstance(tier, RedisTier) and tier.cluster and tier.ping()
    finally:
        tier.close()
    # one startup node is enough: the client discovers the others
    one = redis_cluster_url.split(",")[0]
    assert svc.redis_answers(one)


# --- the tier -----------------------------------------------------------------------------

def test_an_organizations_entries_index_sets_and_locks_share_one_slot(tier, clock, org_id):
    entry = make(org_id, 1, clock, wedding_id=str(uuid.uuid4()), vendor_types=("florist", "venue"))
    names = [entry.key, RedisLocks.name(entry.key), *index_keys(entry)]
    assert len({tier.client.keyslot(name) for name in names}) == 1
    other = make(str(uuid.uuid4()), 2, clock)
    slots = {tier.client.keyslot(e.key) for e in [entry, other] + [make(str(uuid.uuid4()), n, clock) for n in range(8)]}
    assert len(slots) > 1  # organizations spread over the cluster


def test_invalidation_reads_index_sets_and_never_scans_any_node(tier, clock, org_id):
    entries = [make(org_id, n, clock, vendor_types=("florist",) if n % 2 else ("venue",)) for n in range(20)]
    for e in entries:
        tier.set(e)

    def scans() -> int:
        stats = tier.client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        return sum(node.get(f"cmdstat_{c}", {}).get("calls", 0) for node in stats.values() for c in ("scan", "keys"))

    before = scans()
    assert tier.invalidate(Selector.build(org_id=org_id, vendor_types=("florist",))) == 10
    assert tier.invalidate(Selector.build(org_id=org_id)) == 10
    assert scans() == before
    assert all(tier.get(e.key) is None for e in entries)


def test_listing_and_stats_on_the_cluster(tier, clock, org_id):
    entries = [make(org_id, n, clock) for n in range(7)]
    for e in entries:
        tier.set(e)
    assert {e.key for e in tier.entries(org_id, chunk=3)} == {e.key for e in entries}
    stats = tier.stats()
    assert stats["entries"] >= 7 and stats["bytes"] > 0


def test_tiered_cache_with_cluster_locks_computes_once_and_a_peer_reads_it(redis_cluster_url, clock, policy, org_id):
    tier_a = RedisTier(redis_cluster_url, clock=clock, timeout_ms=500)
    tier_b = RedisTier(redis_cluster_url, clock=clock, timeout_ms=500)
    a = TieredCache([MemoryTier(eviction="lru"), tier_a], clock=clock, policy=policy, locks=RedisLocks(tier_a.client))
    b = TieredCache([MemoryTier(eviction="lru"), tier_b], clock=clock, policy=policy, locks=RedisLocks(tier_b.client))
    try:
        calls = []
        first = a.get_or_compute(org_id, "peony florists", CTX, lambda: calls.append(1) or {"answer": "x"})
        second = b.get_or_compute(org_id, "peony florists", CTX, lambda: calls.append(1) or {"answer": "y"})
        assert calls == [1] and not first.cached and second.cached and second.tier == "redis"
        locks = RedisLocks(tier_a.client, timeout_seconds=5)
        token = locks.acquire(first.key)
        assert token and locks.acquire(first.key) is None and locks.held(first.key)
        assert locks.release(first.key, token) and not locks.held(first.key)
        assert a.invalidate(org_id=org_id) >= 1
        assert tier_b.get(first.key) is None
    finally:
        a.close()
        b.close()


# --- rate limits and pub/sub -------------------------------------------------------------

def test_rate_limits_are_shared_through_the_cluster(redis_cluster_url, clock):
    clients = [redis_client(redis_cluster_url, socket_timeout=1) for _ in range(2)]
    try:
        limiters = [RateLimiter({"basic": 10}, 60.0, clock=clock, redis_client=c) for c in clients]
        subject = f"key-{uuid.uuid4()}"
        allowed = [limiters[n % 2].check(subject, "basic").allowed for n in range(12)]
        assert allowed == [True] * 10 + [False] * 2 and all(rl.shared for rl in limiters)
    finally:
        for c in clients:
            c.close()


def test_invalidations_reach_the_other_replica_through_cluster_pubsub(redis_cluster_url, clock, policy, org_id):
    made, channel = [], f"wedcache:test:cluster:{uuid.uuid4().hex}"
    try:
        for _ in range(2):
            memory = MemoryTier(eviction="lru")
            cache = TieredCache([memory], clock=clock, policy=policy)
            made.append((cache, memory, CoherenceBus(redis_cluster_url, memory, channel=channel)))
        for cache, _, bus in made:
            cache.events.invalidate.add_listener(bus.publish_invalidation)
            assert bus.wait_subscribed()
        (a, _, _), (b, memory_b, bus_b) = made
        for cache in (a, b):
            cache.set(org_id, "peony florists", CTX, "answer")
        assert a.invalidate(org_id=org_id) == 1
        assert eventually(lambda: memory_b.stats()["entries"] == 0) and bus_b.applied == {"invalidate": 1}
    finally:
        for _, _, bus in made:
            bus.close()


# --- a cluster that is down at start-up --------------------------------------------------------

@pytest.fixture
def down_cluster(tmp_path):
    """A 1-master cluster on a free port, not started: ``(url, cluster)``; stopped after the test."""
    cluster = LocalRedisCluster(tmp_path, 1, ports=[cluster_port()])
    yield cluster.url, cluster
    cluster.stop()


def test_a_cluster_client_built_while_the_cluster_is_down_connects_once_a_node_answers(down_cluster):
    url, cluster = down_cluster
    clock = ManualClock()
    client = redis_client(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    lazy = LazyRedisCluster(startup_nodes=[ClusterNode("127.0.0.1", cluster.ports[0])], clock=clock,
                            reconnect_seconds=1.0, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        assert isinstance(client, RedisCluster) and is_cluster(client) and not client.connected
        script = lazy.register_script("return 1")  # needs no server
        pipe = lazy.pipeline(transaction=False).set("a", 1).get("a")
        for attempt in (lambda: lazy.ping(), pipe.execute, script):
            with pytest.raises(redis.ConnectionError, match="Redis Cluster"):
                attempt()
        cluster.start()
        with pytest.raises(redis.ConnectionError, match="did not answer"):
            lazy.ping()  # no new attempt within reconnect_seconds
        clock.advance(1.0)
        assert lazy.ping() and script() == 1 and lazy.connected
        assert client.ping() and client.connected  # the default clock: its first attempt is now
    finally:
        lazy.close()
        client.close()


def test_a_service_started_with_the_cluster_down_answers_and_takes_the_cluster_up_later(
        down_cluster, services, migrated_database_url):
    from fastapi.testclient import TestClient

    from wedcache.apikeys import ApiKeyStore
    from wedcache.service import create_app

    url, cluster = down_cluster
    settings = load_settings(redis_url=url, database_url=migrated_database_url, origin_latency_median_ms=0,
                             origin_latency_p95_ms=0, memory_size_mb=16, breaker_reset_seconds=0.1)
    _, secret = ApiKeyStore(migrated_database_url).create(f"cluster-down-{uuid.uuid4()}", "enterprise", "admin")
    headers = {"X-API-Key": secret}

    def ask(n: int):
        body = {"query": f"peony florists {n}", "weddingContext": CTX}
        return app.post("/api/ai-cache/query", json=body, headers=headers)

    with TestClient(create_app(settings)) as app:
        state = app.app.state.wedcache
        assert state.redis_url == url
        first = ask(0)
        assert first.status_code == 200 and first.headers["X-Cache"] == "MISS"  # from the origin
        assert ask(0).headers["X-Cache"] == "HIT-memory"
        state.cache.memory.clear()
        assert ask(0).headers["X-Cache"] == "HIT-postgres"
        cluster.start()
        rounds = iter(range(1, 1000))

        def redis_answers_again() -> bool:
            n = next(rounds)
            ask(n)
            state.cache.memory.clear()
            return ask(n).headers["X-Cache"] == "HIT-redis"

        assert eventually(redis_answers_again, seconds=10.0)


# --- the throwaway cluster -----------------------------------------------------------------

def test_services_up_with_a_cluster_reuses_it_and_down_stops_it(tmp_path, services, monkeypatch):
    from wedcache.cli import app

    monkeypatch.setenv(svc.DATABASE_ENV, services.database_url)
    monkeypatch.delenv(svc.REDIS_ENV, raising=False)
    monkeypatch.delenv(svc.CLUSTER_NODES_ENV, raising=False)
    runner = CliRunner()
    up = runner.invoke(app, ["services", "up", "--redis-cluster", "2", "--state-dir", str(tmp_path)])
    assert up.exit_code == 0, up.output
    url = up.stdout.strip().splitlines()[-1].split("AI_CACHE_REDIS_URL=")[1].split()[0].strip("'")
    assert is_cluster_url(url) and len(cluster_nodes(url)) == 2 and svc.redis_answers(url)
    again = svc.ensure_services(tmp_path, redis_cluster=2)
    assert again.redis_url == url and again.redis_source == "local"
    record = json.loads((tmp_path / "services.json").read_text())["redis-cluster"]
    assert record["masters"] == 2 and len(record["pids"]) == 2
    status = runner.invoke(app, ["services", "status", "--json", "--state-dir", str(tmp_path)])
    assert json.loads(status.stdout)["redis-cluster"][0]["answers"] is True
    down = runner.invoke(app, ["services", "down", "--state-dir", str(tmp_path)])
    assert down.exit_code == 0 and "redis-cluster" in down.stdout
    assert not svc.redis_answers(url)
