"""The simulation's paraphrases and near misses, and semantic matching against exact keys.

Scenarios are small (a memory tier, an instant origin, a few hundred queries): the file runs
in well under a minute. Needs the ``semantic`` extra (the offline WordLlama model).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

from simulations.engine import Engine
from simulations.model import build_system
from simulations.report import write_simulation_report
from simulations.run import WALL_FIELDS, build_source, simulate
from simulations.scenario import load_scenario, scenario_from_dict
from simulations.semantic_workload import MAX_PARAPHRASES, NEAR_MISSES
from wedcache.answering import infer_cache_type
from wedcache.context import parse_context
from wedcache.keys import cache_key, organization_uuid

pytest.importorskip("wordllama")

BASE = {
    "name": "semantic-test",
    "run": {"start_date": "2026-06-01", "duration_seconds": 4 * 3600.0, "seed": 5},
    "traffic": {"base_qps": 1.0, "seasonal": False, "weekly": False, "daily": False},
    "queries": {"distinct": 1000, "zipf_alpha": 0.8, "organizations": 3, "paraphrase_variants": 3,
                "near_miss_share": 0.1},
    "cache": {"memory_entries": 100_000, "memory_mb": 256.0, "ttl_seconds": 86_400.0, "jitter": 0.0,
              "redis": False, "postgres": False, "stale_while_revalidate_seconds": 0.0,
              "seasonal_scaling": False, "semantic": True},
    "origin": {"latency_median_ms": 0.0, "latency_p95_ms": 0.0},
}


def _scenario(**tables):
    data = copy.deepcopy(BASE)
    for table, values in tables.items():
        data[table] = {**data[table], **values}
    return scenario_from_dict(data)


def _summary(scenario) -> dict:
    summary = simulate(scenario).summary
    return {k: v for k, v in summary.items() if k not in WALL_FIELDS}


@pytest.fixture(scope="module")
def semantic_run() -> dict:
    return _summary(_scenario())


def _key(source, object_id: int) -> str:
    org, query, context, _ = source.describe(object_id)
    ctx = parse_context(context)
    return cache_key(organization_uuid(org), query, ctx, infer_cache_type(ctx))


def test_variants_are_distinct_keys_and_paraphrases_share_the_true_answer():
    """Each (query, variant) is its own key; paraphrases keep the context and the true answer,
    near misses change one thing (city or guest count) and have their own."""
    scenario = _scenario()
    source = build_source(scenario, scenario.policy(), None)
    per_query = 1 + MAX_PARAPHRASES + len(NEAR_MISSES)
    assert source.variants.per_query == per_query and source.n_objects == 1000 * per_query
    for query in range(20):
        objects = [query * per_query + v for v in range(per_query)]
        assert len({_key(source, o) for o in objects}) == per_query
        truths = source.answer_ids[objects]
        assert (truths[:1 + MAX_PARAPHRASES] == objects[0]).all()
        assert list(truths[1 + MAX_PARAPHRASES:]) == objects[1 + MAX_PARAPHRASES:]
        canonical = source.describe(objects[0])
        for paraphrase in objects[1:1 + MAX_PARAPHRASES]:
            _, text, context, _ = source.describe(paraphrase)
            assert text != canonical[1] and context == canonical[2]
        city, guests = (source.describe(o)[2] for o in objects[1 + MAX_PARAPHRASES:])
        assert city["location"] != canonical[2]["location"] and city["guestCount"] == canonical[2]["guestCount"]
        assert guests["guestCount"] != canonical[2]["guestCount"] and guests["location"] == canonical[2]["location"]


def test_requests_ask_every_variant_and_near_misses_at_their_share():
    scenario = _scenario()
    source = build_source(scenario, scenario.policy(), None)
    ids = np.concatenate([ids for _, ids in source.batches()])
    variant = ids % source.variants.per_query
    assert set(np.unique(variant)) == set(range(source.variants.per_query))
    assert abs(source.variants.near_misses(ids).mean() - 0.1) < 0.02


def test_semantic_matching_raises_the_hit_rate_over_exact_keys(semantic_run):
    """The same requests with exact keys only (a second run) hit less; the gain is the difference."""
    sem = semantic_run["semantic"]
    exact = _summary(_scenario(cache={"semantic": False}))
    assert sem["enabled"] and sem["exact_hit_rate"] == exact["hit_rate"]
    assert sem["hit_rate"] == semantic_run["hit_rate"]
    assert sem["hit_rate_gain"] == pytest.approx(semantic_run["hit_rate"] - exact["hit_rate"])
    assert sem["hit_rate_gain"] > 0.05 and sem["semantic_hits"] > 0
    assert sem["origin_calls_saved"] == exact["origin_calls"] - semantic_run["origin_calls"] > 0
    assert exact["semantic"]["semantic_hits"] == 0 and not exact["semantic"]["enabled"]


def test_near_misses_are_not_served(semantic_run):
    sem = semantic_run["semantic"]
    assert sem["near_miss_requests"] > 0
    assert sem["false_hit_rate"] < 0.01 and sem["near_misses_served"] <= sem["false_hits"]


def test_no_false_hit_when_only_a_query_own_variants_are_near():
    """With far more organizations than queries, a question's only near neighbours in its
    organization are its own variants: paraphrases are served, near misses never."""
    scenario = _scenario(queries={"organizations": 2000, "near_miss_share": 0.3})
    sem = _summary(scenario)["semantic"]
    assert sem["semantic_hits"] > 0 and sem["near_miss_requests"] > 0
    assert sem["false_hits"] == 0 and sem["near_misses_served"] == 0 and sem["false_hit_rate"] == 0.0


def test_same_seed_same_summary(semantic_run):
    assert _summary(_scenario()) == semantic_run


def test_semantic_off_leaves_the_run_as_it_was():
    """No paraphrases and no semantic matching: the keys' defaults change nothing (the same
    summary, no ``semantic`` block, no ``config`` keys) and the engine does no semantic work."""
    plain = copy.deepcopy(BASE)
    for key in ("paraphrase_variants", "near_miss_share"):
        del plain["queries"][key]
    del plain["cache"]["semantic"]
    off = _scenario(queries={"paraphrase_variants": 0, "near_miss_share": 0.0}, cache={"semantic": False})
    summary = _summary(off)
    assert summary == _summary(scenario_from_dict(plain))
    assert "semantic" not in summary
    assert "semantic" not in summary["config"]["cache"] and "paraphrase_variants" not in summary["config"]["queries"]
    system = build_system(off, off.policy())
    source = build_source(off, off.policy(), None)
    engine = Engine(system, source)
    assert system.semantic is None and source.variants is None and engine._misses().__name__ == "miss"
    assert source.n_objects == 1000 and (source.answer_ids == np.arange(1000)).all()


def test_paraphrases_without_semantic_matching_are_separate_keys():
    """Exact keys treat every wording as its own object: more distinct keys, fewer hits."""
    with_variants = _summary(_scenario(cache={"semantic": False}))
    without = _summary(_scenario(queries={"paraphrase_variants": 0, "near_miss_share": 0.0},
                                 cache={"semantic": False}))
    assert with_variants["hit_rate"] < without["hit_rate"]
    assert with_variants["sampling"]["objects"] > without["sampling"]["objects"]
    assert with_variants["semantic"]["hit_rate_gain"] == 0.0


def test_the_report_has_a_semantic_section(semantic_run, tmp_path):
    import pandas as pd

    write_simulation_report(semantic_run, pd.DataFrame(), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## Semantic matching" in text and "exact keys only" in text


def test_the_shipped_scenario_asks_for_paraphrases_and_semantic_matching():
    scenario = load_scenario("semantic")
    assert scenario.cache.semantic and scenario.queries.paraphrase_variants == 3
    assert 0 < scenario.queries.near_miss_share < 0.2 and scenario.days <= 7
