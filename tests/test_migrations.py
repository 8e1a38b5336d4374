"""The PostgreSQL schema: migrations apply once, record themselves, and build the source document's tables."""
from __future__ import annotations

import threading

import psycopg
import pytest
from conftest import scratch_database

from wedcache.keys import CACHE_TYPES
from wedcache.migrations import apply_migrations, available_migrations, pending_migrations
from wedcache.policy import MARKET_TIERS, SEASONS, VENDOR_TYPES

pytestmark = pytest.mark.integration

# The source document's columns: (name, type, nullable). The four ai_cache_* tables verbatim.
SEED_COLUMNS = {
    "ai_cache_entries": [
        ("id", "uuid", False), ("cache_key", "text", False), ("cache_value", "jsonb", False),
        ("ttl_seconds", "int4", False), ("created_at", "timestamptz", True), ("expires_at", "timestamptz", False),
        ("wedding_id", "uuid", True), ("organization_id", "uuid", False), ("cache_type", "cache_type_enum", False),
        ("wedding_context", "jsonb", True), ("access_count", "int4", True), ("last_accessed_at", "timestamptz", True),
        ("market_tier", "market_tier_enum", True), ("vendor_type", "vendor_type_enum", True),
        ("seasonal_context", "jsonb", True)],
    "ai_cache_performance_metrics": [
        ("id", "uuid", False), ("organization_id", "uuid", False), ("metric_type", "performance_metric_type", False),
        ("metric_value", "numeric", False), ("recorded_at", "timestamptz", True), ("cache_key", "text", True),
        ("response_time_ms", "int4", True), ("hit_rate", "numeric", True), ("memory_usage_mb", "int4", True),
        ("market_tier", "market_tier_enum", True), ("seasonal_context", "jsonb", True)],
    "ai_cache_seasonal_configs": [
        ("id", "uuid", False), ("season", "season_enum", False), ("traffic_multiplier", "numeric", False),
        ("cache_size_multiplier", "numeric", False), ("ttl_adjustment_factor", "numeric", False),
        ("cost_factor", "numeric", False), ("start_date", "date", False), ("end_date", "date", False),
        ("is_active", "bool", True), ("created_at", "timestamptz", True), ("updated_at", "timestamptz", True)],
    "ai_cache_audit_logs": [
        ("id", "uuid", False), ("organization_id", "uuid", False), ("action_type", "audit_action_type", False),
        ("resource_type", "text", False), ("resource_id", "text", True), ("user_id", "uuid", True),
        ("ip_address", "inet", True), ("user_agent", "text", True), ("details", "jsonb", True),
        ("created_at", "timestamptz", True), ("risk_level", "risk_level_enum", True)],
    "organizations": [("id", "uuid", False), ("name", "text", True), ("created_at", "timestamptz", True)],
    "weddings": [
        ("id", "uuid", False), ("organization_id", "uuid", False), ("wedding_date", "date", True),
        ("location", "text", True), ("created_at", "timestamptz", True)],
    "auth.users": [("id", "uuid", False), ("email", "text", True), ("created_at", "timestamptz", True)],
}
# wedcache's additions (0002_cache_lookup.sql).
ADDED_COLUMNS = {
    "ai_cache_entries": [("query_text", "text", False), ("vendor_types", "_vendor_type_enum", False)],
    "ai_cache_performance_metrics": [("tier", "text", True), ("vendor_type", "vendor_type_enum", True),
                                     ("season", "season_enum", True)],
}

ENUMS = {
    "cache_type_enum": CACHE_TYPES,
    "market_tier_enum": MARKET_TIERS,
    "vendor_type_enum": VENDOR_TYPES,
    "season_enum": SEASONS,
    "performance_metric_type": ("hit", "miss", "response_time", "hit_rate", "memory_usage", "eviction", "error"),
    "audit_action_type": (
        "CACHE_ACCESS", "CACHE_WRITE", "CACHE_INVALIDATE", "CACHE_DELETE", "SECURITY_VIOLATION", "GDPR_REPORT",
        "GDPR_DELETION", "ENCRYPTION", "INTEGRITY_CHECK", "SCALING_CHANGE", "CONFIG_CHANGE", "KEY_CREATED",
        "KEY_REVOKED"),
    "risk_level_enum": ("low", "medium", "high", "critical"),
}


@pytest.fixture
def fresh_database_url(services):
    """A new, empty database on the test server, dropped afterwards."""
    with scratch_database(services.database_url, "wedcache_mig") as url:
        yield url


def columns(url: str, table: str) -> list[tuple[str, str, bool]]:
    schema, _, name = table.rpartition(".")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name, udt_name, is_nullable = 'YES' FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema or "public", name)).fetchall()
    return [tuple(row) for row in rows]


def test_an_empty_database_has_every_migration_pending(fresh_database_url):
    assert pending_migrations(fresh_database_url) == available_migrations()
    assert available_migrations()[0] == "0001_initial"


def test_migrating_twice_applies_once_and_records_versions(database_url):
    pending = pending_migrations(database_url)
    assert apply_migrations(database_url) == pending
    assert apply_migrations(database_url) == []
    assert pending_migrations(database_url) == []
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT version, applied_at FROM wedcache_migrations ORDER BY version").fetchall()
    assert [version for version, _ in rows] == available_migrations()
    assert all(applied_at is not None for _, applied_at in rows)


def test_two_processes_migrating_at_once_apply_each_migration_once(fresh_database_url):
    start, results, errors = threading.Barrier(2), [], []

    def migrate() -> None:
        start.wait()
        try:
            results.append(apply_migrations(fresh_database_url))
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results[0] + results[1]) == available_migrations()
    assert pending_migrations(fresh_database_url) == []


@pytest.mark.parametrize("table", sorted(SEED_COLUMNS))
def test_tables_have_the_source_documents_columns(migrated_database_url, table):
    assert columns(migrated_database_url, table) == SEED_COLUMNS[table] + ADDED_COLUMNS.get(table, [])


@pytest.mark.parametrize("enum", sorted(ENUMS))
def test_enums_have_the_policys_values(migrated_database_url, enum):
    with psycopg.connect(migrated_database_url) as conn:
        labels = conn.execute("SELECT enumlabel FROM pg_enum WHERE enumtypid = %s::regtype ORDER BY enumsortorder",
                              (enum,)).fetchall()
    assert tuple(label for (label,) in labels) == ENUMS[enum]


def test_entries_are_unique_by_key_and_indexed_for_invalidation(migrated_database_url):
    with psycopg.connect(migrated_database_url) as conn:
        indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
                                    ("ai_cache_entries",)).fetchall())
    definitions = [d.split(" USING ", 1)[1] for d in indexes.values()]
    assert "UNIQUE" in indexes["ai_cache_entries_cache_key_key"]
    for expected in ("btree (organization_id)", "btree (wedding_id)", "btree (organization_id, cache_type)",
                     "btree (organization_id, market_tier)", "gin (vendor_types)", "btree (expires_at)"):
        assert expected in definitions
