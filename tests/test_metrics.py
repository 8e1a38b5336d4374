"""Service metrics: Prometheus series (one and several processes), batched metric rows, statistics."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from waiting import wait_until
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from wedcache import services as svc
from wedcache.errors import ContextError
from wedcache.metrics import MULTIPROC_DIR_ENV, MetricRow, MetricsBuffer, ServiceMetrics, render_metrics
from wedcache.migrations import apply_migrations
from wedcache.statistics import DEFAULT_SEASONAL, cache_statistics

NOW = datetime(2026, 6, 6, 12, tzinfo=timezone.utc).timestamp()


def samples(body: bytes) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition as ``(name, labels) -> value``."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def labels(**items: str) -> frozenset:
    return frozenset(items.items())


def make_row(org_id: str, *, at: float = NOW, tier: str | None = "memory", ms: float = 1.0,
             market_tier: str = "tier_1", vendor_type: str | None = "venue", key: str = "k") -> MetricRow:
    return MetricRow(org_id, at, key, tier, tier is not None, ms, market_tier, vendor_type, "summer")


# -- Prometheus ------------------------------------------------------------------------------
def test_series_carry_their_labels_after_observations():
    metrics = ServiceMetrics()
    metrics.observe_request(tier="memory", market_tier="tier_1", vendor_type="venue", response_ms=0.4)
    metrics.observe_request(tier="redis", market_tier="tier_1", vendor_type="venue", response_ms=3.0)
    metrics.observe_request(tier=None, market_tier="tier_2", vendor_type=None, response_ms=1200.0)
    metrics.set_memory(used_bytes=300, limit_bytes=1000)
    metrics.set_load_factor(2.5)
    metrics.count_error("CACHE_003")
    body, content_type = metrics.render()
    got = samples(body)
    assert content_type.startswith("text/plain")
    assert got["ai_cache_requests_total", labels(market_tier="tier_1", vendor_type="venue")] == 2
    assert got["ai_cache_requests_total", labels(market_tier="tier_2", vendor_type="none")] == 1
    assert got["ai_cache_hits_total", labels(tier="memory", market_tier="tier_1", vendor_type="venue")] == 1
    assert got["ai_cache_hits_total", labels(tier="redis", market_tier="tier_1", vendor_type="venue")] == 1
    assert not any(name == "ai_cache_hits_total" and ("market_tier", "tier_2") in key for name, key in got)
    assert got["ai_cache_response_time_ms_bucket", labels(tier="memory", le="0.5")] == 1
    assert got["ai_cache_response_time_ms_bucket", labels(tier="origin", le="1000.0")] == 0
    assert got["ai_cache_response_time_ms_count", labels(tier="origin")] == 1
    assert got["ai_cache_seasonal_load_factor", labels()] == 2.5
    assert got["ai_cache_memory_usage_bytes", labels()] == 300
    assert got["ai_cache_memory_limit_bytes", labels()] == 1000
    assert got["ai_cache_errors_total", labels(code="CACHE_003")] == 1


def test_instances_have_registries_of_their_own():
    first, second = ServiceMetrics(), ServiceMetrics()
    first.observe_request(tier="memory", market_tier="tier_3", vendor_type="florist", response_ms=1.0)
    got = samples(second.render()[0])
    assert ("ai_cache_requests_total", labels(market_tier="tier_3", vendor_type="florist")) not in got


WORKER = textwrap.dedent("""
    import sys
    from wedcache.metrics import ServiceMetrics
    requests, used, factor, stop = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "stop"
    metrics = ServiceMetrics()
    for _ in range(requests):
        metrics.observe_request(tier="memory", market_tier="tier_1", vendor_type="venue", response_ms=2.0)
    metrics.observe_request(tier=None, market_tier="tier_1", vendor_type="venue", response_ms=900.0)
    metrics.set_memory(used, 1000)
    metrics.set_load_factor(factor)
    if stop:
        metrics.close()
