"""Policy, settings, seasons, partitioner and the TTL formula."""
from datetime import date

import pytest

from wedcache.config import load_settings
from wedcache.context import parse_context
from wedcache.errors import ConfigError, PolicyError
from wedcache.partition import LocationBasedCachePartitioner
from wedcache.policy import dump_policy, load_policy
from wedcache.ttl import VendorCacheOptimizer, jittered


def test_policy_holds_the_seed_figures(policy):
    """Market tiers, vendor TTLs, seasons and SLA targets are the source document's."""
    assert policy.market_tiers["tier_1"].markets == ["NYC", "LA", "SF"]
    assert policy.market_tiers["tier_2"].cache_size_bytes == 512 * 10**6
    assert policy.market_tiers["tier_1"].ttlMultiplier == 1.5
    assert policy.vendors["venue"].baseTtl == 86400 and policy.vendors["florist"].volatilityFactor == 1.8
    assert len(policy.vendors) == 12
    assert {s: p.traffic_multiplier for s, p in policy.seasons.items()} == \
        {"spring": 2.5, "summer": 3.0, "fall": 2.2, "winter": 1.0}
    assert policy.sla.response_time["end_to_end"].ms == 100
    assert policy.sla.market_tier["tier_1"].hitRate == 0.90
    assert policy.rate_limits.plans == {"authenticated": 1000, "premium": 5000, "enterprise": 0}


@pytest.mark.parametrize("day,season", [(date(2026, 3, 1), "spring"), (date(2026, 5, 31), "spring"),
                                        (date(2026, 6, 6), "summer"), (date(2026, 9, 1), "fall"),
                                        (date(2026, 11, 30), "fall"), (date(2026, 12, 1), "winter"),
                                        (date(2027, 2, 28), "winter")])
def test_season_of_a_date(policy, day, season):
    assert policy.season_of(day) == season


