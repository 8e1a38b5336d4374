"""``wedcache bench-semantic``: what semantic matching gains and what a lookup costs.

On the shipped pairs: precision and recall at the tuned threshold with and without the
guard, and the false hits per near-miss kind. Then the cost per query, next to an exact-key
memory hit (key + :meth:`TieredCache.get`, the baseline): a full semantic lookup in memory
(embed + entities + index + guard) at ``memory_entries`` per organization, the index alone
(inverted file, and the exact scan for comparison), and a lookup answered by pgvector on the
real test PostgreSQL. Figures are medians of ``repeats`` rounds; ratios are medians of the
per-round ratios (:func:`wedcache.bench.compare`). Written to ``reports/bench/semantic.json``.

The index is filled with synthetic wedding questions (:func:`synthetic_questions`) plus the
first question of every pair; the lookups are the pairs' second questions.
"""
from __future__ import annotations

import os
import random
import statistics
import time
from pathlib import Path
from typing import Callable

import psycopg

from ..bench import bench_database, compare
from ..cache import TieredCache
from ..clock import SystemClock, iso_utc
from ..context import parse_context
from ..keys import cache_key, organization_uuid
from ..policy import Policy, load_policy
from ..reporting import write_json
from ..tiers.memory import MemoryTier
from . import lexicon as lx
from .embedder import Embedder
from .entities import EntityExtractor
from .guard import REASONS
from .index import VectorIndex
from .matcher import CANDIDATES, SemanticMatcher
from .pairs import evaluate, load_pairs, score_pairs
from .pgvector import TABLE, PgVectorStore
from .settings import SemanticSettings
from .tuning import choose_threshold

TARGETS = {"precision": 0.99, "recall": 0.6, "memory_lookup_ms": 1.0}
"""``memory_lookup_ms`` bounds the memory tier's own work (the index search at 100,000 entries
per organization); embedding the question is done once per request whichever tier answers,
and is reported beside it (``prepare_us``, ``lookup_us``)."""
ORG = organization_uuid("bench-semantic")
OTHER_ORG = organization_uuid("bench-semantic-other")


def synthetic_questions(n: int, seed: int = 7) -> list[str]:
    """``n`` varied wedding questions (vendor, style, place, guests, budget, date)."""
    rng = random.Random(seed)
    places = [*lx.REGIONAL_PLACES, *lx.PLACE_ALIASES]
    vendors = [w for words in lx.VENDOR_WORDS.values() for w in words]
    asks = ["best {v}", "how much do {v} cost", "{s} {v} available", "reviews of {s} {v}", "cheap {v}",
            "questions to ask {v}", "{s} {v} with good reviews", "top rated {s} {v}"]
    out = []
    for _ in range(n):
        ask = rng.choice(asks).format(v=rng.choice(vendors), s=rng.choice(lx.STYLES))
        out.append(f"{ask} in {rng.choice(places)} for {rng.randint(20, 400)} guests, ${rng.randint(1, 90)}k budget, "
                   f"{rng.choice(lx.MONTHS)} {rng.randint(1, 28)}")
    return out


