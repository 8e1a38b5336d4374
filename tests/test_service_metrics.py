"""Metrics in the running service: ``GET /api/metrics``, ``GET /api/ai-cache/statistics``, metric rows.

One app (one worker's state) over real Redis and PostgreSQL, on a :class:`ManualClock` set
in a summer of its own (no other test records rows then), with a simulated origin whose
latency is spent on that clock: response times are real figures that need no sleeping.
Rows reach ``ai_cache_performance_metrics`` through the state's :class:`MetricsBuffer`;
tests that read them through the statistics endpoint rely on its flush-before-read, the
batch test polls (bounded) for the background writer. The last test runs ``wedcache serve
--workers 2`` as a subprocess and checks that the exposition adds up both workers.
"""
from __future__ import annotations

import re
import socket
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg
import pytest
from serving import read_log, serve_env, serving
from waiting import wait_until
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from wedcache.answering import infer_cache_type
from wedcache.apikeys import ApiKeyStore
from wedcache.clock import ManualClock
from wedcache.config import load_settings
from wedcache.context import parse_context
from wedcache.keys import cache_key, organization_uuid
from wedcache.metrics import MetricsBuffer
from wedcache.service import create_app
from wedcache.service.state import ServiceState

pytestmark = pytest.mark.integration

START = datetime(2033, 7, 9, 12, tzinfo=timezone.utc)
NYC = {"location": "New York, NY", "vendorTypes": ["venue"]}
CHICAGO = {"location": "Chicago, IL", "vendorTypes": ["photographer"]}
REGIONAL = {"location": "Boise, ID"}


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(scope="module")
def app(services, redis_url, migrated_database_url, clock):
    settings = load_settings(redis_url=redis_url, database_url=migrated_database_url, origin_latency_median_ms=5,
                             origin_latency_p95_ms=10, memory_size_mb=64)
    with TestClient(create_app(open_state=lambda: ServiceState.open(settings, clock=clock))) as client:
        yield client


@pytest.fixture(scope="module")
def store(migrated_database_url):
    return ApiKeyStore(migrated_database_url)


def new_key(store, role="member", org=None) -> tuple[str, dict[str, str]]:
    key, secret = store.create(org or str(uuid.uuid4()), "premium", role)
    return key.organization_id, {"Authorization": f"Bearer {secret}"}


def ask(app, headers, query, context) -> httpx.Response:
    response = app.post("/api/ai-cache/query", headers=headers, json={"query": query, "weddingContext": context})
    assert response.status_code == 200, response.text
    return response