""")


def run_worker(directory, *args) -> None:
    env = {**os.environ, MULTIPROC_DIR_ENV: str(directory)}
    subprocess.run([sys.executable, "-c", WORKER, *map(str, args)], env=env, check=True, timeout=60)


def test_multiprocess_mode_adds_up_every_workers_series(tmp_path, monkeypatch):
    run_worker(tmp_path, 3, 200, 1.5, "running")
    run_worker(tmp_path, 4, 300, 2.0, "running")
    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(tmp_path))
    got = samples(render_metrics()[0])
    assert got["ai_cache_requests_total", labels(market_tier="tier_1", vendor_type="venue")] == 9
    assert got["ai_cache_hits_total", labels(tier="memory", market_tier="tier_1", vendor_type="venue")] == 7
    assert got["ai_cache_response_time_ms_count", labels(tier="origin")] == 2
    assert got["ai_cache_memory_usage_bytes", labels()] == 500
    assert got["ai_cache_memory_limit_bytes", labels()] == 2000
    assert got["ai_cache_seasonal_load_factor", labels()] == 2.0


def test_a_stopped_worker_keeps_its_counts_but_not_its_gauges(tmp_path, monkeypatch):
    run_worker(tmp_path, 3, 200, 1.5, "running")
    run_worker(tmp_path, 4, 300, 2.0, "stop")
    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(tmp_path))
    got = samples(ServiceMetrics().render()[0])
    assert got["ai_cache_requests_total", labels(market_tier="tier_1", vendor_type="venue")] == 9
    assert got["ai_cache_memory_usage_bytes", labels()] == 200
    assert got["ai_cache_seasonal_load_factor", labels()] == 1.5


# -- MetricsBuffer against the real PostgreSQL --------------------------------------------------
def stored(url: str, org_id: str) -> list[tuple]:
    """``(transaction id, cache_key, metric_type, metric_value, response_time_ms, tier, vendor_type, season)`` rows."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT xmin::text, cache_key, metric_type::text, metric_value::float8, response_time_ms, tier, "
            "vendor_type::text, season::text FROM ai_cache_performance_metrics WHERE organization_id = %s "
            "ORDER BY recorded_at, cache_key", (org_id,)).fetchall()


@pytest.mark.integration
def test_record_buffers_and_flush_writes_one_batch_with_its_organization(migrated_database_url, org_id):
    buffer = MetricsBuffer(migrated_database_url, batch_size=500, flush_interval=3600)
    try:
        buffer.record(make_row(org_id, tier="redis", ms=3.6, key="a"))
        buffer.record(make_row(org_id, at=NOW + 1, tier=None, ms=1200.4, vendor_type=None, key="b"))
        assert stored(migrated_database_url, org_id) == []
        assert buffer.pending == 2
        assert buffer.flush() == 2
    finally:
        buffer.close()
    rows = stored(migrated_database_url, org_id)
    assert [row[1:] for row in rows] == [("a", "hit", 3.6, 4, "redis", "venue", "summer"),
                                         ("b", "miss", 1200.4, 1200, None, None, "summer")]
    assert len({xid for xid, *_ in rows}) == 1
    with psycopg.connect(migrated_database_url) as conn:
        assert conn.execute("SELECT count(*) FROM organizations WHERE id = %s", (org_id,)).fetchone()[0] == 1


@pytest.mark.integration
def test_flush_writes_batches_of_batch_size(migrated_database_url, org_id):
    buffer = MetricsBuffer(migrated_database_url, batch_size=500, flush_interval=3600)
    try:
        for i in range(1200):
            buffer.record(make_row(org_id, at=NOW + i, key=f"k{i}"))
        buffer.flush()
    finally:
        buffer.close()
    rows = stored(migrated_database_url, org_id)
    per_transaction = {}
    for xid, *_ in rows:
        per_transaction[xid] = per_transaction.get(xid, 0) + 1
    assert len(rows) == 1200
    assert 3 <= len(per_transaction) == buffer.batches
    assert max(per_transaction.values()) <= 500


@pytest.mark.integration
def test_the_writer_flushes_by_size_and_by_age(migrated_database_url, org_id):
    by_size = MetricsBuffer(migrated_database_url, batch_size=10, flush_interval=3600)
    by_age = MetricsBuffer(migrated_database_url, batch_size=1000, flush_interval=0.05)
    try:
        for i in range(10):
            by_size.record(make_row(org_id, at=NOW + i, key=f"size{i}"))
        by_age.record(make_row(org_id, key="age"))
        wait_until(lambda: by_size.written == 10 and by_age.written == 1)
    finally:
        by_size.close()
        by_age.close()
    assert len(stored(migrated_database_url, org_id)) == 11