def run_semantic_bench(database_url: str | None, *, pairs_path: Path, memory_entries: int = 100_000,
                       pg_entries: int = 20_000, iterations: int = 200, repeats: int = 5,
                       out: Path = Path("reports/bench/semantic.json"), progress: Callable[[str], None] = print) -> dict:
    """Run every part; ``database_url=None`` skips pgvector. Returns what it writes to ``out``."""
    policy, embedder = load_policy(), Embedder()
    pairs = load_pairs(pairs_path)
    progress(f"scoring {len(pairs)} pairs …")
    quality = _quality(score_pairs(pairs, policy, embedder))
    threshold = quality["threshold"]
    settings = SemanticSettings(enabled=True, threshold=threshold)
    queries = [(p.query_b, parse_context(p.context_b)) for p in pairs]
    progress(f"embedding {memory_entries:,} synthetic questions …")
    corpus = synthetic_questions(memory_entries)
    corpus_vectors = embedder.embed(corpus)
    result = {"created_at": iso_utc(time.time()), "load_average": os.getloadavg()[0], "cpus": os.cpu_count(),
              "model": embedder.model, "dim": embedder.dim,
              "pairs": str(pairs_path), "quality": quality, "iterations": iterations, "repeats": repeats,
              "targets": TARGETS}
    progress(f"memory index at {memory_entries:,} entries per organization …")
    result["memory"] = _memory_costs(policy, embedder, settings, pairs, queries, corpus, corpus_vectors,
                                     iterations, repeats)
    if database_url:
        progress(f"pgvector at {pg_entries:,} entries per organization …")
        result["pgvector"] = _pgvector_costs(database_url, policy, embedder, settings, pairs, queries,
                                             corpus[:pg_entries], corpus_vectors[:pg_entries], iterations, repeats)
    result["passed"] = _passed(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    return result


def _fresh_database(server_url: str, name: str = "wedcache_bench_semantic") -> str:
    """The benchmark's migrated database, emptied of earlier runs' vectors."""
    url = bench_database(server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is not None:
            conn.execute(f"TRUNCATE {TABLE}")
    return url


def _quality(scored) -> dict:
    chosen = choose_threshold(scored, TARGETS["precision"])
    bare = evaluate(scored, chosen.threshold, guard=False)
    adversarial = {}
    for kind in sorted({s.pair.kind for s in scored if not s.pair.same}):
        total = sum(1 for s in scored if s.pair.kind == kind)
        adversarial[kind] = {"pairs": total, "false_hits_guard": chosen.false_hits_by_kind.get(kind, 0),
                             "false_hits_no_guard": bare.false_hits_by_kind.get(kind, 0)}
    return {"threshold": chosen.threshold, "pairs": len(scored),
            "paraphrases": sum(1 for s in scored if s.pair.same),
            "guard": {"precision": chosen.precision, "recall": chosen.recall, "false_hits": chosen.false_hits},
            "no_guard": {"precision": bare.precision, "recall": bare.recall, "false_hits": bare.false_hits},
            "by_kind": adversarial}


def _cycle(items: list) -> Callable[[], object]:
    """A function returning the next item of ``items`` on each call (round robin)."""
    state = {"i": 0}

    def next_item():
        state["i"] = (state["i"] + 1) % len(items)
        return items[state["i"]]
    return next_item


def _exact_baseline(queries) -> Callable[[], object]:
    """An exact-key memory hit per call: the key of the next question, then ``TieredCache.get``."""
    cache = TieredCache([MemoryTier(eviction="lru")], clock=SystemClock())
    for query, context in queries:
        cache.set(ORG, query, context, {"answer": "bench"})
    following = _cycle(queries)

    def hit():
        query, context = following()
        return cache.get(cache_key(ORG, query, context))
    return hit


def _memory_costs(policy: Policy, embedder: Embedder, settings: SemanticSettings, pairs, queries, corpus,
                  corpus_vectors, iterations: int, repeats: int) -> dict:
    """The memory index (inverted file) and the exact scan, filled alike; their guarded
    matches are compared over every query, then timed."""
    extractor = EntityExtractor(policy)
    keys = [f"ai:{{{ORG}}}:general:synthetic-{i}" for i in range(len(corpus))]
    entities = [extractor.extract(q) for q in corpus]
    matchers = []
    for index in (VectorIndex(embedder.dim), VectorIndex(embedder.dim, ivf_min=None)):
        index.add_many(ORG, keys, corpus_vectors, entities)
        matchers.append(SemanticMatcher(policy, settings, embedder=embedder, index=index))
    ivf_matcher, exact_matcher = matchers
    for i, pair in enumerate(pairs):
        prepared = ivf_matcher.remember(ORG, f"ai:{{{ORG}}}:general:pair-{i}", pair.query_a, pair.context_a)
        exact_matcher.remember(ORG, f"ai:{{{ORG}}}:general:pair-{i}", pair.query_a, pair.context_a, prepared=prepared)
    prepared = [ivf_matcher.prepare(q, c) for q, c in queries]
    ivf_hits = [ivf_matcher.match(ORG, q, c, prepared=p) for (q, c), p in zip(queries, prepared)]
    exact_hits = [exact_matcher.match(ORG, q, c, prepared=p) for (q, c), p in zip(queries, prepared)]
    same = sum(_same_match(a, b) for a, b in zip(ivf_hits, exact_hits))
    baseline = _exact_baseline(queries)
    next_query, next_vector = _cycle(queries), _cycle([p.vector for p in prepared])
    full = compare(lambda: ivf_matcher.match(ORG, *next_query()), baseline, iterations, repeats)
    prepare = compare(lambda: ivf_matcher.prepare(*next_query()), baseline, iterations, repeats)
    ivf = compare(lambda: ivf_matcher.index.candidates(ORG, next_vector(), settings.threshold, CANDIDATES),
                  baseline, iterations, repeats)
    scan = compare(lambda: exact_matcher.index.candidates(ORG, next_vector(), settings.threshold, CANDIDATES),
                   baseline, max(10, iterations // 10), repeats)
    return {"entries_per_org": ivf_matcher.index.size(ORG), "exact_hit_us": statistics.median(full.baseline),
            "lookup_us": statistics.median(full.ours), "lookup_ratio": full.ratio,
            "prepare_us": statistics.median(prepare.ours), "prepare_ratio": prepare.ratio,
            "index_ivf_us": statistics.median(ivf.ours), "index_ivf_ratio": ivf.ratio,
            "index_exact_scan_us": statistics.median(scan.ours), "index_exact_scan_ratio": scan.ratio,
            "semantic_hits_ivf": sum(h is not None for h in ivf_hits),
            "semantic_hits_exact": sum(h is not None for h in exact_hits),
            "ivf_same_match_as_exact": same / len(queries), "lookups": len(queries),
            "rejections": {r: ivf_matcher.guard.count(r) for r in REASONS}}


def _same_match(a, b) -> bool:
    """Both missed, or both found an equally similar entry (duplicate questions have equal vectors)."""
    return (a is None) == (b is None) and (a is None or abs(a.similarity - b.similarity) < 1e-5)


def _pgvector_costs(server_url: str, policy: Policy, embedder: Embedder, settings: SemanticSettings, stored,
                    queries, corpus, corpus_vectors, iterations: int, repeats: int) -> dict:
    store = PgVectorStore(_fresh_database(server_url), timeout_ms=30_000)
    if not store.available:
        store.close()
        return {"available": False}
    try:
        extractor = EntityExtractor(policy)
        entities = [extractor.extract(q) for q in corpus]
        for org in (ORG, OTHER_ORG):
            store.bulk_load(org, [f"ai:{{{org}}}:general:synthetic-{i}" for i in range(len(corpus))],
                            corpus_vectors, entities)
        empty_memory = VectorIndex(embedder.dim)
        matcher = SemanticMatcher(policy, settings, embedder=embedder, index=empty_memory, store=store)
        for i, pair in enumerate(stored):
            prepared = matcher.prepare(pair.query_a, pair.context_a)
            store.add(ORG, f"ai:{{{ORG}}}:general:pair-{i}", prepared.vector, prepared.entities)
        baseline = _exact_baseline(queries)
        next_query = _cycle(queries)
        full = compare(lambda: matcher.match(ORG, *next_query()), baseline, iterations, repeats)
        hits = sum((m := matcher.match(ORG, q, c)) is not None and m.tier == "postgres" for q, c in queries)
        plan = store.explain(ORG, matcher.prepare(*queries[0]).vector)
        return {"available": True, "entries_per_org": len(corpus) + len(stored), "organizations": 2,
                "exact_hit_us": statistics.median(full.baseline), "lookup_us": statistics.median(full.ours),
                "lookup_ratio": full.ratio, "semantic_hits": hits, "lookups": len(queries),
                "uses_hnsw": "hnsw" in plan, "plan": plan}
    finally:
        store.close()


def _passed(result: dict) -> bool:
    q = result["quality"]["guard"]
    return (q["precision"] >= TARGETS["precision"] and q["recall"] >= TARGETS["recall"]
            and result["memory"]["index_ivf_us"] / 1000 <= TARGETS["memory_lookup_ms"])
