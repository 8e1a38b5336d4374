"""Semantic matching inside the cache and the HTTP service, over real Redis and PostgreSQL (pgvector).

The cache is the production one (:func:`~wedcache.assembly.build_cache`: memory, Redis,
PostgreSQL) with the policy's ``[semantic]`` table turned on. Exact keys answer first; a
paraphrase is a semantic hit; the near misses the guard knows (another city, another
guest-count range, "not allowed") are misses; nothing crosses organizations; an invalidated
entry never answers a near match again; and with the shipped policy (off) nothing changes.
"""
from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from wedcache.answering import WeddingAICacheService
from wedcache.apikeys import ApiKeyStore
from wedcache.assembly import build_cache
from wedcache.config import load_settings
from wedcache.policy import load_policy
from wedcache.semantic.pgvector import TABLE
from wedcache.service import create_app
from serving import serve_env, serving

pytestmark = pytest.mark.integration

VENUES = {"vendorTypes": ["venue"]}
QUESTION = "barn venues near Austin for 150 guests"
PARAPHRASE = "rustic barn wedding venues around Austin, 150 people"
NEAR_MISSES = {  # the guard's reason for each
    "barn venues near Dallas for 150 guests": "location",
    "barn venues near Austin for 50 guests": "guest_count",
}
ALLOWED, NOT_ALLOWED = "Are sparkler send-offs allowed at Austin venues?", "Are sparkler send-offs not allowed at Austin venues?"
SEMANTIC_ON = {"semantic": {"enabled": True}}


def origin(answers: list[str]):
    """An origin that records what it was asked and answers with the question."""
    def answer(query: str) -> str:
        answers.append(query)
        return f"answer to {query}"
    return answer


@pytest.fixture
def semantic_cache(clock, redis_url, migrated_database_url):
    registry = CollectorRegistry()
    cache = build_cache(load_settings(), clock=clock, policy=load_policy(overrides=SEMANTIC_ON), redis_url=redis_url,
                        database_url=migrated_database_url, semantic_registry=registry)
    cache.registry = registry
    yield cache
    cache.close()


def ask(cache, org: str, query: str, asked: list[str], context=VENUES, **kw):
    return cache.get_or_compute(org, query, context, lambda: origin(asked)(query), cache_type="venue_search", **kw)


def rows_of(database_url: str, org: str) -> list[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(f"SELECT cache_key FROM {TABLE} WHERE organization_id = %s", (org,))]


def rejections(registry, reason: str) -> float:
    return registry.get_sample_value("ai_cache_semantic_rejections_total", {"reason": reason}) or 0.0


# -- the cache -------------------------------------------------------------------------------
def test_exact_keys_answer_first_and_a_paraphrase_is_a_semantic_hit(semantic_cache, org_id, migrated_database_url):
    asked: list[str] = []
    first = ask(semantic_cache, org_id, QUESTION, asked)
    again = ask(semantic_cache, org_id, QUESTION.upper(), asked)
    assert (first.cached, again.cached, again.tier, again.semantic) == (False, True, "memory", False)
    assert rows_of(migrated_database_url, org_id) == [first.key]  # the vector, stored once with the entry

    near = ask(semantic_cache, org_id, PARAPHRASE, asked)
    assert near.cached and near.semantic and near.tier == "memory" and near.index_tier == "memory"
    assert near.value == f"answer to {QUESTION}" and near.matched_key == first.key and near.key != first.key
    assert 0.7 <= near.similarity < 1
    assert asked == [QUESTION]
    assert semantic_cache.stats()["semantic"] == {"hits": 1, "errors": 0}


def test_near_misses_the_guard_knows_are_misses_and_counted(semantic_cache, org_id):
    asked: list[str] = []
    ask(semantic_cache, org_id, QUESTION, asked)
    ask(semantic_cache, org_id, ALLOWED, asked)
    for query, reason in [*NEAR_MISSES.items(), (NOT_ALLOWED, "polarity")]:
        before = rejections(semantic_cache.registry, reason)
        result = ask(semantic_cache, org_id, query, asked)
        assert not result.cached and not result.semantic, query
        assert rejections(semantic_cache.registry, reason) > before, reason
    assert asked == [QUESTION, ALLOWED, *NEAR_MISSES, NOT_ALLOWED]


def test_another_organization_never_gets_the_answer(semantic_cache, org_id):
    asked: list[str] = []
    ask(semantic_cache, org_id, QUESTION, asked)
    other = ask(semantic_cache, str(uuid.uuid4()), PARAPHRASE, asked)
    assert not other.cached and asked == [QUESTION, PARAPHRASE]


