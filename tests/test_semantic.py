"""Semantic matching: the offline model, each guard rule, tenant isolation in the memory index
and in pgvector (real PostgreSQL), the matcher, the shipped pairs and threshold tuning."""
from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from wedcache.context import parse_context
from wedcache.errors import InvalidInput
from wedcache.migrations import apply_migrations, migration_sql
from wedcache.semantic import guard as g
from wedcache.semantic.embedder import DEFAULT_MODEL, Embedder, SemanticUnavailable
from wedcache.semantic.entities import Entities, EntityExtractor, range_label
from wedcache.semantic.index import VectorIndex
from wedcache.semantic.matcher import SemanticMatcher
from wedcache.semantic.pairs import Pair, ScoredPair, evaluate, load_pairs
from wedcache.semantic.pgvector import TABLE, PgVectorStore
from wedcache.semantic.settings import SemanticSettings
from wedcache.semantic.tuning import choose_threshold, write_semantic_policy

REPO_ROOT = Path(__file__).resolve().parent.parent
PAIRS = REPO_ROOT / "simulations" / "data" / "semantic_pairs.csv"
GENERATOR = REPO_ROOT / "simulations" / "data" / "make_semantic_pairs.py"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="module")
def extractor(policy_module) -> EntityExtractor:
    return EntityExtractor(policy_module)


@pytest.fixture(scope="module")
def policy_module():
    from wedcache.policy import load_policy
    return load_policy()


def verdict(extractor, a: str, b: str, context_a: dict | None = None, context_b: dict | None = None) -> str | None:
    return g.disagreement(extractor.extract(a, parse_context(context_a)), extractor.extract(b, parse_context(context_b)))


def unit(seed: int, dim: int = 8) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


# -- the model ------------------------------------------------------------------------------

def test_the_embedder_loads_offline_with_no_network():
    """In a fresh process with HF_HUB_OFFLINE=1 and every non-loopback connection refused."""
    script = """
import socket
def refuse(self, address, *args, **kwargs):
    raise OSError(f"network is off in this test: {address}")
socket.socket.connect = refuse
socket.create_connection = lambda address, *a, **k: refuse(None, address)
import json
from wedcache.semantic.embedder import Embedder
vectors = Embedder().embed(["barn venues near Austin", "rustic barn venues around Austin"])
print(json.dumps([list(vectors.shape), str(vectors.dtype), float(vectors[0] @ vectors[1])]))
"""
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(REPO_ROOT / ".wedcache")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    shape, dtype, similarity = json.loads(done.stdout.strip().splitlines()[-1])
    assert shape == [2, 256] and dtype == "float32" and similarity > 0.7