def test_policy_file_overrides_key_by_key(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[vendors.florist]\nbaseTtl = 600\n")
    policy = load_policy(path)
    assert policy.vendors["florist"].baseTtl == 600
    assert policy.vendors["florist"].volatilityFactor == 1.8  # untouched keys keep their value


@pytest.mark.parametrize("text,field", [
    ("[vendors.florist]\nbaseTtl = 'soon'\n", "vendors.florist.baseTtl"),
    ("colour = 'blue'\n", "colour"),
    ("[vendors.juggler]\nbaseTtl = 5\nvolatilityFactor = 1.0\n", "vendors.juggler"),
    ("[market_tiers.tier_1]\ncacheSize = 'lots'\n", "market_tiers.tier_1.cacheSize"),
    ("[sla]\nhit_rate = 1.5\n", "sla.hit_rate"),
])
def test_bad_policy_names_the_key(tmp_path, text, field):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert err.value.field == field


def test_policy_round_trips_through_its_file(tmp_path, policy):
    assert load_policy(dump_policy(policy, tmp_path / "p.toml")) == policy


@pytest.mark.parametrize("var,value", [("AI_CACHE_DEFAULT_TTL", "soon"), ("AI_CACHE_MEMORY_SIZE_MB", "-5"),
                                       ("AI_CACHE_ENABLED", "perhaps"), ("AI_CACHE_AUTO_SCALE_THRESHOLD", "2"),
                                       ("AI_CACHE_EVICTION", "random"), ("AI_CACHE_GDPR_RETENTION_DAYS", "0")])
def test_bad_environment_names_the_variable(var, value):
    with pytest.raises(ConfigError) as err:
        load_settings({var: value})
    assert err.value.field == var


def test_settings_read_every_seed_variable():
    env = {"AI_CACHE_ENABLED": "false", "AI_CACHE_MEMORY_SIZE_MB": "64", "AI_CACHE_REDIS_URL": "redis://x:1/0",
           "AI_CACHE_DEFAULT_TTL": "60", "AI_CACHE_MAX_ENTRIES": "10", "AI_CACHE_SEASONAL_SCALING_ENABLED": "0",
           "AI_CACHE_AUTO_SCALE_THRESHOLD": "0.7", "AI_CACHE_SCALE_UP_FACTOR": "3", "AI_CACHE_SCALE_DOWN_FACTOR": "0.25",
           "AI_CACHE_MONITORING_ENABLED": "no", "AI_CACHE_ALERT_THRESHOLD_MS": "80",
           "AI_CACHE_HIT_RATE_ALERT_THRESHOLD": "0.75", "AI_CACHE_ENCRYPTION_ENABLED": "false",
           "AI_CACHE_AUDIT_LOGGING_ENABLED": "false", "AI_CACHE_GDPR_RETENTION_DAYS": "30",
           "AI_CACHE_DATABASE_URL": "postgresql://x/y", "AI_CACHE_POLICY_FILE": "p.toml"}
    s = load_settings(env)
    assert (s.enabled, s.memory_size_bytes, s.default_ttl, s.max_entries, s.scale_up_factor) == \
        (False, 64 * 1024 * 1024, 60, 10, 3.0)
    assert (s.gdpr_retention_days, s.database_url, str(s.policy_file)) == (30, "postgresql://x/y", "p.toml")


@pytest.mark.parametrize("location,tier", [
    ("New York", "tier_1"), ("New York, NY", "tier_1"), ("manhattan", "tier_1"), ("NYC", "tier_1"),
    ("Los Angeles", "tier_1"), ("San Francisco, CA", "tier_1"), ("SF", "tier_1"),
    ("Chicago, IL", "tier_2"), ("ATLANTA", "tier_2"), ("Dallas, TX", "tier_2"), ("Boston, MA", "tier_2"),
    ("Seattle", "tier_2"), ("Austin, TX", "tier_3"), ("Asheville", "tier_3"), (None, "tier_3"), ("", "tier_3"),
])
def test_partitioner_maps_locations_to_market_tiers(policy, location, tier):
    assert LocationBasedCachePartitioner(policy).tier_of(location) == tier


def test_ttl_formula(policy):
    """min(baseTtl) x market ttlMultiplier x season ttl_adjustment_factor, capped by maxAge."""
    ttl = VendorCacheOptimizer(policy, default_ttl=3600)
    june, january = date(2026, 6, 6), date(2026, 1, 10)
    nyc_florist = parse_context({"location": "NYC", "vendorTypes": ["venue", "florist"]})
    assert ttl.ttl_seconds(nyc_florist, june) == pytest.approx(14400 * 1.5 * 0.8)
    assert ttl.ttl_seconds(nyc_florist, january) == pytest.approx(14400 * 1.5 * 1.0)
    assert ttl.ttl_seconds(parse_context({}), january) == 3600  # no vendor: AI_CACHE_DEFAULT_TTL, tier_3
    assert ttl.ttl_seconds(parse_context({"location": "Dallas"}), june) == pytest.approx(3600 * 1.2 * 0.8)
    assert ttl.ttl_seconds(nyc_florist, june, max_age=60) == 60


def test_jitter_is_deterministic_and_bounded():
    values = [jittered(1000, f"k{i}", 0.1) for i in range(500)]
    assert all(900 < v <= 1000 for v in values)
    assert jittered(1000, "k1", 0.1) == values[1]
    assert max(values) - min(values) > 50  # actually spread
    assert jittered(1000, "k1", 0.0) == 1000


def test_the_semantic_table_is_off_by_default_and_read_from_a_policy_file(tmp_path):
    shipped = load_policy().semantic
    assert (shipped.enabled, shipped.threshold, shipped.model) == (False, 0.7013, "wordllama-l2-supercat-256")
    path = tmp_path / "policy.toml"
    path.write_text('[semantic]\nenabled = true\nthreshold = 0.8\ncache_types = ["general"]\n')
    semantic = load_policy(path).semantic
    assert (semantic.enabled, semantic.threshold, semantic.cache_types) == (True, 0.8, ["general"])
    assert load_policy(dump_policy(load_policy(path), tmp_path / "again.toml")).semantic == semantic


@pytest.mark.parametrize("table, field", [({"cache_types": ["gossip"]}, "semantic.cache_types"),
                                          ({"threshold": 1.5}, "semantic.threshold"),
                                          ({"enable": True}, "semantic.enable")])
def test_a_bad_semantic_setting_names_the_key(table, field):
    with pytest.raises(PolicyError, match=field):
        load_policy(overrides={"semantic": table})
