"""``POST /api/ai-cache/security`` over real Redis and PostgreSQL: GDPR report and deletion,
cross-organization refusals, encryption of legacy entries, integrity checks, CACHE_008.

One app per module (one worker's state) on a manual clock, with an instant origin. Entries are
stored through the query endpoint (sealed and encrypted, as in production) or, for legacy
entries, by a cache without a codec on the same servers; each tier is then checked directly:
the app's memory tier object, raw Redis, and SQL on ``ai_cache_entries``.
"""
from __future__ import annotations

import base64
import uuid

import orjson
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from wedcache.answering import infer_cache_type
from wedcache.audit import AuditLog
from wedcache.cache import TieredCache
from wedcache.encryption import EntrySealer
from wedcache.apikeys import ApiKeyStore
from wedcache.assembly import build_cache
from wedcache.clock import ManualClock
from wedcache.config import load_settings
from wedcache.context import parse_context
from wedcache.keys import organization_uuid
from wedcache.security import CacheSecurityManager, ComplianceIssue
from wedcache.entry import Selector
from wedcache.service import create_app
from wedcache.service.security_models import SecurityAnswer
from wedcache.service.state import ServiceState
from wedcache.tiers import Unreadable
from wedcache.tiers.memory import MemoryTier

pytestmark = pytest.mark.integration

PATH = "/api/ai-cache/security"
RETENTION_DAYS = 30
ANSWERS = TypeAdapter(SecurityAnswer)
BUDGET_CONTEXT = {"weddingDate": "2026-09-12", "location": "Austin, TX", "vendorTypes": ["venue"], "budget": 38500}


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def settings(redis_url, migrated_database_url):
    return load_settings(redis_url=redis_url, database_url=migrated_database_url, origin_latency_median_ms=0,
                         origin_latency_p95_ms=0, memory_size_mb=64, gdpr_retention_days=RETENTION_DAYS)


@pytest.fixture(scope="module")
def app(services, settings, clock):
    with TestClient(create_app(settings, open_state=lambda: ServiceState.open(settings, clock=clock))) as client:
        yield client


@pytest.fixture(scope="module")
def store(migrated_database_url):
    return ApiKeyStore(migrated_database_url)


@pytest.fixture(scope="module")
def raw_redis(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def new_key(store, role="member", org=None) -> tuple[str, str]:
    key, secret = store.create(org or str(uuid.uuid4()), "enterprise", role)
    return key.organization_id, secret


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "User-Agent": "gdpr-tests/1.0"}


def ask(app, secret, query, context=None):
    response = app.post("/api/ai-cache/query", headers=auth(secret), json={"query": query, "weddingContext": context})
    assert response.status_code == 200, response.text
    return response


def act(app, secret, action, **fields):
    return app.post(PATH, headers=auth(secret), json={"action": action, **fields})


def ok(response) -> dict:
    """The answer, checked against its documented model."""
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    ANSWERS.validate_python(response.json())
    return response.json()


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code
    return body


def tier(app, name):
    return next(t for t in app.app.state.wedcache.cache.tiers if t.name == name)


def pg_rows(database_url, org, where="TRUE", params=()) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"SELECT cache_key, wedding_id::text, cache_value FROM ai_cache_entries "
                            f"WHERE organization_id = %s AND {where}", (org, *params)).fetchall()


def audit_rows(database_url, org, action) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT risk_level::text, host(ip_address), user_agent, details, resource_id "
                            "FROM ai_cache_audit_logs WHERE organization_id = %s AND action_type = %s "
                            "ORDER BY created_at", (org, action)).fetchall()


def redis_keys(raw_redis, org, index="all") -> set[bytes]:
    return raw_redis.smembers(f"ai:{{{org}}}:idx:{index}")