@pytest.mark.integration
def test_a_batch_the_database_rejects_is_dropped_and_the_next_one_written(migrated_database_url, org_id, caplog):
    caplog.set_level(logging.ERROR, logger="wedcache.metrics")
    buffer = MetricsBuffer(migrated_database_url, batch_size=1, flush_interval=3600)
    try:
        buffer.record(make_row(org_id, market_tier="tier_9", key="bad"))
        buffer.record(make_row(org_id, key="good"))
        buffer.flush()
    finally:
        buffer.close()
    assert [row[1] for row in stored(migrated_database_url, org_id)] == ["good"]
    assert (buffer.written, buffer.dropped) == (1, 1)
    assert any("dropped" in r.getMessage() for r in caplog.records if r.name == "wedcache.metrics")


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.integration
def test_a_down_database_never_reaches_the_request_path(org_id, caplog):
    caplog.set_level(logging.WARNING, logger="wedcache.metrics")
    buffer = MetricsBuffer(f"postgresql://wedcache@127.0.0.1:{unused_port()}/wedcache", batch_size=1000,
                           flush_interval=3600, max_rows=100, timeout=0.2)
    try:
        for i in range(250):
            buffer.record(make_row(org_id, key=f"k{i}"))
        assert (buffer.pending, buffer.dropped) == (100, 150)
        assert buffer.flush() == 0
        assert buffer.pending == 100
    finally:
        buffer.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "wedcache.metrics"]
    assert any("buffer full" in m for m in messages)
    assert any("database unavailable" in m for m in messages)