def test_embeddings_are_unit_float32_rows_and_paraphrases_are_closer(embedder):
    vectors = embedder.embed(["How much does a wedding photographer cost in Chicago?",
                              "What do wedding photographers charge in Chicago?",
                              "Is outdoor catering allowed in parks?"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, embedder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_one_question_embeds_as_its_row_in_a_batch(embedder):
    questions = ["Barn venues near Austin for 150 guests", "", "Is outdoor catering NOT allowed?"]
    batch = embedder.embed(questions)
    for question, row in zip(questions, batch):
        assert np.allclose(embedder.embed_one(question), row, atol=1e-6)


def test_an_unknown_model_is_named():
    with pytest.raises(SemanticUnavailable, match="semantic.model"):
        Embedder("no-such-model")


# -- entities and each guard rule -------------------------------------------------------------

def test_paraphrases_with_the_same_entities_pass_the_guard(extractor):
    assert verdict(extractor, "barn venues near Austin for 150 guests",
                   "rustic barn wedding venues around Austin, 150 people") is None
    assert verdict(extractor, "florists in New York for a $20,000 budget", "NYC florists for a 20k budget") is None


@pytest.mark.parametrize("a, b, context_a, context_b, reason", [
    ("venues available on June 6", "venues available on June 7", None, None, g.DATE),
    ("venues available", "venues available", {"weddingDate": "2026-06-06"}, {"weddingDate": "2026-06-07"}, g.DATE),
    ("barn venues near Austin", "barn venues near Dallas", None, None, g.LOCATION),
    ("barn venues", "barn venues", {"location": "Austin, TX"}, {"location": "Nashville"}, g.LOCATION),
    ("wedding photographer prices in Denver", "wedding videographer prices in Denver", None, None, g.VENDOR_TYPE),
    ("catering quote", "catering quote", {"vendorTypes": ["caterer"]}, {"vendorTypes": ["baker"]}, g.VENDOR_TYPE),
    ("venues for 150 guests", "venues for 50 guests", None, None, g.GUEST_COUNT),
    ("venues", "venues", {"guestCount": 150}, {"guestCount": 300}, g.GUEST_COUNT),
    ("florists for a $20k budget", "florists for a $30k budget", None, None, g.BUDGET),
    ("florists", "florists", {"budget": 5000}, {"budget": 50000}, g.BUDGET),
    ("is outdoor catering allowed in parks?", "is outdoor catering not allowed in parks?", None, None, g.POLARITY),
    ("venues with in-house catering", "venues without in-house catering", None, None, g.POLARITY),
    ("indoor venues in Austin", "outdoor venues in Austin", None, None, g.POLARITY),
    ("barn venues in Austin", "ballroom venues in Austin", None, None, g.STYLE),
    ("what does a videographer charge in Napa?", "what to look for in a videographer in Napa?", None, None, g.ASK),
    ("a DJ for 4 hours", "a DJ for 6 hours", None, None, g.NUMBER),
])
def test_each_guard_rule_rejects_its_near_miss(extractor, a, b, context_a, context_b, reason):
    assert verdict(extractor, a, b, context_a, context_b) == reason


def test_text_and_context_agree_when_they_say_the_same(extractor):
    assert verdict(extractor, "barn venues in Austin", "barn venues", None, {"location": "Austin, TX"}) is None
    assert verdict(extractor, "venues for 150 guests", "venues", None, {"guestCount": 140}) is None
    assert verdict(extractor, "venues free on June 6", "venues free in June", {"weddingDate": "2026-06-06"},
                   {"weddingDate": "2026-06-06"}) is None
    assert verdict(extractor, "timeline for June 6", "timeline for 6/6/2026") is None  # no year ~ that year


def test_a_negation_flips_the_word_it_negates(extractor):
    assert verdict(extractor, "is outdoor catering not allowed in parks?",
                   "is outdoor catering prohibited in parks?") is None
    assert verdict(extractor, "is the deposit refundable?", "is the deposit non-refundable?") == g.POLARITY


def test_figures_fall_into_ranges():
    assert range_label(150, (100, 150, 200)) == "100-150" and range_label(151, (100, 150, 200)) == "150-200"
    assert range_label(5, (100,)) == "0-100" and range_label(1e6, (100,)) == ">100"


def test_entities_round_trip_through_json(extractor):
    entities = extractor.extract("photographers under $5k in NYC on June 6 for 120 guests")
    assert Entities.from_json(json.loads(json.dumps(entities.to_json()))) == entities


def test_every_rejection_is_counted_by_reason(extractor):
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    guard = g.Guard(registry)
    austin, dallas = extractor.extract("venues in Austin"), extractor.extract("venues in Dallas")
    assert guard.verdict(austin, dallas) == g.LOCATION and guard.verdict(austin, austin) is None
    assert guard.count(g.LOCATION) == 1 and guard.count(g.DATE) == 0
    assert 'ai_cache_semantic_rejections_total{reason="location"} 1.0' in generate_latest(registry).decode()


# -- the memory index -----------------------------------------------------------------------

def test_the_index_finds_the_nearest_above_the_threshold_and_forgets():
    index = VectorIndex(8, ivf_min=None)
    index.add("org-a", "k1", unit(1))
    index.add("org-a", "k2", unit(2))
    assert index.lookup("org-a", unit(1), 0.99)[0] == "k1"
    near = unit(1) + 0.05 * unit(3)
    assert index.lookup("org-a", near / np.linalg.norm(near), 0.9)[0] == "k1"
    assert index.lookup("org-a", unit(4), 0.99) is None
    assert index.remove("k1") and not index.remove("k1")
    assert index.lookup("org-a", unit(1), 0.99) is None and index.lookup("org-a", unit(2), 0.99)[0] == "k2"


def test_the_index_never_answers_across_organizations_or_cache_types():
    index = VectorIndex(8, ivf_min=None)
    index.add("org-a", "a-key", unit(1))
    index.add("org-a", "a-venue", unit(1), cache_type="venue_search")
    assert index.lookup("org-b", unit(1), 0.0) is None
    assert index.candidates("org-a", unit(1), 0.0, k=10) == [("a-key", pytest.approx(1.0))]
    assert index.lookup("org-a", unit(1), 0.0, cache_type="venue_search")[0] == "a-venue"
    assert index.remove_organization("org-a") == 2 and len(index) == 0


def test_an_inverted_file_index_still_finds_exact_duplicates_and_removes():
    index = VectorIndex(16, ivf_min=64, nprobe=4)
    vectors = [unit(i, 16) for i in range(300)]
    for i, vector in enumerate(vectors):
        index.add("org", f"k{i}", vector)
    assert index._parts[("org", "general")].centroids is not None  # trained
    assert all(index.lookup("org", vectors[i], 0.999)[0] == f"k{i}" for i in range(0, 300, 7))
    for i in range(0, 300, 2):
        index.remove(f"k{i}")
    assert index.size("org") == 150
    assert index.lookup("org", vectors[0], 0.999) is None and index.lookup("org", vectors[1], 0.999)[0] == "k1"
    assert index.lookup("other", vectors[1], 0.0) is None


def test_a_vector_of_the_wrong_size_is_named():
    with pytest.raises(ValueError, match="vector: must have 8 dimensions"):
        VectorIndex(8).add("org", "k", np.ones(4))


# -- the matcher ----------------------------------------------------------------------------

@pytest.fixture
def matcher(policy_module, embedder) -> SemanticMatcher:
    return SemanticMatcher(policy_module, SemanticSettings(enabled=True, threshold=0.7), embedder=embedder)


def test_the_matcher_answers_a_paraphrase_and_refuses_a_near_miss(matcher, org_id):
    matcher.remember(org_id, "austin-barns", "barn venues near Austin for 150 guests", {})
    hit = matcher.match(org_id, "rustic barn wedding venues around Austin, 150 people")
    assert hit is not None and hit.key == "austin-barns" and hit.tier == "memory" and 0.7 <= hit.similarity < 1
    assert matcher.match(org_id, "barn venues near Dallas for 150 guests") is None
    assert matcher.guard.count(g.LOCATION) >= 1


def test_the_matcher_keeps_tenants_and_cache_types_apart(matcher, org_id):
    matcher.remember(org_id, "k", "barn venues near Austin for 150 guests", {})
    assert matcher.match(str(uuid.uuid4()), "barn venues near Austin for 150 guests") is None
    assert matcher.match(org_id, "barn venues near Austin for 150 guests", cache_type="venue_search") is None
    assert matcher.match(org_id, "barn venues near Austin for 150 guests", cache_type="content_generation") is None
    matcher.forget("k")
    assert matcher.match(org_id, "barn venues near Austin for 150 guests") is None


def test_a_disabled_matcher_never_matches(policy_module, embedder, org_id):
    off = SemanticMatcher(policy_module, SemanticSettings(), embedder=embedder)
    off.remember(org_id, "k", "barn venues near Austin", {})
    assert off.match(org_id, "barn venues near Austin") is None


# -- pgvector (real PostgreSQL) -------------------------------------------------------------

@pytest.fixture
def store(migrated_database_url):
    store = PgVectorStore(migrated_database_url, timeout_ms=5000)
    yield store
    store.close()


@pytest.mark.integration
def test_the_migration_enables_pgvector_with_an_hnsw_index(migrated_database_url):
    with psycopg.connect(migrated_database_url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        indexes = [r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (TABLE,))]
        conn.execute(migration_sql("0006_semantic"))  # idempotent: the store may run it again
    assert any("hnsw" in d and "vector_ip_ops" in d for d in indexes)
    assert any("organization_id, cache_type" in d for d in indexes)
    assert apply_migrations(migrated_database_url) == []


@pytest.mark.integration
def test_without_pgvector_the_base_install_still_migrates(services):
    """A role that may not create the (untrusted) extension: 0006 only notes it, the rest applies,
    and the store reports itself unavailable so the matcher stays memory-only."""
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    from conftest import scratch_database

    role = f"wedcache_plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(services.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with scratch_database(services.database_url, "wedcache_nopgvector") as url:
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(admin.info.dbname), sql.Identifier(role)))
                admin.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
            plain = make_conninfo(url, user=role)
            assert "0006_semantic" in apply_migrations(plain)
            with psycopg.connect(plain, autocommit=True) as conn:
                assert conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is None
                assert conn.execute("SELECT to_regclass('ai_cache_entries')").fetchone()[0] is not None
            store = PgVectorStore(plain)
            try:
                assert store.available is False
            finally:
                store.close()
    finally:
        with psycopg.connect(services.database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.mark.integration
def test_pgvector_search_never_crosses_organizations(store, org_id, embedder, extractor):
    other = str(uuid.uuid4())
    question = "barn venues near Austin for 150 guests"
    vector = embedder.embed_one(question)
    store.add(org_id, f"ai:{{{org_id}}}:general:1", vector, extractor.extract(question))
    store.add(other, f"ai:{{{other}}}:general:1", vector, extractor.extract(question))
    found = store.candidates(org_id, vector, 0.5, k=10)
    assert [key for key, _, _ in found] == [f"ai:{{{org_id}}}:general:1"]
    assert found[0][1] == pytest.approx(1.0, abs=1e-4) and found[0][2] == extractor.extract(question)
    assert store.candidates(str(uuid.uuid4()), vector, 0.0) == []
    assert store.candidates(org_id, vector, 0.0, cache_type="venue_search") == []
    assert store.remove(f"ai:{{{org_id}}}:general:1") and store.lookup(org_id, vector, 0.0) is None
    assert store.lookup(other, vector, 0.99)[0] == f"ai:{{{other}}}:general:1"


@pytest.mark.integration
def test_the_matcher_falls_back_to_pgvector(policy_module, embedder, store, org_id):
    settings = SemanticSettings(enabled=True, threshold=0.7)
    writer = SemanticMatcher(policy_module, settings, embedder=embedder, store=store)
    writer.remember(org_id, "austin-barns", "barn venues near Austin for 150 guests", {})
    reader = SemanticMatcher(policy_module, settings, embedder=embedder, store=store)  # cold memory index
    hit = reader.match(org_id, "rustic barn wedding venues around Austin, 150 people")
    assert hit is not None and hit.key == "austin-barns" and hit.tier == "postgres"
    assert reader.match(org_id, "barn venues near Dallas for 150 guests") is None
    assert reader.match(str(uuid.uuid4()), "barn venues near Austin for 150 guests") is None


# -- pairs, tuning, the policy file -----------------------------------------------------------

def test_the_shipped_pairs_are_reproducible_and_cover_every_kind():
    spec = importlib.util.spec_from_file_location("make_semantic_pairs", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.make_pairs() == module.make_pairs()
    pairs = load_pairs(PAIRS)
    assert len(pairs) == len(module.make_pairs())
    assert [p.query_b for p in pairs] == [r["query_b"] for r in module.make_pairs()]
    kinds = {p.kind for p in pairs}
    assert {"paraphrase", "city", "date", "guests", "budget", "vendor", "negation", "topic"} <= kinds
    assert all(p.same == (p.kind == "paraphrase") for p in pairs)


def test_a_bad_pairs_file_names_the_line(tmp_path):
    bad = tmp_path / "pairs.csv"
    bad.write_text("kind,label,query_a,context_a,query_b,context_b\nx,maybe,a,{},b,{}\n")
    with pytest.raises(InvalidInput, match="pairs.csv:2 label"):
        load_pairs(bad)


def scored(similarity: float, same: bool, rejection: str | None = None, kind: str = "k") -> ScoredPair:
    return ScoredPair(Pair(kind, same, "a", {}, "b", {}), similarity, rejection)


def test_the_tuner_picks_the_lowest_threshold_that_keeps_precision():
    pairs = [scored(0.95, True), scored(0.9, True), scored(0.85, False, kind="topic"), scored(0.8, True),
             scored(0.97, False, g.LOCATION, "city")]
    chosen = choose_threshold(pairs, 0.99, min_threshold=0.5)
    assert chosen.threshold == 0.9 and chosen.precision == 1.0 and chosen.recall == pytest.approx(2 / 3)
    assert evaluate(pairs, 0.9, guard=False).false_hits_by_kind == {"city": 1}
    assert choose_threshold(pairs, 0.6, min_threshold=0.5).threshold == 0.8  # 0.85 alone holds 2/3
    assert choose_threshold(pairs, 0.6, min_threshold=0.88).threshold == 0.9  # a similarity seen, not below the floor


def test_the_policy_file_gets_a_semantic_table_and_keeps_the_rest(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('jitter = 0.2\n[semantic]\ncache_types = ["venue_search"]\n')
    write_semantic_policy(policy, 0.81234)
    data = tomllib.loads(policy.read_text())
    assert data["jitter"] == 0.2
    assert data["semantic"] == {"enabled": True, "threshold": 0.8123, "model": DEFAULT_MODEL,
                                "cache_types": ["venue_search"]}


@pytest.mark.parametrize("table, field", [({"threshold": 1.5}, "semantic.threshold"),
                                          ({"cache_types": ["nope"]}, "semantic.cache_types"),
                                          ({"enabled": "yes"}, "semantic.enabled"),
                                          ({"treshold": 0.8}, "semantic.treshold")])
def test_bad_semantic_settings_name_the_field(table, field):
    with pytest.raises(InvalidInput, match=field):
        SemanticSettings.from_table(table)


def test_tune_semantic_writes_a_policy_meeting_the_targets(tmp_path):
    importlib.import_module("wedcache.cli.tune_semantic")  # registers itself on `wedcache tune`
    from wedcache.cli import app

    out = tmp_path / "policy.toml"
    result = CliRunner().invoke(app, ["tune", "semantic", "--pairs", str(PAIRS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    semantic = tomllib.loads(out.read_text())["semantic"]
    assert semantic["enabled"] is True and 0.7 <= semantic["threshold"] < 1
    assert "with the guard precision 1.000" in result.output or "precision 0.99" in result.output


@pytest.mark.integration
def test_a_bulk_load_rebuilds_the_hnsw_index_and_stays_per_organization(store, org_id, migrated_database_url):
    vectors = np.stack([unit(i, 256) for i in range(50)])
    store.bulk_load(org_id, [f"ai:{{{org_id}}}:general:b{i}" for i in range(50)], vectors)
    assert store.lookup(org_id, vectors[7], 0.999)[0] == f"ai:{{{org_id}}}:general:b7"
    assert store.lookup(str(uuid.uuid4()), vectors[7], 0.0) is None
    with psycopg.connect(migrated_database_url, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'idx_ai_cache_semantic_hnsw'").fetchone()


def test_a_postgresql_that_does_not_answer_leaves_the_store_unavailable():
    from wedcache.services import free_port

    store = PgVectorStore(f"postgresql://postgres@127.0.0.1:{free_port()}/none", timeout_ms=200)
    try:
        assert store.available is False
    finally:
        store.close()


class _BrokenStore:
    """A store whose PostgreSQL fails on every call after it was found available."""

    available = True

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise psycopg.OperationalError("server closed the connection")
        return fail


def test_the_matcher_fails_open_when_pgvector_breaks(policy_module, embedder, org_id):
    matcher = SemanticMatcher(policy_module, SemanticSettings(enabled=True, threshold=0.7), embedder=embedder,
                              store=_BrokenStore())
    matcher.remember(org_id, "k", "barn venues near Austin for 150 guests", {})
    assert matcher.match(org_id, "barn venues near Austin for 150 guests").tier == "memory"
    assert matcher.match(org_id, "florists in Denver") is None
    matcher.forget("k")