# -- generateGDPRReport --------------------------------------------------------------------------
def test_gdpr_report_counts_what_each_tier_stores(app, store, raw_redis, migrated_database_url):
    org, secret = new_key(store)
    ask(app, secret, "barn venues near Austin", BUDGET_CONTEXT)
    ask(app, secret, "florists near Austin", {**BUDGET_CONTEXT, "vendorTypes": ["florist"]})
    ask(app, secret, "what is a first look", None)
    report = ok(act(app, secret, "generateGDPRReport"))
    assert report["organizationId"] == org and report["complete"] is True
    stored = {"memory": len(list(tier(app, "memory").entries(org))), "redis": len(redis_keys(raw_redis, org)),
              "postgres": len(pg_rows(migrated_database_url, org))}
    assert stored == {"memory": 3, "redis": 3, "postgres": 3}
    for name, holdings in report["tiers"].items():
        assert holdings["entries"] == stored[name] and holdings["bytes"] > 0
        assert holdings["personalDataEntries"] == 2 and holdings["encryptedEntries"] == 3
    assert report["totals"] == {"entries": 3, "personalDataEntries": 2, "unencryptedPersonalDataEntries": 0}
    assert report["personalData"] == {"fields": ["budget"], "encryptionEnabled": True, "encrypted": True}
    assert report["retention"]["status"] == "within" and report["retention"]["retentionDays"] == RETENTION_DAYS
    record = report["recordOfProcessing"]
    assert record["controller"] == {"organizationId": org}
    assert any("AES-256-GCM" in m for m in record["securityMeasures"])
    assert any("HMAC" in m for m in record["securityMeasures"])
    assert any("budget" in c for c in record["categoriesOfPersonalData"])
    [(risk, _, agent, details, resource)] = audit_rows(migrated_database_url, org, "GDPR_REPORT")
    assert (risk, agent, resource, details["totals"]["entries"]) == ("low", "gdpr-tests/1.0", org, 3)


# -- handleDataDeletionRequest ----------------------------------------------------------------------
def test_deletion_by_wedding_empties_every_tier_of_that_wedding_only(app, store, raw_redis, migrated_database_url):
    org, secret = new_key(store, role="admin")
    gone, kept = "wedding-ana-and-sam", "wedding-kim-and-lee"
    for query in ("barn venues near Austin", "rustic florists"):
        ask(app, secret, query, {**BUDGET_CONTEXT, "weddingId": gone})
    ask(app, secret, "barn venues near Austin", {**BUDGET_CONTEXT, "weddingId": kept, "guestCount": 80})
    ask(app, secret, "what is a first look")
    answer = ok(act(app, secret, "handleDataDeletionRequest", organizationId=org, weddingId=gone))
    gone_id, kept_id = organization_uuid(gone, "weddingId"), organization_uuid(kept, "weddingId")
    assert answer["removed"] == {"memory": 2, "redis": 2, "postgres": 2} and answer["complete"] is True
    assert answer["weddingIds"] == [gone_id] and answer["total"] == 6
    memory = list(tier(app, "memory").entries(org))
    assert [e.wedding_id for e in memory].count(gone_id) == 0 and len(memory) == 2
    assert redis_keys(raw_redis, org, f"wedding:{gone_id}") == set() and len(redis_keys(raw_redis, org)) == 2
    assert redis_keys(raw_redis, org, f"wedding:{kept_id}") != set()
    assert pg_rows(migrated_database_url, org, "wedding_id = %s", (gone_id,)) == []
    assert len(pg_rows(migrated_database_url, org)) == 2
    [(risk, _, agent, details, resource)] = audit_rows(migrated_database_url, org, "GDPR_DELETION")
    assert (risk, agent, resource, details["removed"]) == ("medium", "gdpr-tests/1.0", gone,
                                                           {"memory": 2, "redis": 2, "postgres": 2})


def test_deletion_by_user_reaches_the_weddings_recorded_for_them_or_is_cache_008(app, store,
                                                                                   migrated_database_url):
    org, secret = new_key(store, role="admin")
    user = str(uuid.uuid4())
    refused = error(act(app, secret, "handleDataDeletionRequest", organizationId=org, userId=user), 409, "CACHE_008")
    assert refused["details"]["field"] == "userId" and "weddingId" in refused["message"]
    assert audit_rows(migrated_database_url, org, "GDPR_DELETION")[0][0] == "medium"
    ask(app, secret, "barn venues near Austin", {**BUDGET_CONTEXT, "weddingId": "w-user-1"})
    ask(app, secret, "florists near Austin", {**BUDGET_CONTEXT, "weddingId": "w-other"})
    with psycopg.connect(migrated_database_url, autocommit=True) as conn:  # the product records the couple
        conn.execute("INSERT INTO wedding_members (wedding_id, user_id) VALUES (%s, %s)",
                     (organization_uuid("w-user-1", "weddingId"), user))
    done = act(app, secret, "handleDataDeletionRequest", organizationId=org, userId=user)
    assert done.status_code == 200
    assert done.json()["removed"] == {"memory": 1, "redis": 1, "postgres": 1}
    assert len(pg_rows(migrated_database_url, org)) == 1  # the other wedding's entry stays