def test_an_invalidated_entry_never_answers_a_near_match(semantic_cache, org_id, migrated_database_url):
    asked: list[str] = []
    wedding = str(uuid.uuid4())
    first = ask(semantic_cache, org_id, QUESTION, asked, context={**VENUES, "weddingId": wedding})
    kept = ask(semantic_cache, org_id, ALLOWED, asked)
    assert semantic_cache.invalidate(scope="wedding", org_id=org_id, wedding_id=wedding) == 3  # a GDPR deletion
    assert rows_of(migrated_database_url, org_id) == [kept.key]  # its vector went with it
    assert not ask(semantic_cache, org_id, PARAPHRASE, asked).cached

    semantic_cache.invalidate(org_id=org_id)  # the whole organization
    assert rows_of(migrated_database_url, org_id) == [] and semantic_cache.semantic.index.size(org_id) == 0
    assert not first.semantic and asked == [QUESTION, ALLOWED, PARAPHRASE]


def test_a_deleted_entry_or_one_gone_elsewhere_is_forgotten(semantic_cache, org_id, migrated_database_url):
    asked: list[str] = []
    first = ask(semantic_cache, org_id, QUESTION, asked)
    semantic_cache.delete(first.key)
    assert rows_of(migrated_database_url, org_id) == []
    second = ask(semantic_cache, org_id, PARAPHRASE, asked)
    for tier in semantic_cache.tiers:  # removed behind the cache's back (another replica, expiry)
        tier.delete(second.key)
    assert not ask(semantic_cache, org_id, "rustic barn venues around Austin for 150 people", asked).semantic
    assert second.key not in rows_of(migrated_database_url, org_id)


def test_force_refresh_and_other_cache_types_skip_semantic_matching(semantic_cache, org_id):
    asked: list[str] = []
    ask(semantic_cache, org_id, QUESTION, asked)
    assert not ask(semantic_cache, org_id, PARAPHRASE, asked, force_refresh=True).cached
    budget = semantic_cache.get_or_compute(org_id, "barn venue budget for Austin", None, lambda: 1,
                                           cache_type="budget_estimate")
    assert not semantic_cache.get_or_compute(org_id, "budget for a barn venue in Austin", None, lambda: 2,
                                             cache_type="budget_estimate").cached
    assert semantic_cache.semantic.index.entities(budget.key) is None  # not indexed at all


def test_another_replica_finds_the_vector_in_pgvector(semantic_cache, clock, redis_url, migrated_database_url, org_id):
    asked: list[str] = []
    first = ask(semantic_cache, org_id, QUESTION, asked)
    replica = build_cache(load_settings(), clock=clock, policy=load_policy(overrides=SEMANTIC_ON), redis_url=redis_url,
                          database_url=migrated_database_url)
    try:
        near = ask(replica, org_id, PARAPHRASE, asked)
        assert (near.semantic, near.index_tier, near.tier, near.matched_key) == (True, "postgres", "redis", first.key)
        assert asked == [QUESTION]
    finally:
        replica.close()


def test_an_entry_evicted_from_memory_leaves_the_memory_index_but_not_pgvector(clock, redis_url,
                                                                               migrated_database_url, org_id):
    cache = build_cache(load_settings(max_entries=1, eviction="lru"), clock=clock,
                        policy=load_policy(overrides=SEMANTIC_ON), redis_url=redis_url,
                        database_url=migrated_database_url)
    try:
        asked: list[str] = []
        first = ask(cache, org_id, QUESTION, asked)
        ask(cache, org_id, ALLOWED, asked)  # evicts the first from memory (one entry fits)
        assert cache.semantic.index.entities(first.key) is None
        near = ask(cache, org_id, PARAPHRASE, asked)
        assert (near.semantic, near.index_tier, near.tier) == (True, "postgres", "redis")
    finally:
        cache.close()


def test_without_the_extra_the_start_up_names_it(monkeypatch):
    import sys

    from wedcache.assembly import build_semantic
    from wedcache.semantic import embedder
    from wedcache.semantic.embedder import SemanticUnavailable

    monkeypatch.setattr(embedder, "_LOADED", {})
    monkeypatch.setitem(sys.modules, "wordllama.inference", None)  # as if wordllama were not installed
    with pytest.raises(SemanticUnavailable, match=r"semantic.*pip install -e \"\.\[semantic\]\""):
        build_semantic(load_policy(overrides=SEMANTIC_ON))
    assert build_semantic(load_policy()) is None  # off: the model is never loaded


def test_a_failing_matcher_degrades_to_exact_matching(semantic_cache, org_id):
    asked: list[str] = []
    ask(semantic_cache, org_id, QUESTION, asked)

    def broken(*args, **kwargs):
        raise RuntimeError("model gone")
    semantic_cache.semantic.match = broken
    assert not ask(semantic_cache, org_id, PARAPHRASE, asked).cached
    assert ask(semantic_cache, org_id, QUESTION, asked).cached
    assert semantic_cache.stats()["semantic"]["errors"] == 1