def samples(body: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition as ``(name, labels) -> value``."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def scrape(app) -> dict[tuple[str, frozenset], float]:
    response = app.get("/api/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return samples(response.text)


def labels(**items: str) -> frozenset:
    return frozenset(items.items())


def statistics(app, headers, **params) -> httpx.Response:
    return app.get("/api/ai-cache/statistics", headers=headers, params=params)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["requestId"] == response.headers["X-Request-ID"]
    return error


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- /api/metrics ---------------------------------------------------------------------------
DASHBOARD_SERIES = ("ai_cache_requests_total", "ai_cache_hits_total", "ai_cache_response_time_ms_bucket",
                    "ai_cache_seasonal_load_factor", "ai_cache_memory_usage_bytes", "ai_cache_memory_limit_bytes")


def test_the_exposition_has_every_dashboard_series_and_they_move_after_queries(app, store):
    before = scrape(app)
    _, headers = new_key(store)
    query = f"rooftop venues {uuid.uuid4().hex}"
    ask(app, headers, query, NYC)
    ask(app, headers, query, NYC)
    _error(app.post("/api/ai-cache/query", json={"query": "no key"}), 401, "CACHE_002")
    after = scrape(app)
    assert {name for name, _ in after} >= set(DASHBOARD_SERIES)

    def moved(name: str, **items: str) -> float:
        return after[name, labels(**items)] - before.get((name, labels(**items)), 0.0)

    assert moved("ai_cache_requests_total", market_tier="tier_1", vendor_type="venue") == 2
    assert moved("ai_cache_hits_total", tier="memory", market_tier="tier_1", vendor_type="venue") == 1
    assert moved("ai_cache_response_time_ms_count", tier="origin") == 1
    assert moved("ai_cache_response_time_ms_bucket", tier="memory", le="0.1") == 1  # a memory hit: no clock time
    assert moved("ai_cache_response_time_ms_bucket", tier="origin", le="+Inf") == 1
    assert moved("ai_cache_errors_total", code="CACHE_002") == 1
    memory = app.app.state.wedcache.cache.memory.stats()
    assert after["ai_cache_memory_usage_bytes", labels()] == memory["bytes"] > 0
    assert after["ai_cache_memory_limit_bytes", labels()] == memory["max_bytes"]
    assert after["ai_cache_seasonal_load_factor", labels()] == 3.0  # summer's traffic multiplier


def test_the_scrape_needs_no_key_and_is_documented_as_text(app):
    operation = app.get("/openapi.json").json()["paths"]["/api/metrics"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/plain"}
    assert "security" not in operation
    assert app.get("/api/metrics").status_code == 200


# -- statistics -------------------------------------------------------------------------------
def drop_from(app, org: str, query: str, context: dict, *tiers: str) -> None:
    """Remove one answer from the named tiers only, so the next lookup finds it further down."""
    ctx = parse_context(context)
    key = cache_key(organization_uuid(org), query, ctx, infer_cache_type(ctx))
    for tier in app.app.state.wedcache.cache.tiers:
        if tier.name in tiers:
            assert tier.delete(key)


def performance(hit_rate: float, queries: int) -> dict:
    return {"hitRate": hit_rate, "totalQueries": queries}


@pytest.fixture(scope="module")
def known_sequence(app, store) -> tuple[str, dict[str, str], list[httpx.Response]]:
    """One organization's 8 queries: 4 misses, then hits from memory (2), Redis (1) and PostgreSQL (1)."""
    org, headers = new_key(store)
    venue, photos = "rooftop venues in Manhattan", "documentary photographers"
    answers = [ask(app, headers, venue, NYC), ask(app, headers, venue, NYC)]   # miss, memory
    drop_from(app, org, venue, NYC, "memory")
    answers.append(ask(app, headers, venue, NYC))                              # redis
    drop_from(app, org, venue, NYC, "memory", "redis")
    answers.append(ask(app, headers, venue, NYC))                              # postgres
    answers += [ask(app, headers, photos, CHICAGO), ask(app, headers, photos, CHICAGO),  # miss, memory
                ask(app, headers, "a timeline for the day", REGIONAL),                   # miss
                ask(app, headers, "a budget for 80 guests", {**REGIONAL, "vendorTypes": ["other"]})]  # miss
    assert [r.headers["X-Cache"] for r in answers] == ["MISS", "HIT-memory", "HIT-redis", "HIT-postgres", "MISS",
                                                      "HIT-memory", "MISS", "MISS"]
    return org, headers, answers


def test_statistics_of_a_known_sequence_are_exact(app, known_sequence):
    _, headers, answers = known_sequence
    response = statistics(app, headers)
    assert response.status_code == 200, response.text
    got = response.json()
    assert set(got) == {"hitRate", "averageResponseTime", "totalQueries", "cacheSize", "memoryCacheHitRate",
                        "redisCacheHitRate", "postgresHitRate", "seasonalMetrics", "marketTierPerformance"}
    assert (got["totalQueries"], got["hitRate"]) == (8, 0.5)
    assert (got["memoryCacheHitRate"], got["redisCacheHitRate"], got["postgresHitRate"]) == (0.25, 0.125, 0.125)
    assert got["memoryCacheHitRate"] + got["redisCacheHitRate"] + got["postgresHitRate"] == got["hitRate"]
    mean = sum(r.json()["responseTime"] for r in answers) / len(answers)
    assert got["averageResponseTime"] == pytest.approx(mean, abs=1e-3) and mean > 0
    assert got["cacheSize"] == 4  # four answers, all still in PostgreSQL
    tiers = {name: {k: v[k] for k in ("hitRate", "totalQueries")} for name, v in got["marketTierPerformance"].items()}
    assert tiers == {"tier1": performance(0.75, 4), "tier2": performance(0.5, 2), "tier3": performance(0.0, 2)}
    assert set(got["marketTierPerformance"]["tier1"]) == {"hitRate", "averageResponseTime", "p95ResponseTime",
                                                          "totalQueries"}
    status = app.app.state.wedcache.scaling.status()
    assert got["seasonalMetrics"] == {"currentSeason": "summer", "scalingFactor": status["scalingFactor"],
                                      "demandPrediction": "peak"}


@pytest.mark.parametrize(("params", "queries", "hit_rate", "cache_size"), [
    ({"marketTier": "tier_1"}, 4, 0.75, 1),
    ({"vendorType": "photographer"}, 2, 0.5, 1),
    ({"marketTier": "tier_3", "vendorType": "other"}, 1, 0.0, 1),
    ({"marketTier": "tier_2", "vendorType": "venue"}, 0, 0.0, 0),
    ({"timeRange": "1h"}, 8, 0.5, 4),
])
def test_statistics_filter_by_market_tier_and_vendor_type(app, known_sequence, params, queries, hit_rate,
                                                           cache_size):
    _, headers, _ = known_sequence
    got = statistics(app, headers, **params).json()
    assert (got["totalQueries"], got["hitRate"], got["cacheSize"]) == (queries, hit_rate, cache_size)


def test_a_member_sees_its_own_organization_by_uuid_or_without_naming_it(app, known_sequence):
    org, headers, _ = known_sequence
    assert statistics(app, headers, organizationId=org).json() == statistics(app, headers).json()


def test_a_member_naming_another_organization_is_cache_007_and_audited(app, store, known_sequence,
                                                                       migrated_database_url):
    org, headers, _ = known_sequence
    intruder, intruder_headers = new_key(store)
    error = _error(statistics(app, intruder_headers, organizationId=org), 403, "CACHE_007")
    assert error["details"]["field"] == "organizationId"
    with psycopg.connect(migrated_database_url) as conn:
        rows = conn.execute("SELECT risk_level::text, details->>'organizationId' FROM ai_cache_audit_logs "
                            "WHERE organization_id = %s AND action_type = 'SECURITY_VIOLATION'", (intruder,)).fetchall()
    assert rows == [("high", org)]
    _, admin = new_key(store, role="admin")
    assert statistics(app, admin, organizationId=org).json()["totalQueries"] == 8


@pytest.mark.parametrize(("params", "field"), [
    ({"timeRange": "2h"}, "timeRange"),
    ({"marketTier": "tier_9"}, "marketTier"),
    ({"vendorType": "magician"}, "vendorType"),
    ({"organizationId": ""}, "organizationId"),
    ({"organizationId": "x" * 201}, "organizationId"),
])
def test_a_bad_query_parameter_is_cache_001_naming_it(app, store, params, field):
    _, headers = new_key(store)
    error = _error(statistics(app, headers, **params), 400, "CACHE_001")
    assert error["details"]["field"] == field and field in error["message"]


def test_statistics_need_a_key(app):
    _error(app.get("/api/ai-cache/statistics"), 401, "CACHE_002")


def test_an_admin_without_organization_sees_every_organization_in_the_range(app, store, clock):
    clock.advance(3 * 3600)  # a fresh last hour: the earlier tests' rows fall outside it
    first, first_headers = new_key(store)
    _, second_headers = new_key(store)
    ask(app, first_headers, "string quartets for the ceremony", NYC)
    ask(app, second_headers, "string quartets for the ceremony", NYC)
    _, admin = new_key(store, role="admin")
    everyone = statistics(app, admin, timeRange="1h").json()
    assert (everyone["totalQueries"], everyone["marketTierPerformance"]["tier1"]["totalQueries"]) == (2, 2)
    assert statistics(app, first_headers, timeRange="1h").json()["totalQueries"] == 1
    assert statistics(app, admin, timeRange="1h", organizationId=first).json()["totalQueries"] == 1


# -- metric rows -------------------------------------------------------------------------------
def stored_rows(url: str, org: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT xmin::text, metric_type::text, tier, market_tier::text, vendor_type::text, season::text, "
            "cache_key FROM ai_cache_performance_metrics WHERE organization_id = %s", (org,)).fetchall()


def test_rows_reach_the_table_in_batches_from_the_background_writer(app, store, migrated_database_url):
    org, headers = new_key(store)
    for i in range(12):
        ask(app, headers, f"florists {i % 4}", {"location": "Chicago, IL", "vendorTypes": ["florist", "venue"]})
    wait_until(lambda: len(stored_rows(migrated_database_url, org)) == 12)
    rows = stored_rows(migrated_database_url, org)
    assert len({xid for xid, *_ in rows}) < len(rows)  # COPY batches, not one INSERT per request
    assert sorted(row[1:3] for row in rows) == [("hit", "memory")] * 8 + [("miss", None)] * 4
    assert {row[3:6] for row in rows} == {("tier_2", "florist", "summer")}
    assert all(row[6].startswith(f"ai:{{{org}}}:") for row in rows)


def test_a_down_metrics_database_never_fails_a_request(app, store):
    state = app.app.state.wedcache
    working, down = state.metrics_buffer, MetricsBuffer(f"postgresql://wedcache@127.0.0.1:{unused_port()}/x",
                                                        flush_interval=3600, timeout=0.2)
    _, headers = new_key(store)
    state.metrics_buffer = down
    try:
        assert ask(app, headers, "cake tastings", REGIONAL).json()["success"] is True
        assert down.pending == 1
    finally:
        state.metrics_buffer = working
        down.close()


# -- two workers -------------------------------------------------------------------------------
def requests_total(body: str) -> float:
    return sum(value for (name, _), value in samples(body).items() if name == "ai_cache_requests_total")


def test_two_workers_add_up_in_one_exposition(redis_url, migrated_database_url, store, tmp_path):
    org, headers = new_key(store)
    log_path = tmp_path / "serve.log"
    with serving(serve_env(redis_url, migrated_database_url), log_path) as (client, _):
        directory = Path(re.search(r"prometheus multiprocess directory: (\S+)", read_log(log_path)).group(1))
        sent = 0
        while sent < 20 or len(list(directory.glob("counter_*.db"))) < 2:  # until both workers counted
            assert sent < 400, "one worker answered every request"
            answered = client.post("/api/ai-cache/query", headers=headers, json={"query": f"bands {sent % 5}"})
            assert answered.status_code == 200, answered.text
            sent += 1
        scrapes = [client.get("/api/metrics").text for _ in range(6)]
    assert [requests_total(body) for body in scrapes] == [float(sent)] * 6
    assert not directory.exists()
    assert len(stored_rows(migrated_database_url, org)) == sent  # both workers' rows, flushed by shutdown at the latest


def test_an_applied_scaling_plan_is_counted_by_season(app, store):
    _, headers = new_key(store, role="admin")
    before = scrape(app).get(("ai_cache_scaling_events_total", labels(season="fall")), 0.0)
    response = app.post("/api/ai-cache/seasonal-scaling", headers=headers,
                        json={"action": "execute", "seasonConfig": {"season": "fall", "trafficMultiplier": 2.2,
                                                                    "cacheSize": 2.0, "costBudget": 1.2}})
    assert response.status_code == 200, response.text
    assert scrape(app)[("ai_cache_scaling_events_total", labels(season="fall"))] == before + 1