def test_deletion_with_a_tier_down_is_cache_008_and_reports_it(local_redis, store, services, migrated_database_url):
    server = local_redis()
    settings = load_settings(redis_url=server.url, database_url=migrated_database_url, origin_latency_median_ms=0,
                             origin_latency_p95_ms=0, memory_size_mb=16)
    org, secret = new_key(store, role="admin")
    with TestClient(create_app(settings)) as client:
        ask(client, secret, "barn venues near Austin", {**BUDGET_CONTEXT, "weddingId": "w-down"})
        server.stop()
        refused = error(act(client, secret, "handleDataDeletionRequest", organizationId=org, weddingId="w-down"),
                        409, "CACHE_008")
    assert refused["details"]["removed"] == {"memory": 1, "redis": -1, "postgres": 1}
    assert refused["details"]["complete"] is False and "redis" in refused["message"]
    assert pg_rows(migrated_database_url, org) == []
    assert audit_rows(migrated_database_url, org, "GDPR_DELETION")[0][0] == "high"


# -- tenancy and roles -----------------------------------------------------------------------------
def test_cross_organization_requests_are_cache_007_and_audited(app, store, migrated_database_url):
    org, secret = new_key(store)
    other, _ = new_key(store)
    for action, extra in (("generateGDPRReport", {}), ("handleDataDeletionRequest", {"weddingId": "w-1"}),
                          ("auditSecurityViolations", {})):
        refused = error(act(app, secret, action, organizationId=other, **extra), 403, "CACHE_007")
        assert refused["details"]["field"] == "organizationId"
    rows = audit_rows(migrated_database_url, org, "SECURITY_VIOLATION")
    assert len(rows) == 3 and {r[0] for r in rows} == {"high"}
    assert all(r[3]["organizationId"] == other and r[2] == "gdpr-tests/1.0" for r in rows)
    assert audit_rows(migrated_database_url, other, "GDPR_REPORT") == []
    violations = ok(act(app, secret, "auditSecurityViolations", limit=2))
    assert violations["total"] == 2 and violations["byRiskLevel"]["high"] == 2
    assert violations["byViolation"] == {"cross-organization access": 2}
    assert ok(act(app, secret, "auditSecurityViolations", since="2100-01-01T00:00:00Z"))["total"] == 0
    for edge in ("0001-01-01T00:00:00+23:00", "9999-12-31T23:59:59-23:00"):  # zones past the calendar's ends
        ok(act(app, secret, "auditSecurityViolations", since=edge))


@pytest.mark.parametrize("action", ["handleDataDeletionRequest", "encryptSensitiveData", "validateCacheIntegrity"])
def test_state_changing_actions_need_an_admin_key(app, store, migrated_database_url, action):
    org, secret = new_key(store)
    extra = {"organizationId": org, "weddingId": "w-1"} if action == "handleDataDeletionRequest" else {}
    assert error(act(app, secret, action, **extra), 403, "CACHE_007")["details"]["field"] == "action"
    [(risk, *_)] = audit_rows(migrated_database_url, org, "SECURITY_VIOLATION")
    assert risk == "medium"


def test_an_admin_key_may_act_on_another_organization(app, store, migrated_database_url):
    _, admin = new_key(store, role="admin")
    other, member = new_key(store)
    ask(app, member, "barn venues near Austin", BUDGET_CONTEXT)
    report = ok(act(app, admin, "generateGDPRReport", organizationId=other))
    assert report["totals"]["entries"] == 1
    [row] = audit_rows(migrated_database_url, other, "GDPR_REPORT")
    assert row[3]["actorOrganizationId"] != other