def test_semantic_matching_is_off_by_default(clock, redis_url, migrated_database_url, org_id):
    cache = build_cache(load_settings(), clock=clock, redis_url=redis_url, database_url=migrated_database_url)
    try:
        assert load_policy().semantic.enabled is False and cache.semantic is None
        asked: list[str] = []
        ask(cache, org_id, QUESTION, asked)
        assert not ask(cache, org_id, PARAPHRASE, asked).cached and "semantic" not in cache.stats()
        assert rows_of(migrated_database_url, org_id) == []
    finally:
        cache.close()


def test_the_service_marks_a_semantic_hit(semantic_cache, org_id):
    service = WeddingAICacheService(semantic_cache, lambda query, ctx: f"answer to {query}")
    service.answer(org_id, QUESTION, VENUES)
    near = service.answer(org_id, PARAPHRASE, VENUES, {"includeAnalytics": True})
    assert near.x_cache == "HIT-semantic-memory"
    semantic = near.body["analytics"]["semantic"]
    assert semantic["matchedKey"] == near.result.matched_key and semantic["indexTier"] == "memory"
    assert set(near.body) == {"success", "data", "cached", "cacheAge", "responseTime", "analytics"}


# -- over HTTP -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(migrated_database_url):
    return ApiKeyStore(migrated_database_url)


def semantic_policy_file(folder: Path) -> Path:
    path = folder / "policy.toml"
    path.write_text("[semantic]\nenabled = true\n")
    return path


def test_http_answers_x_cache_hit_semantic_with_analytics_and_metrics(services, redis_url, migrated_database_url,
                                                                     store, tmp_path):
    settings = load_settings(redis_url=redis_url, database_url=migrated_database_url,
                             policy_file=semantic_policy_file(tmp_path), origin_latency_median_ms=0,
                             origin_latency_p95_ms=0, memory_size_mb=64)
    _, secret = store.create(str(uuid.uuid4()), "premium", "member")
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(settings)) as app:
        def post(query: str):
            return app.post("/api/ai-cache/query", headers=headers,
                            json={"query": query, "weddingContext": VENUES, "options": {"includeAnalytics": True}})
        assert post(QUESTION).headers["X-Cache"] == "MISS"
        near = post(PARAPHRASE)
        assert near.status_code == 200 and near.headers["X-Cache"] == "HIT-semantic-memory"
        body = near.json()
        assert body["cached"] is True and body["data"] == post(QUESTION).json()["data"]
        assert set(body["analytics"]["semantic"]) == {"similarity", "matchedKey", "indexTier"}
        assert post("barn venues near Dallas for 150 guests").headers["X-Cache"] == "MISS"
        assert "semantic" not in post(QUESTION).json()["analytics"]  # an exact hit
        exposition = app.get("/api/metrics").text
    values = {s.labels.get("reason"): s.value for family in text_string_to_metric_families(exposition)
              for s in family.samples if s.name == "ai_cache_semantic_rejections_total"}
    assert values["location"] >= 1 and set(values) >= {"date", "guest_count", "budget", "polarity"}


def test_wedcache_serve_with_two_workers_turns_it_on_from_the_policy_file(redis_url, migrated_database_url, store,
                                                                         tmp_path):
    """``AI_CACHE_POLICY_FILE`` with ``[semantic] enabled = true``; two workers (multiprocess
    metrics): whichever worker answers the paraphrase finds the vector (its memory index or
    pgvector), and the rejection counter adds up across workers on ``/api/metrics``."""
    _, secret = store.create(str(uuid.uuid4()), "premium", "member")
    env = serve_env(redis_url, migrated_database_url, AI_CACHE_POLICY_FILE=str(semantic_policy_file(tmp_path)))
    with serving(env, tmp_path / "serve.log", headers={"Authorization": f"Bearer {secret}"}) as (client, _):
        def post(query: str) -> str:
            answered = client.post("/api/ai-cache/query", json={"query": query, "weddingContext": VENUES})
            assert answered.status_code == 200, answered.text
            return answered.headers["X-Cache"]
        assert post(QUESTION) == "MISS"
        assert [post(PARAPHRASE)[:len("HIT-semantic-")] for _ in range(4)] == ["HIT-semantic-"] * 4
        misses = [post("barn venues near Dallas for 150 guests") for _ in range(3)]
        assert misses[0] == "MISS"
        body = client.get("/api/metrics").text
    location = sum(s.value for family in text_string_to_metric_families(body) for s in family.samples
                   if s.name == "ai_cache_semantic_rejections_total" and s.labels["reason"] == "location")
    assert location >= 1

