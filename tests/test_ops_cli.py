"""``wedcache cache …`` against real servers: known rows in, exact figures out.

Each test writes entries, metric rows, seasonal configs and audit rows with known ages,
sizes and access counts into a database of this module's own (so figures over every
organization are exact), runs the command through typer's ``CliRunner`` with ``--json`` and
compares the figures; the library functions are also called directly with a fixed clock.
Redis is the suite's shared server: tests isolate by organization.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import psycopg_pool
import pytest
from psycopg.types.json import Jsonb
from conftest import scratch_database
from typer.testing import CliRunner

from wedcache import services as svc
from wedcache.cli import app
from wedcache.clock import ManualClock, SystemClock, today
from wedcache.config import load_settings
from wedcache.entry import CacheEntry
from wedcache.maintenance import delete_expired, purge_past_retention
from wedcache.ops.analytics import analytics
from wedcache.ops.config_review import review_config
from wedcache.ops.scaling_status import scaling_status
from wedcache.tiers.redis import RedisTier

pytestmark = pytest.mark.integration
runner = CliRunner()
TEST_KEY = "q0tvkLCwU2dC8wr3g9bDNq0wSnG3e6dw8WwGz3Y7n1A"  # urlsafe base64 of 32 bytes
SUMMER = datetime(2026, 6, 6, 12, tzinfo=timezone.utc)  # a Saturday


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def fresh_database(services):
    """A migrated database of this test's own, dropped afterwards."""
    with scratch_database(services.database_url, "wedcache_ops", migrate=True) as url:
        yield url


@pytest.fixture(scope="module")
def module_database(services):
    """A migrated database shared by this module's read-only tests."""
    with scratch_database(services.database_url, "wedcache_ops", migrate=True) as url:
        yield url


@pytest.fixture
def database(module_database):
    """The database the commands use (:class:`TestCleanup` overrides it with a fresh one)."""
    return module_database


@pytest.fixture
def env(monkeypatch, database, services, state_dir):
    """Point every command at the test database and the suite's Redis; an instant origin; a fixed key."""
    values = {"AI_CACHE_DATABASE_URL": database, "AI_CACHE_REDIS_URL": services.redis_url,
              "AI_CACHE_ENCRYPTION_KEY": TEST_KEY, "AI_CACHE_ORIGIN_LATENCY_MEDIAN_MS": "0",
              "AI_CACHE_ORIGIN_LATENCY_P95_MS": "0", svc.STATE_DIR_ENV: str(state_dir)}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AI_CACHE_ORIGIN_URL", raising=False)
    return values


@pytest.fixture
def pool(database):
    with psycopg_pool.ConnectionPool(database, min_size=1, max_size=2, kwargs={"autocommit": True}) as opened:
        yield opened


@pytest.fixture
def now() -> datetime:
    return datetime.now(timezone.utc)