# -- encryptSensitiveData -----------------------------------------------------------------------------
def test_encrypt_sensitive_data_seals_legacy_entries_in_every_tier(app, store, settings, clock, raw_redis,
                                                                   migrated_database_url):
    org, secret = new_key(store, role="admin")
    legacy = build_cache(settings, clock=clock, memory=False, codec=None)
    query, value = "barn venues near Austin", {"answer": "Cedar Barn fits 120 guests", "n": 3}
    try:
        cache_type = infer_cache_type(parse_context(BUDGET_CONTEXT))
        entry = legacy.set(org, query, BUDGET_CONTEXT, value, cache_type=cache_type)
    finally:
        legacy.close()
    memory = tier(app, "memory")
    memory.set(entry)  # as if this replica had read it before encryption was enabled
    assert b"Cedar Barn" in raw_redis.get(entry.key)
    answer = ok(act(app, secret, "encryptSensitiveData"))
    assert {name: t["encrypted"] for name, t in answer["tiers"].items()} == {"memory": 1, "redis": 1, "postgres": 1}
    codec = app.app.state.wedcache.cache.codec
    assert codec.verify(memory.get(entry.key))
    raw = raw_redis.get(entry.key)
    assert b"Cedar Barn" not in raw and b"38500" not in raw and orjson.loads(raw)[1]["sealed"] == "v1"
    [(_, _, stored)] = pg_rows(migrated_database_url, org)
    assert stored["sealed"] == "v1" and "Cedar Barn" not in orjson.dumps(stored).decode()
    assert ask(app, secret, query, BUDGET_CONTEXT).json()["data"] == value  # memory
    cache = app.app.state.wedcache.cache
    memory.delete(entry.key)
    hit = cache.get(entry.key)
    assert (hit.tier, hit.value) == ("redis", value)
    memory.delete(entry.key)
    tier(app, "redis").delete(entry.key)
    hit = cache.get(entry.key)
    assert (hit.tier, hit.value) == ("postgres", value)
    assert ok(act(app, secret, "encryptSensitiveData"))["encrypted"] == 0
    assert sorted(r[3]["encrypted"] for r in audit_rows(migrated_database_url, org, "ENCRYPTION")) == [0, 3]


def test_with_encryption_off_the_report_says_so_and_encrypting_is_cache_008(clock):
    """A tag-only sealer (AI_CACHE_ENCRYPTION_ENABLED=false) over a memory-only cache; no audit database."""
    cache = TieredCache([MemoryTier()], clock=clock, codec=EntrySealer(bytes(32), encrypt=False))
    manager = CacheSecurityManager(cache, AuditLog(None, clock, enabled=False), None, retention_days=RETENTION_DAYS)
    cache.set("acme", "barn venues near Austin", BUDGET_CONTEXT, "Cedar Barn")
    report = manager.generate_gdpr_report("acme")
    assert report["personalData"] == {"fields": ["budget"], "encryptionEnabled": False, "encrypted": False}
    assert report["totals"]["unencryptedPersonalDataEntries"] == 1
    assert not any("AES" in m for m in report["recordOfProcessing"]["securityMeasures"])
    assert report["retention"]["auditTrail"]["rows"] is None  # not readable: said, not guessed
    with pytest.raises(ComplianceIssue, match="AI_CACHE_ENCRYPTION_ENABLED"):
        manager.encrypt_sensitive_data("acme")


# -- validateCacheIntegrity ---------------------------------------------------------------------------
def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_integrity_check_removes_entries_tampered_in_redis_and_postgres(app, store, raw_redis, migrated_database_url):
    org, secret = new_key(store, role="admin")
    for query in ("barn venues near Austin", "rustic florists", "string quartets"):
        ask(app, secret, query, BUDGET_CONTEXT)
    first, second, third = sorted(e.key for e in tier(app, "memory").entries(org))
    stored = orjson.loads(raw_redis.get(first))
    stored[1]["value"]["c"] = _flip(stored[1]["value"]["c"])  # a changed byte of the encrypted answer
    raw_redis.set(first, orjson.dumps(stored), keepttl=True)
    raw_redis.set(third, b"\x00not an entry", keepttl=True)
    with psycopg.connect(migrated_database_url) as conn:
        conn.execute("UPDATE ai_cache_entries SET wedding_context = jsonb_set(wedding_context, '{guestCount}', "
                     "'999') WHERE cache_key = %s", (second,))
    report = ok(act(app, secret, "validateCacheIntegrity"))
    assert report["tampered"] == 3 and report["inconsistent"] == 0
    assert {n: (t["tampered"], t["removed"]) for n, t in report["tiers"].items()} == {
        "memory": (0, 0), "redis": (2, 2), "postgres": (1, 1)}
    assert {(p["cacheKey"], tuple(p["tiers"])) for p in report["problems"]} == {
        (first, ("redis",)), (third, ("redis",)), (second, ("postgres",))}
    assert raw_redis.get(first) is None and raw_redis.get(third) is None and raw_redis.get(second) is not None
    assert {row[0] for row in pg_rows(migrated_database_url, org)} == {first, third}
    violations = audit_rows(migrated_database_url, org, "SECURITY_VIOLATION")
    assert sorted(r[4] for r in violations) == sorted([first, second, third])
    assert {r[0] for r in violations} == {"critical"}
    again = ok(act(app, secret, "validateCacheIntegrity"))
    assert again["tampered"] == 0 and again["removed"] == 0
    assert ask(app, secret, "barn venues near Austin", BUDGET_CONTEXT).headers["X-Cache"] == "HIT-memory"
    assert sorted(r[0] for r in audit_rows(migrated_database_url, org, "INTEGRITY_CHECK")) == ["critical", "low"]