@pytest.fixture
def missing_database(database_url) -> tuple[str, str]:
    """The name and URL of a database that does not exist yet (dropped after the test if created)."""
    name = f"wedcache_metrics_{uuid.uuid4().hex[:12]}"
    yield name, svc.with_database(database_url, name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.integration
def test_rows_kept_during_an_outage_are_written_once_the_database_answers(database_url, missing_database, org_id):
    name, url = missing_database
    buffer = MetricsBuffer(url, batch_size=1000, flush_interval=3600, max_rows=100, timeout=0.5)
    try:
        for i in range(250):
            buffer.record(make_row(org_id, at=NOW + i, key=f"k{i:03}"))
        assert buffer.flush() == 0
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        apply_migrations(url)
        wait_until(lambda: buffer.flush() > 0)
    finally:
        buffer.close()
    keys = [row[1] for row in stored(url, org_id)]
    assert keys == [f"k{i:03}" for i in range(150, 250)]
    assert buffer.dropped == 150


# -- statistics ----------------------------------------------------------------------------------
STATS_NOW = datetime(2031, 6, 7, 12, tzinfo=timezone.utc).timestamp()  # a window no other test writes in
HOUR, DAY = 3600.0, 86400.0


@pytest.fixture(scope="module")
def recorded(migrated_database_url) -> tuple[str, str]:
    """Two organizations' rows around :data:`STATS_NOW`; returns their ids."""
    org, other = str(uuid.uuid4()), str(uuid.uuid4())
    rows = [
        make_row(org, at=STATS_NOW - 60, tier="memory", ms=1.0),
        make_row(org, at=STATS_NOW - 50, tier="memory", ms=3.0),
        make_row(org, at=STATS_NOW - 40, tier="redis", ms=5.0),
        make_row(org, at=STATS_NOW, tier=None, ms=1000.0),  # the window's end is included
        make_row(org, at=STATS_NOW - 30, tier="postgres", ms=20.0, market_tier="tier_2", vendor_type="photographer"),
        make_row(org, at=STATS_NOW - 20, tier=None, ms=2000.0, market_tier="tier_2", vendor_type="photographer"),
        make_row(org, at=STATS_NOW - 10, tier=None, ms=500.0, market_tier="tier_3", vendor_type=None),
        make_row(org, at=STATS_NOW - 2 * HOUR, tier="memory", ms=2.0),  # in 24h, not in 1h
        make_row(org, at=STATS_NOW - 2 * DAY, tier="memory", ms=2.0),  # in 7d, not in 24h
        make_row(org, at=STATS_NOW + 1, tier="memory", ms=2.0),  # after now
        make_row(other, at=STATS_NOW - 5, tier=None, ms=700.0, market_tier="tier_3", vendor_type="baker"),
    ]
    buffer = MetricsBuffer(migrated_database_url, flush_interval=3600)
    for row in rows:
        buffer.record(row)
    buffer.close()
    return org, other


@pytest.fixture
def conn(migrated_database_url):
    with psycopg.connect(migrated_database_url, autocommit=True) as connection:
        yield connection


def performance(hit_rate, average, p95, queries) -> dict:
    return {"hitRate": hit_rate, "averageResponseTime": average, "p95ResponseTime": p95, "totalQueries": queries}


EMPTY = performance(0.0, 0.0, 0.0, 0)


@pytest.mark.integration
def test_statistics_of_one_organization_in_the_last_hour(conn, recorded):
    org, _ = recorded
    seasonal = {"currentSeason": "summer", "scalingFactor": 2.0, "demandPrediction": "peak"}
    got = cache_statistics(conn, now=STATS_NOW, time_range="1h", organization_id=org, cache_size=42,
                           seasonal=seasonal)
    assert got == {
        "hitRate": round(4 / 7, 4),
        "averageResponseTime": round(3529 / 7, 3),
        "totalQueries": 7,
        "cacheSize": 42,
        "memoryCacheHitRate": round(2 / 7, 4),
        "redisCacheHitRate": round(1 / 7, 4),
        "postgresHitRate": round(1 / 7, 4),
        "seasonalMetrics": seasonal,
        "marketTierPerformance": {
            # p95 by linear interpolation (percentile_cont): 5 + 0.85 * (1000 - 5); 20 + 0.95 * (2000 - 20)
            "tier1": performance(0.75, 252.25, 850.75, 4),
            "tier2": performance(0.5, 1010.0, 1901.0, 2),
            "tier3": performance(0.0, 500.0, 500.0, 1),
        },
    }


@pytest.mark.integration
@pytest.mark.parametrize(("time_range", "queries"), [("1h", 7), ("24h", 8), ("7d", 9), ("30d", 9)])
def test_statistics_cover_the_time_range_up_to_now(conn, recorded, time_range, queries):
    got = cache_statistics(conn, now=STATS_NOW, time_range=time_range, organization_id=recorded[0])
    assert got["totalQueries"] == queries


@pytest.mark.integration
def test_statistics_filter_by_organization_market_tier_and_vendor_type(conn, recorded):
    org, other = recorded
    everyone = cache_statistics(conn, now=STATS_NOW, time_range="1h")
    assert everyone["totalQueries"] == 8
    assert everyone["marketTierPerformance"]["tier3"] == performance(0.0, 600.0, 690.0, 2)
    assert cache_statistics(conn, now=STATS_NOW, time_range="1h", organization_id=other)["totalQueries"] == 1
    tier_1 = cache_statistics(conn, now=STATS_NOW, time_range="1h", organization_id=org, market_tier="tier_1")
    assert (tier_1["totalQueries"], tier_1["hitRate"], tier_1["memoryCacheHitRate"]) == (4, 0.75, 0.5)
    assert tier_1["marketTierPerformance"]["tier2"] == EMPTY
    photographers = cache_statistics(conn, now=STATS_NOW, time_range="1h", vendor_type="photographer")
    assert (photographers["totalQueries"], photographers["postgresHitRate"]) == (2, 0.5)


@pytest.mark.integration
def test_statistics_of_an_empty_selection_are_zeros(conn, recorded):
    got = cache_statistics(conn, now=STATS_NOW, organization_id=str(uuid.uuid4()))
    assert (got["totalQueries"], got["hitRate"], got["averageResponseTime"]) == (0, 0.0, 0.0)
    assert got["seasonalMetrics"] == DEFAULT_SEASONAL
    assert got["marketTierPerformance"] == {"tier1": EMPTY, "tier2": EMPTY, "tier3": EMPTY}


@pytest.mark.integration
@pytest.mark.parametrize(("arguments", "field"), [
    ({"time_range": "2h"}, "timeRange"),
    ({"market_tier": "tier_9"}, "marketTier"),
    ({"vendor_type": "magician"}, "vendorType"),
    ({"organization_id": ""}, "organizationId"),
])
def test_statistics_name_a_bad_query_parameter(conn, arguments, field):
    with pytest.raises(ContextError) as caught:
        cache_statistics(conn, now=STATS_NOW, **arguments)
    assert caught.value.field == field