def run(*args: str, code: int = 0) -> dict:
    """``wedcache cache <args> --json``; the parsed JSON (asserting the exit code)."""
    result = runner.invoke(app, ["cache", *args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


# -- writing known rows --------------------------------------------------------------------
def key_of(org: str, cache_type: str = "general", tag: str | None = None) -> str:
    return f"ai:{{{org}}}:{cache_type}:{tag or uuid.uuid4().hex}"


def add_entry(pool, org: str, *, created: datetime, ttl: float = 3600, key: str | None = None,
              query: str = "a question", cache_type: str = "general", market_tier: str = "tier_3",
              vendor_types: tuple[str, ...] = (), value=None, access_count: int = 0,
              read_after: float = 0.0) -> str:
    """One ``ai_cache_entries`` row; ``read_after``: seconds from storing to the last read."""
    key = key or key_of(org, cache_type)
    insert_row(pool, org,
               "INSERT INTO ai_cache_entries (cache_key, cache_value, ttl_seconds, created_at, expires_at, "
               "organization_id, cache_type, market_tier, vendor_type, vendor_types, query_text, access_count, "
               "last_accessed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::vendor_type_enum[], %s, %s, %s)",
               (key, Jsonb(value if value is not None else {"answer": "x"}), round(ttl), created,
                created + timedelta(seconds=ttl), org, cache_type, market_tier,
                vendor_types[0] if vendor_types else None, list(vendor_types), query, access_count,
                created + timedelta(seconds=read_after)))
    return key


def add_request(pool, org: str, *, at: datetime, ms: float, hit: bool, key: str | None = None,
                market_tier: str = "tier_3", vendor_type: str | None = None, season: str = "summer",
                tier: str | None = None) -> None:
    """One per-request metric row, as :class:`~wedcache.metrics.MetricsBuffer` writes it."""
    insert_row(pool, org,
               "INSERT INTO ai_cache_performance_metrics (organization_id, metric_type, metric_value, recorded_at, "
               "cache_key, response_time_ms, market_tier, tier, vendor_type, season) "
               "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
               (org, "hit" if hit else "miss", ms, at, key or key_of(org), round(ms), market_tier,
                (tier or "redis") if hit else None, vendor_type, season))


def insert_row(pool, org: str, statement: str, params: tuple) -> None:
    """``statement`` with ``params``, after making sure ``org``'s organization row exists."""
    with pool.connection() as conn:
        conn.execute("INSERT INTO organizations (id) VALUES (%s) ON CONFLICT DO NOTHING", (org,))
        conn.execute(statement, params)


def add_audit(pool, org: str, *, at: datetime, action: str = "CACHE_INVALIDATE", resource: str = "AI_QUERY",
              details: dict | None = None) -> None:
    with pool.connection() as conn:
        conn.execute("INSERT INTO organizations (id) VALUES (%s) ON CONFLICT DO NOTHING", (org,))
        conn.execute("INSERT INTO ai_cache_audit_logs (organization_id, action_type, resource_type, details, "
                     "created_at) VALUES (%s, %s, %s, %s, %s)", (org, action, resource, Jsonb(details or {}), at))


def count(pool, query: str, *params) -> int:
    with pool.connection() as conn:
        return conn.execute(query, params).fetchone()[0]


# -- analytics -----------------------------------------------------------------------------
def test_analytics_hit_rate_per_market_tier(env, pool, org_id, now):
    for hit in (True, True, True, False):
        add_request(pool, org_id, at=now - timedelta(minutes=5), ms=2, hit=hit, market_tier="tier_1")
    for hit in (True, False):
        add_request(pool, org_id, at=now - timedelta(hours=3), ms=2, hit=hit, market_tier="tier_2")
    add_request(pool, org_id, at=now - timedelta(days=2), ms=2, hit=False, market_tier="tier_2")  # outside 24h
    add_request(pool, str(uuid.uuid4()), at=now, ms=2, hit=False, market_tier="tier_1")  # another organization

    out = run("analytics", "--metric", "hitRate", "--group-by", "marketTier", "--time-range", "24h",
              "--organization", org_id)

    assert out["total"] == {"queries": 6, "hits": 4, "hitRate": 0.6667, "target": 0.85}
    assert out["groups"] == [{"group": "tier_1", "queries": 4, "hits": 3, "hitRate": 0.75, "target": 0.9},
                             {"group": "tier_2", "queries": 2, "hits": 1, "hitRate": 0.5, "target": 0.87}]
    assert (out["metric"], out["groupBy"], out["timeRange"], out["organizationId"]) == \
        ("hitRate", "marketTier", "24h", org_id)


def test_analytics_response_time_per_vendor_type_with_the_seed_spelling(env, pool, org_id, now):
    for ms in (10, 20, 30, 40):
        add_request(pool, org_id, at=now - timedelta(minutes=1), ms=ms, hit=True, vendor_type="photographer")
    add_request(pool, org_id, at=now - timedelta(minutes=1), ms=100, hit=False)

    out = run("analytics", "--metric=responseTime", "--groupBy=vendorType", "--timeRange=1h", "--organization", org_id)

    assert out["groups"] == [{"group": "none", "queries": 1, "meanMs": 100.0, "p95Ms": 100.0, "target": None},
                             {"group": "photographer", "queries": 4, "meanMs": 25.0, "p95Ms": 38.5, "target": None}]
    assert out["total"] == {"queries": 5, "meanMs": 40.0, "p95Ms": 88.0, "target": 50}


def test_analytics_window_ends_at_the_injected_now(database, pool, org_id, policy):
    """``(now - 1h, now]``: a row exactly an hour old is out, a row at ``now`` is in."""
    for age, hit in ((3600, True), (3599, False), (0, True), (-1, True)):
        add_request(pool, org_id, at=SUMMER - timedelta(seconds=age), ms=5, hit=hit, season="summer")

    out = analytics(pool, policy, now=SUMMER.timestamp(), metric="hitRate", group_by="season", time_range="1h",
                    organization=org_id)

    assert out["groups"] == [{"group": "summer", "queries": 2, "hits": 1, "hitRate": 0.5, "target": 0.89}]
    assert (out["from"], out["to"]) == ("2026-06-06T11:00:00Z", "2026-06-06T12:00:00Z")


def test_a_bad_option_exits_2_naming_it(env):
    result = runner.invoke(app, ["cache", "analytics", "--metric", "latency", "--json"])
    assert result.exit_code == 2 and "--metric" in result.output


# -- scaling status ------------------------------------------------------------------------
def test_scaling_status_reports_the_plan_configs_and_audit_rows(env, pool, org_id, now, policy):
    with pool.connection() as conn:
        config_id = str(conn.execute(
            "INSERT INTO ai_cache_seasonal_configs (season, traffic_multiplier, cache_size_multiplier, "
            "ttl_adjustment_factor, cost_factor, start_date, end_date, created_at) "
            "VALUES ('summer', 3.5, 3.2, 0.8, 1.6, '2026-06-01', '2026-08-31', %s) RETURNING id",
            (now + timedelta(days=1),)).fetchone()[0])
    add_audit(pool, org_id, at=now + timedelta(days=1), action="SCALING_CHANGE", resource="MEMORY_TIER",
              details={"season": "summer"})
    add_audit(pool, org_id, at=now + timedelta(days=2), action="CONFIG_CHANGE", resource="SEASONAL_CONFIG",
              details={"season": "summer", "trafficMultiplier": 3.5})
    add_audit(pool, org_id, at=now + timedelta(days=3), action="CONFIG_CHANGE", resource="API_KEY")  # not scaling

    out = run("scaling", "status")

    season = policy.season_of(today(SystemClock()))
    plan = policy.seasons[season]
    assert out["currentSeason"] == season and out["enabled"] is True
    assert out["plan"] == {"season": season, "trafficMultiplier": plan.traffic_multiplier,
                           "cacheSizeMultiplier": plan.cache_size_multiplier,
                           "ttlAdjustmentFactor": plan.ttl_adjustment_factor, "costFactor": plan.cost_factor,
                           "memoryBytes": int(512 * 2**20 * plan.cache_size_multiplier),
                           "memoryEntries": int(1_000_000 * plan.cache_size_multiplier)}
    assert out["storedConfigs"][0] == {"id": config_id, "season": "summer", "trafficMultiplier": 3.5,
                                       "cacheSizeMultiplier": 3.2, "ttlAdjustmentFactor": 0.8, "costFactor": 1.6,
                                       "startDate": "2026-06-01", "endDate": "2026-08-31", "isActive": True,
                                       "createdAt": out["storedConfigs"][0]["createdAt"]}
    assert [(e["actionType"], e["resourceType"]) for e in out["events"][:2]] == \
        [("CONFIG_CHANGE", "SEASONAL_CONFIG"), ("SCALING_CHANGE", "MEMORY_TIER")]
    assert out["events"][0]["details"] == {"season": "summer", "trafficMultiplier": 3.5}


def test_scaling_status_on_a_summer_saturday(database, pool, policy):
    out = scaling_status(pool, policy, load_settings({}), ManualClock(SUMMER))
    assert (out["currentSeason"], out["loadFactor"], out["scalingFactor"]) == ("summer", 3.0, 3.0)
    assert out["nextPredictedPeak"] == "2026-06-13"  # the next Saturday in the busiest season
    assert [s["season"] for s in out["seasons"] if s["current"]] == ["summer"]


# -- analyze -------------------------------------------------------------------------------
def test_analyze_patterns_ranks_queries_and_cache_types(env, pool, org_id, now):
    barn_a = add_entry(pool, org_id, created=now, query="barn venues austin", cache_type="venue_search",
                       access_count=2)
    barn_b = add_entry(pool, org_id, created=now, query="barn venues austin", cache_type="venue_search")
    florist = add_entry(pool, org_id, created=now, query="florist nyc", cache_type="vendor_recommendation")
    add_entry(pool, org_id, created=now, query="never asked", cache_type="general")
    for key, hits, misses in ((barn_a, 2, 1), (barn_b, 1, 0), (florist, 0, 2)):
        for hit in [True] * hits + [False] * misses:
            add_request(pool, org_id, at=now - timedelta(minutes=1), ms=3, hit=hit, key=key)

    out = run("analyze", "patterns", "--organization", org_id)

    assert out["queries"] == [
        {"query": "barn venues austin", "entries": 2, "accessCount": 2, "requests": 4, "hits": 3, "hitRate": 0.75},
        {"query": "florist nyc", "entries": 1, "accessCount": 0, "requests": 2, "hits": 0, "hitRate": 0.0},
        {"query": "never asked", "entries": 1, "accessCount": 0, "requests": 0, "hits": 0, "hitRate": 0.0}]
    assert out["cacheTypes"] == [
        {"cacheType": "venue_search", "entries": 2, "accessCount": 2, "requests": 4, "hits": 3, "hitRate": 0.75},
        {"cacheType": "vendor_recommendation", "entries": 1, "accessCount": 0, "requests": 2, "hits": 0,
         "hitRate": 0.0},
        {"cacheType": "general", "entries": 1, "accessCount": 0, "requests": 0, "hits": 0, "hitRate": 0.0}]


def test_analyze_keys_counts_live_and_expired_and_lists_hot_keys(env, pool, org_id, now):
    hot = add_entry(pool, org_id, created=now, cache_type="venue_search", market_tier="tier_1", access_count=9)
    add_entry(pool, org_id, created=now, cache_type="venue_search", market_tier="tier_2", access_count=4)
    old = add_entry(pool, org_id, created=now - timedelta(hours=2), ttl=3600, cache_type="general", access_count=5)

    out = run("analyze", "keys", "--organization", org_id, "--limit", "2")

    assert out["byOrganization"] == [{"organizationId": org_id, "entries": 3, "live": 2, "expired": 1,
                                      "accessCount": 18}]
    assert out["byCacheType"] == [{"cacheType": "venue_search", "entries": 2, "live": 2, "expired": 0,
                                   "accessCount": 13},
                                  {"cacheType": "general", "entries": 1, "live": 0, "expired": 1, "accessCount": 5}]
    assert out["byMarketTier"] == [{"marketTier": t, "entries": 1, "live": live, "expired": 1 - live,
                                    "accessCount": a} for t, live, a in (("tier_1", 1, 9), ("tier_2", 1, 4),
                                                                         ("tier_3", 0, 5))]
    assert [(k["cacheKey"], k["accessCount"], k["live"]) for k in out["hot"]] == [(hot, 9, True), (old, 5, False)]


def test_analyze_vendors_compares_policy_ttl_with_stored_ttl_and_lifetime(env, pool, org_id, now, policy):
    add_entry(pool, org_id, created=now, ttl=7000, vendor_types=("photographer",), market_tier="tier_1",
              access_count=2, read_after=600)
    add_entry(pool, org_id, created=now, ttl=5000, vendor_types=("photographer", "venue"), market_tier="tier_3")
    add_entry(pool, org_id, created=now, ttl=3600)
    add_request(pool, org_id, at=now, ms=1, hit=True, vendor_type="photographer")
    add_request(pool, org_id, at=now, ms=900, hit=False, vendor_type="photographer")
    add_request(pool, org_id, at=now, ms=1, hit=True, vendor_type="florist")

    out = run("analyze", "vendors", "--organization", org_id)

    factor = policy.seasons[out["season"]].ttl_adjustment_factor
    assert out["season"] == policy.season_of(today(SystemClock()))
    assert out["vendors"] == [
        {"vendorType": "florist", "entries": 0, "live": 0, "accessCount": 0, "policyTtlSeconds": None,
         "storedTtlSeconds": None, "observedLifetimeSeconds": None, "requests": 1, "hits": 1, "hitRate": 1.0,
         "baseTtlSeconds": 14400, "volatilityFactor": 1.8},
        {"vendorType": "none", "entries": 1, "live": 1, "accessCount": 0, "policyTtlSeconds": round(3600 * factor, 1),
         "storedTtlSeconds": 3600.0, "observedLifetimeSeconds": None, "requests": 0, "hits": 0, "hitRate": 0.0,
         "baseTtlSeconds": 3600, "volatilityFactor": None},
        {"vendorType": "photographer", "entries": 2, "live": 2, "accessCount": 2,
         "policyTtlSeconds": round(7200 * (1.5 + 1.0) / 2 * factor, 1), "storedTtlSeconds": 6000.0,
         "observedLifetimeSeconds": 600.0, "requests": 2, "hits": 1, "hitRate": 0.5, "baseTtlSeconds": 7200,
         "volatilityFactor": 1.2}]


def test_analyze_entry_sizes_buckets_and_largest(env, pool, org_id, now):
    sizes = {}
    for size, cache_type in ((500, "general"), (2000, "general"), (2000, "venue_search"), (70_000, "venue_search")):
        key = add_entry(pool, org_id, created=now, cache_type=cache_type, value="x" * (size - 2))  # a JSON string
        sizes[key] = size

    out = run("analyze", "entry-sizes", "--organization", org_id, "--limit", "2")

    assert {k: out["summary"][k] for k in ("entries", "totalBytes", "maxBytes", "meanBytes", "p50Bytes")} == \
        {"entries": 4, "totalBytes": 74_500, "maxBytes": 70_000, "meanBytes": 18_625.0, "p50Bytes": 2000.0}
    assert [(b["bucket"], b["entries"], b["bytes"]) for b in out["buckets"]] == [
        ("< 1 KiB", 1, 500), ("1-4 KiB", 2, 4000), ("4-16 KiB", 0, 0), ("16-64 KiB", 0, 0), ("64-256 KiB", 1, 70_000),
        (">= 256 KiB", 0, 0)]
    assert [(t["cacheType"], t["entries"], t["totalBytes"]) for t in out["byCacheType"]] == \
        [("venue_search", 2, 72_000), ("general", 2, 2500)]
    assert [e["bytes"] for e in out["largest"]] == [70_000, 2000]


def test_analyze_slow_queries_per_key_group_and_request(env, pool, org_id, now):
    fast, slow = key_of(org_id, tag="fast"), key_of(org_id, tag="slow")
    add_entry(pool, org_id, created=now, key=slow, query="slow one")
    for ms, key, tier in ((10, fast, "tier_1"), (30, fast, "tier_1"), (500, slow, "tier_2")):
        add_request(pool, org_id, at=now - timedelta(minutes=2), ms=ms, hit=ms < 100, key=key, market_tier=tier)

    out = run("analyze", "slow-queries", "--organization", org_id, "--time-range", "1h")

    assert out["thresholdMs"] == 100
    assert [(k["cacheKey"], k["query"], k["queries"], k["meanMs"], k["maxMs"]) for k in out["keys"]] == \
        [(slow, "slow one", 1, 500.0, 500.0), (fast, None, 2, 20.0, 30.0)]
    assert out["groups"] == [
        {"group": "tier_2", "queries": 1, "meanMs": 500.0, "p95Ms": 500.0, "maxMs": 500.0, "overThreshold": 1},
        {"group": "tier_1", "queries": 2, "meanMs": 20.0, "p95Ms": 29.0, "maxMs": 30.0, "overThreshold": 0}]
    assert [(r["responseMs"], r["tier"]) for r in out["slowest"]] == [(500.0, "origin"), (30.0, "redis"),
                                                                      (10.0, "redis")]


# -- cleanup -------------------------------------------------------------------------------
def _expiry_fixture(pool, org: str, now: datetime) -> dict[str, str]:
    """Four entries: past expiry and grace (two), inside the grace, and live."""
    return {
        "photographer_past_grace": add_entry(pool, org, created=now - timedelta(hours=4), ttl=7200,
                                             vendor_types=("photographer",)),  # expired 2 h ago, grace 10 min
        "venue_in_grace": add_entry(pool, org, created=now - timedelta(hours=3), ttl=7200,
                                    vendor_types=("photographer", "venue")),  # expired 1 h ago, venue grace 2 h
        "no_vendor_expired": add_entry(pool, org, created=now - timedelta(hours=1), ttl=3590),  # 10 s ago, no grace
        "live": add_entry(pool, org, created=now, ttl=3600),
    }


def _keys_left(pool, org: str) -> set[str]:
    with pool.connection() as conn:
        return {r[0] for r in conn.execute("SELECT cache_key FROM ai_cache_entries WHERE organization_id = %s",
                                           (org,))}


class TestCleanup:
    """Clean-up counts every organization's rows, so each test gets a database of its own."""

    @pytest.fixture
    def database(self, fresh_database):
        return fresh_database

    def test_cleanup_expired_deletes_past_grace_and_keeps_the_rest(self, env, pool, org_id, now):
        keys = _expiry_fixture(pool, org_id, now)

        dry = run("cleanup", "expired", "--dry-run")
        out = run("cleanup", "expired")

        assert (dry["entries"], dry["keptInGrace"], dry["dryRun"]) == (2, 1, True)
        assert (out["entries"], out["keptInGrace"], out["dryRun"]) == (2, 1, False)
        assert _keys_left(pool, org_id) == {keys["venue_in_grace"], keys["live"]}


    def test_delete_expired_on_a_fixed_clock(self, pool, org_id, policy):
        """On the boundary: expired exactly its grace ago is kept; a microsecond more is deleted."""
        grace = policy.vendors["photographer"].stale_while_revalidate_seconds
        on_edge = add_entry(pool, org_id, created=SUMMER - timedelta(seconds=3600 + grace), ttl=3600,
                            vendor_types=("photographer",))
        past = add_entry(pool, org_id, created=SUMMER - timedelta(seconds=3600 + grace, microseconds=1), ttl=3600,
                         vendor_types=("photographer",))

        out = delete_expired(pool, policy, ManualClock(SUMMER))

        assert (out["at"], out["entries"], out["keptInGrace"]) == ("2026-06-06T12:00:00Z", 1, 1)
        assert _keys_left(pool, org_id) == {on_edge} and past not in _keys_left(pool, org_id)


    def test_cleanup_retention_purges_old_entries_and_audit_rows_everywhere(self, env, monkeypatch, pool, org_id, now,
                                                                            redis_url):
        monkeypatch.setenv("AI_CACHE_GDPR_RETENTION_DAYS", "30")
        old = add_entry(pool, org_id, created=now - timedelta(days=40), ttl=50 * 86400)  # still fresh, but too old
        recent = add_entry(pool, org_id, created=now - timedelta(days=10), ttl=50 * 86400)
        add_audit(pool, org_id, at=now - timedelta(days=40))
        add_audit(pool, org_id, at=now - timedelta(days=10))
        redis = RedisTier(redis_url)
        redis.set(CacheEntry(old, {"answer": "x"}, (now - timedelta(days=40)).timestamp(),
                             (now + timedelta(days=10)).timestamp(), org_id))

        out = run("cleanup", "retention")

        assert {k: out[k] for k in ("retentionDays", "entries", "auditRows", "redisEntries", "organizations",
                                    "auditRowsWritten")} == \
            {"retentionDays": 30, "entries": 1, "auditRows": 1, "redisEntries": 1, "organizations": 1,
             "auditRowsWritten": 1}
        assert _keys_left(pool, org_id) == {recent} and redis.get(old) is None
        with pool.connection() as conn:
            rows = conn.execute("SELECT action_type::text, details FROM ai_cache_audit_logs WHERE organization_id = %s "
                                "ORDER BY created_at", (org_id,)).fetchall()
        assert [r[0] for r in rows] == ["CACHE_INVALIDATE", "GDPR_DELETION"]
        assert {k: rows[1][1][k] for k in ("reason", "retentionDays", "entries", "auditRows")} == \
            {"reason": "retention", "retentionDays": 30, "entries": 1, "auditRows": 1}
        redis.close()


    def test_cleanup_without_a_target_does_both(self, env, monkeypatch, pool, org_id, now):
        monkeypatch.setenv("AI_CACHE_GDPR_RETENTION_DAYS", "30")
        keys = _expiry_fixture(pool, org_id, now)
        add_entry(pool, org_id, created=now - timedelta(days=31), ttl=40 * 86400)
        add_audit(pool, org_id, at=now - timedelta(days=31))

        out = run("cleanup")

        assert (out["expired"]["entries"], out["expired"]["keptInGrace"]) == (2, 1)
        assert (out["retention"]["entries"], out["retention"]["auditRows"]) == (1, 1)
        assert _keys_left(pool, org_id) == {keys["venue_in_grace"], keys["live"]}


    def test_purge_deletes_the_semantic_vectors_of_purged_entries_and_old_ones(self, pool, org_id):
        """A vector holds the question's embedding and entities: retention covers it like the entry."""
        old = add_entry(pool, org_id, created=SUMMER - timedelta(days=3), ttl=40 * 86400)
        recent = add_entry(pool, org_id, created=SUMMER - timedelta(hours=1), ttl=40 * 86400, cache_type="venue_search")
        for key, created in ((old, SUMMER - timedelta(hours=2)), (recent, SUMMER - timedelta(hours=1)),
                             ("ai:{%s}:general:orphan" % org_id, SUMMER - timedelta(days=5))):
            insert_row(pool, org_id, "INSERT INTO ai_cache_semantic (cache_key, organization_id, cache_type, model, "
                       "embedding, created_at) VALUES (%s, %s, 'general', 'm', array_fill(0.0625, ARRAY[256])::vector, %s)",
                       (key, org_id, created))
        dry = purge_past_retention(pool, ManualClock(SUMMER), 2, audit_enabled=False, dry_run=True)
        assert dry["semanticVectors"] == 0 and count(pool, "SELECT count(*) FROM ai_cache_semantic") == 3
        out = purge_past_retention(pool, ManualClock(SUMMER), 2, audit_enabled=False)
        assert out["semanticVectors"] == 2  # the purged entry's vector and the orphan past retention
        assert count(pool, "SELECT count(*) FROM ai_cache_semantic WHERE cache_key = %s", recent) == 1

    def test_purge_with_audit_logging_off_writes_no_audit_row(self, pool, org_id):
        add_audit(pool, org_id, at=SUMMER - timedelta(days=3))
        out = purge_past_retention(pool, ManualClock(SUMMER), 2, audit_enabled=False)
        assert (out["cutoff"], out["auditRows"], out["auditRowsWritten"]) == ("2026-06-04T12:00:00Z", 1, 0)
        assert count(pool, "SELECT count(*) FROM ai_cache_audit_logs") == 0


# -- config review -------------------------------------------------------------------------
def test_config_review_redacts_secrets_and_warns(env, monkeypatch):
    monkeypatch.setenv("AI_CACHE_DATABASE_URL", "postgresql://app:hunter2@db.example:5432/wed")
    monkeypatch.setenv("AI_CACHE_ORIGIN_API_KEY", "sk-secret")
    monkeypatch.setenv("AI_CACHE_GDPR_RETENTION_DAYS", "10")
    monkeypatch.setenv("AI_CACHE_SEASONAL_SCALING_ENABLED", "false")

    out = run("config", "review")

    settings = out["settings"]
    assert settings["AI_CACHE_DATABASE_URL"] == "postgresql://app:***@db.example:5432/wed"
    assert settings["AI_CACHE_ORIGIN_API_KEY"] == settings["AI_CACHE_ENCRYPTION_KEY"] == "***"
    assert settings["AI_CACHE_GDPR_RETENTION_DAYS"] == 10
    assert "hunter2" not in json.dumps(out) and "sk-secret" not in json.dumps(out)
    warned = {w["setting"] for w in out["warnings"] if w["level"] == "warning"}
    assert warned == {"AI_CACHE_MEMORY_SIZE_MB", "AI_CACHE_SEASONAL_SCALING_ENABLED", "AI_CACHE_GDPR_RETENTION_DAYS"}
    assert all(s["memoryBudgetBytes"] == 512 * 2**20 for s in out["seasons"])  # no scaling: one budget
    assert runner.invoke(app, ["cache", "config", "review", "--strict", "--json"]).exit_code == 1


def test_config_review_figures_on_a_fixed_clock(policy):
    settings = load_settings({"AI_CACHE_MEMORY_SIZE_MB": "2048", "AI_CACHE_ENCRYPTION_KEY": TEST_KEY})
    out = review_config(settings, policy, ManualClock(SUMMER))
    summer = next(s for s in out["seasons"] if s["season"] == "summer")
    assert out["currentSeason"] == "summer" and summer["current"]
    assert (summer["memoryBudgetBytes"], summer["memoryNeedBytes"], summer["short"]) == \
        (3 * 2048 * 2**20, 3 * 1_768_000_000, False)
    assert out["warnings"] == []


def test_config_review_flags_risky_policy_values(tmp_path, policy):
    policy_file = tmp_path / "risky.toml"
    policy_file.write_text("jitter = 0.0\n[seasons.summer]\nttl_adjustment_factor = 1.2\n"
                           "[market_tiers.tier_1]\nttlMultiplier = 3.0\n")
    from wedcache.policy import load_policy
    settings = load_settings({"AI_CACHE_MEMORY_SIZE_MB": "4096", "AI_CACHE_ENCRYPTION_KEY": TEST_KEY})
    out = review_config(settings, load_policy(policy_file), ManualClock(SUMMER))
    assert {w["setting"] for w in out["warnings"]} == {"jitter", "seasons.summer.ttl_adjustment_factor",
                                                        "market_tiers.tier_1.ttlMultiplier"}


# -- warm ----------------------------------------------------------------------------------
def _warm_file(tmp_path, org: str):
    lines = [
        {"query": "rustic barn venues near Austin", "weddingContext": {"location": "Austin, TX",
                                                                        "vendorTypes": ["venue"]}},
        {"query": "peony florists in Manhattan", "weddingContext": {"location": "Manhattan",
                                                                     "vendorTypes": ["florist"]},
         "cacheType": "vendor_recommendation"},
        {"query": "budget for 120 guests", "weddingContext": {"guestCount": -5}},  # bad: line 3
        {"query": "Rustic  barn venues near AUSTIN", "weddingContext": {"location": "Austin, TX",
                                                                         "vendorTypes": ["venue"]}},  # duplicate
        {"query": "wedding timeline for a June ceremony", "weddingContext": {"weddingDate": "2026-06-20"},
         "organizationId": org},
    ]
    path = tmp_path / "popular.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_warm_stores_each_query_once_and_reports_bad_lines(env, tmp_path, pool, org_id, redis_url):
    path = _warm_file(tmp_path, org_id)

    first = run("warm", "--from", str(path), "--organization", org_id, code=1)
    second = run("warm", "--from", str(path), "--organization", org_id, code=1)

    assert {k: first[k] for k in ("lines", "warmed", "alreadyCached", "duplicates", "failed")} == \
        {"lines": 5, "warmed": 3, "alreadyCached": 0, "duplicates": 1, "failed": 1}
    assert first["errors"] == [{"line": 3, "field": "weddingContext.guestCount",
                                "message": first["errors"][0]["message"]}]
    assert [r["status"] for r in first["results"]] == ["warmed", "warmed", "failed", "duplicate", "warmed"]
    assert (second["warmed"], second["alreadyCached"]) == (0, 3)
    assert {r["tier"] for r in second["results"] if r["status"] == "cached"} == {"redis"}
    keys = [r["key"] for r in first["results"] if r["status"] == "warmed"]
    assert count(pool, "SELECT count(*) FROM ai_cache_entries WHERE organization_id = %s", org_id) == 3
    assert count(pool, "SELECT count(*) FROM ai_cache_entries WHERE cache_key = ANY(%s) "
                       "AND cache_value->>'sealed' = 'v1'", keys) == 3  # sealed, as the service stores them
    redis = RedisTier(redis_url)
    assert redis.client.exists(*keys) == 3
    redis.close()
    assert [r["cacheType"] for r in first["results"] if r["status"] == "warmed"] == \
        ["venue_search", "vendor_recommendation", "general"]


def test_warm_reads_csv_and_names_the_bad_field(env, tmp_path, org_id):
    path = tmp_path / "popular.csv"
    path.write_text('query,weddingContext,cacheType\n'
                    '"photographers in Dallas","{""location"": ""Dallas"", ""vendorTypes"": [""photographer""]}",\n'
                    '"a cake tasting plan",,cake_stuff\n'
                    '"",,\n'
                    '"caterers for 200 guests","{""guestCount"": 200}",vendor_recommendation\n')

    out = run("warm", "--from", str(path), "--organization", org_id, code=1)

    assert (out["warmed"], out["failed"]) == (2, 1)
    assert [(e["line"], e["field"]) for e in out["errors"]] == [(3, "cacheType")]


def test_warm_needs_an_organization_for_lines_without_one(env, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "venues", "weddingContext": {}}\nnot json\n')
    out = run("warm", "--from", str(path), code=1)
    assert [(e["line"], e["field"]) for e in out["errors"]] == [(1, "organizationId"), (2, None)]


def test_warm_a_missing_file_exits_2_naming_the_option(env, tmp_path):
    result = runner.invoke(app, ["cache", "warm", "--from", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "--from" in result.output


# -- stats ---------------------------------------------------------------------------------
def test_stats_counts_entries_per_tier_organization_and_cache_type(env, pool, org_id, now, redis_url):
    add_entry(pool, org_id, created=now, cache_type="venue_search", value="x" * 98)
    add_entry(pool, org_id, created=now - timedelta(hours=2), ttl=3600, cache_type="general", value="y" * 48)
    redis = RedisTier(redis_url)
    redis.set(CacheEntry(key_of(org_id, "venue_search"), {"a": 1}, now.timestamp(), now.timestamp() + 600, org_id,
                         cache_type="venue_search"))
    redis.close()

    out = run("stats", "--organization", org_id)

    assert out["tiers"] == {"postgres": {"entries": 2, "live": 1, "expired": 1, "valueBytes": 150, "bytes": None},
                            "redis": {"entries": 1, "bytes": None}}
    assert out["byOrganization"] == [{"organizationId": org_id, "postgresEntries": 2, "postgresLive": 1,
                                      "postgresValueBytes": 150, "redisEntries": 1}]
    assert out["byCacheType"] == [
        {"cacheType": "venue_search", "postgresEntries": 1, "postgresLive": 1, "postgresValueBytes": 100,
         "redisEntries": 1},
        {"cacheType": "general", "postgresEntries": 1, "postgresLive": 0, "postgresValueBytes": 50,
         "redisEntries": 0}]
    assert out["organizations"] == 1
    every = run("stats", "--limit", "1")
    assert every["tiers"]["postgres"]["bytes"] > 0 and every["tiers"]["redis"]["bytes"] > 0
    assert every["organizations"] >= 1 and len(every["byOrganization"]) == 1


# -- human output --------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["analytics", "--metric", "responseTime", "--group-by", "season"], ["scaling", "status"],
    ["analyze", "patterns"], ["analyze", "keys"], ["analyze", "vendors"], ["analyze", "entry-sizes"],
    ["analyze", "slow-queries"], ["cleanup", "--dry-run"], ["config", "review"], ["stats"]])
def test_human_output_renders(env, pool, org_id, now, args):
    key = add_entry(pool, org_id, created=now, vendor_types=("venue",), access_count=1, read_after=5)
    add_request(pool, org_id, at=now, ms=12.5, hit=True, key=key, vendor_type="venue")
    result = runner.invoke(app, ["cache", *args])
    assert result.exit_code == 0, result.output
    assert f"cache {args[0]}" in result.stdout and "{" not in result.stdout.splitlines()[0]