def test_integrity_check_removes_a_validly_sealed_but_replayed_copy(app, store, migrated_database_url):
    org, secret = new_key(store, role="admin")
    ask(app, secret, "barn venues near Austin", BUDGET_CONTEXT)
    cache = app.app.state.wedcache.cache
    [entry] = tier(app, "memory").entries(org)
    older = cache.codec.open(entry)
    older.value = {"answer": "an answer from before the venue closed"}
    tier(app, "redis").set(cache.codec.seal(older))  # its tag is valid: only the other tiers show it
    report = ok(act(app, secret, "validateCacheIntegrity"))
    assert report["tampered"] == 0 and report["inconsistent"] == 1
    assert {n: t["removed"] for n, t in report["tiers"].items()} == {"memory": 1, "redis": 1, "postgres": 1}
    assert all(t.get(entry.key) is None for t in cache.tiers)
    assert audit_rows(migrated_database_url, org, "SECURITY_VIOLATION")[0][0] == "high"


def test_each_tier_lists_one_organization_and_reads_past_corrupt_bytes(app, store, raw_redis):
    org, secret = new_key(store)
    _, other = new_key(store)
    for query in ("barn venues near Austin", "rustic florists"):
        ask(app, secret, query, BUDGET_CONTEXT)
    ask(app, other, "barn venues near Austin", BUDGET_CONTEXT)
    listed = app.app.state.wedcache.cache.entries_per_tier(org)
    keys = {name: sorted(e.key for e in found) for name, found in listed.items()}
    assert len(keys["memory"]) == 2 and keys["memory"] == keys["redis"] == keys["postgres"]
    assert all(e.org_id == org for found in listed.values() for e in found)
    raw_redis.set(keys["redis"][0], b"{corrupt", keepttl=True)
    redis_tier = tier(app, "redis")
    assert [type(e) for e in redis_tier.entries(org)].count(Unreadable) == 1
    assert redis_tier.invalidate(Selector(org_id=org)) == 1  # the readable one; the corrupt one stays for
    assert redis_tier.delete(keys["redis"][0]) is True        # the integrity check, which can delete it
    assert list(redis_tier.entries(org)) == []


# -- retention --------------------------------------------------------------------------------------
def test_the_report_flags_data_kept_past_retention(app, store, clock):
    org, secret = new_key(store)
    ask(app, secret, "barn venues near Austin", BUDGET_CONTEXT)
    clock.advance((RETENTION_DAYS + 1) * 86400)
    retention = ok(act(app, secret, "generateGDPRReport"))["retention"]
    assert retention["status"] == "exceeded" and retention["entriesPastRetention"] == 1
    assert retention["oldestEntryAgeDays"] > RETENTION_DAYS and retention["auditTrail"]["rowsPastRetention"] == 0


# -- bad bodies ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, field", [
    ({}, "action"),
    ({"action": "deleteEverything"}, "action"),
    ({"action": "generateGDPRReport", "organizationId": ""}, "organizationId"),
    ({"action": "generateGDPRReport", "userId": "u-1"}, "userId"),
    ({"action": "generateGDPRReport", "surprise": 1}, "surprise"),
    ({"action": "handleDataDeletionRequest", "weddingId": "w-1"}, "organizationId"),
    ({"action": "handleDataDeletionRequest", "organizationId": "ORG"}, "weddingId"),
    ({"action": "handleDataDeletionRequest", "organizationId": "ORG", "weddingId": 7}, "weddingId"),
    ({"action": "auditSecurityViolations", "limit": 0}, "limit"),
    ({"action": "auditSecurityViolations", "since": "last tuesday"}, "since"),
])
def test_bad_bodies_are_cache_001_naming_the_field(app, store, body, field):
    org, secret = new_key(store, role="admin")
    if body.get("organizationId") == "ORG":
        body = {**body, "organizationId": org}
    refused = error(app.post(PATH, headers=auth(secret), json=body), 400, "CACHE_001")
    assert refused["details"]["field"] == field and field in refused["message"]


def test_the_endpoint_is_documented(app):
    operation = app.get("/openapi.json").json()["paths"][PATH]["post"]
    assert {"200", "400", "401", "403", "409", "429", "503"} <= set(operation["responses"])
