"""``wedcache tune size``: exact stack distances, SHARDS, libCacheSim agreement, the report and the CLI."""
from __future__ import annotations

import json
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import pytest
from typer.testing import CliRunner

from simulations.run import build_source
from simulations.sampling import sample_keys
from simulations.scenario import load_scenario
from simulations.trace import write_trace
from wedcache.cli import app
from wedcache.tuning.mrc import MissRatioCurve, stack_distances
from simulations.scenario import scenario_from_dict
from wedcache.tuning.size import (EXACT_LIMIT, MAX_SAMPLED_REQUESTS, MIN_SAMPLED_OBJECTS, auto_rate,
                                  choose_method, collect, expected_between, expected_objects_per_tier,
                                  expected_requests, object_rate, object_sizes, popularity_weights, size_market_tiers, take,
                                  tier_curve, window_of)

# --- exact curves against brute force -------------------------------------------------------

def brute_distances(ids: list[int], sizes: dict[int, int]) -> list[float]:
    """Mattson's definition, literally: bytes of the stack down to the object, itself included."""
    stack: list[int] = []
    out = []
    for x in ids:
        if x in stack:
            depth = stack.index(x)
            out.append(float(sum(sizes[y] for y in stack[:depth + 1])))
            stack.pop(depth)
        else:
            out.append(np.inf)
        stack.insert(0, x)
    return out


def brute_lru_hits(ids: list[int], capacity: int) -> int:
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for x in ids:
        if x in cache:
            hits += 1
            cache.move_to_end(x)
        else:
            cache[x] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits


@pytest.mark.parametrize("seed", range(8))
def test_stack_distances_match_the_definition(seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, rng.integers(1, 30), rng.integers(1, 250))
    sizes = {int(k): int(v) for k, v in enumerate(rng.integers(1, 9, 30))}
    weights = np.array([sizes[int(x)] for x in ids])
    assert stack_distances(ids, weights).tolist() == brute_distances(ids.tolist(), sizes)
    assert stack_distances(ids).tolist() == brute_distances(ids.tolist(), dict.fromkeys(range(30), 1))


@pytest.mark.parametrize("seed", range(4))
def test_exact_curve_is_lru_at_every_size(seed):
    rng = np.random.default_rng(seed)
    ids = (rng.zipf(1.3, 600) % 80).astype(np.int64)
    curve = MissRatioCurve.from_distances(stack_distances(ids))
    for capacity in range(1, 82):
        assert curve.hit_rate(capacity) == pytest.approx(brute_lru_hits(ids.tolist(), capacity) / ids.size)
    assert curve.max_hit_rate == pytest.approx(1 - np.unique(ids).size / ids.size)


def test_size_for_is_the_smallest_size_reaching_the_target():
    curve = MissRatioCurve.from_distances(np.array([3.0, 1.0, np.inf, 2.0, 5.0]))
    assert curve.size_for(0.4) == 2.0 and curve.hit_rate(2.0) == pytest.approx(0.4)
    assert curve.hit_rate(1.999) < 0.4
    assert curve.size_for(0.8) == 5.0
    assert curve.size_for(0.81) is None  # one request in five is a first request
    assert curve.size_for(0.0) == 0.0


def test_shards_scales_distances_and_adjusts_the_count():
    curve = MissRatioCurve.from_distances(np.array([1.0, 2.0, np.inf]), rate=0.5, expected=4.0)
    assert curve.distances.tolist() == [2.0, 4.0, np.inf]
    assert curve.hit_rate(0.0) == pytest.approx(1 / 4)  # the missing request is a hit at distance 0
    assert curve.hit_rate(4.0) == pytest.approx(3 / 4)
    assert curve.size_for(0.5) == 2.0


# --- the shipped scenarios ------------------------------------------------------------------

@lru_cache(maxsize=None)
def exact_stream(name: str, days: float | None, measured: int = 1500):
    """A shipped scenario, shortened, every key kept: its requests, tiers and entry sizes."""
    scenario = load_scenario(name).with_overrides(sample_rate=1.0, days=days)
    policy = scenario.policy()
    source = build_source(scenario, policy, None)
    ids = collect(source.batches())
    sizes = object_sizes(scenario, policy, source, np.unique(ids), max_measured=measured)
    return ids, source.tier_codes[ids], sizes, source


def tier_popularity(source, code):
    p = source.workload.catalogue.probabilities
    return p, p[source.tier_codes == code]


def curves(ids, sizes, rate, popularity=None, tier_popularity=None):
    """The exact curve and the sampled one as `tune size` builds it (SHARDS-adj, post-stratified
    by popularity when it is known)."""
    exact = MissRatioCurve.from_distances(stack_distances(ids, sizes[ids]))
    kept = ids[sample_keys(ids, rate)]
    weights = None
    if popularity is not None:
        weights = popularity_weights(kept, popularity, tier_popularity, rate * ids.size)
    return exact, tier_curve(kept, sizes, rate, ids.size, weights)


SHIPPED = [("peak-saturday", 0.05), ("off-season", 0.3), ("year", 0.3)]
"""The shipped scenarios with a 2,000,000-key catalogue, shortened so that each market tier
holds 45,000-70,000 distinct objects (a few seconds per test). smoke (2,000 keys, ~34,000
requests) is below ``EXACT_LIMIT``: `auto` computes it exactly (test_auto_is_exact_on_smoke)."""


def errors(exact, sampled, mean_entry, rate, seed_bytes):
    """Mean absolute error (the paper's measure) over the sizes the sample resolves (>= 100
    sampled entries, up to twice the saturation), the error at the seed's cacheSize and the
    largest error on that grid (at the smallest sizes, where SHARDS-adj's hot keys sit)."""
    grid = np.geomspace(100 * mean_entry / rate, 2 * exact.saturation_bytes, 100)
    gap = np.abs(exact.hit_rate(grid) - sampled.hit_rate(grid))
    return float(gap.mean()), abs(exact.hit_rate(seed_bytes) - sampled.hit_rate(seed_bytes)), float(gap.max())


@pytest.mark.parametrize("name,days", SHIPPED)
def test_auto_object_rule_keeps_shards_within_one_point(name, days):
    """`auto`'s object rule (:func:`object_rate`: ``MIN_SAMPLED_OBJECTS`` sampled objects in the
    smallest tier) applied to the shortened stream: the SHARDS curve at that rate, with the
    salt `auto` samples with and post-stratified by popularity as `auto` does, is within 1
    point of exact per market tier: on average, at the seed and at every resolved size."""
    ids, tiers, sizes, source = exact_stream(name, days)
    seeds = {0: 1e9, 1: 512e6, 2: 256e6}
    rate = object_rate([np.unique(ids[tiers == code]).size for code in range(3)])
    assert 0.2 < rate < 0.5, rate  # a real sample, of the size auto keeps per tier
    for code in range(3):
        mine = ids[tiers == code]
        exact, sampled = curves(mine, sizes, rate, *tier_popularity(source, code))
        assert np.unique(mine[sample_keys(mine, rate)]).size >= 0.95 * MIN_SAMPLED_OBJECTS
        mean, at_seed, worst = errors(exact, sampled, sizes[mine].mean(), rate, seeds[code])
        assert mean <= 0.01 and at_seed <= 0.01 and worst <= 0.01, (name, code, mean, at_seed, worst)


@lru_cache(maxsize=None)
def full_size_plan(name: str):
    """What `auto` picks for the full scenario: expected requests, objects per tier, rate."""
    scenario = load_scenario(name)
    policy = scenario.policy()
    expected = expected_requests(scenario, policy)
    objects = expected_objects_per_tier(build_source(scenario.with_overrides(sample_rate=1.0), policy, None),
                                        expected)
    return expected, objects, choose_method("auto", None, expected, objects, capped=False)


@pytest.mark.parametrize("name", ["peak-saturday", "off-season"])
def test_auto_keeps_enough_objects_on_the_full_scenarios(name):
    """On the full peak-saturday and off-season `auto` samples every tier with at least
    ``MIN_SAMPLED_OBJECTS`` objects (the validated regime above) and at most the request cap."""
    expected, objects, (method, rate) = full_size_plan(name)
    assert method == "shards"
    assert rate * objects.min() >= MIN_SAMPLED_OBJECTS
    assert EXACT_LIMIT * 0.9999 <= rate * expected <= MAX_SAMPLED_REQUESTS * 1.0001


def test_auto_on_the_full_year_keeps_enough_objects_in_a_window():
    """The year (2.7e9 requests over ~2M objects) would need ~90 M sampled requests for the
    object rule; the workload is stationary, so `auto` keeps the object rule's rate uncapped and
    reads a window of ``MAX_SAMPLED_REQUESTS`` (test_stationary_window_matches_exact)."""
    expected, objects, (method, rate) = full_size_plan("year")
    assert method == "shards" and rate * objects.min() >= MIN_SAMPLED_OBJECTS
    assert rate * expected > 10 * MAX_SAMPLED_REQUESTS


def test_auto_is_exact_on_smoke():
    scenario = load_scenario("smoke")
    assert choose_method("auto", None, expected_requests(scenario, scenario.policy())) == ("exact", 1.0)


@pytest.mark.slow
def test_auto_on_full_peak_saturday_within_one_point_of_exact():
    """The real thing: `auto`'s sample of the full peak-saturday (R ~ 0.07) against the exact
    curve of all its ~14 M requests (about a minute)."""
    _, _, (_, rate) = full_size_plan("peak-saturday")
    ids, tiers, sizes, source = exact_stream("peak-saturday", None, 5000)
    seeds = {0: 1e9, 1: 512e6, 2: 256e6}
    for code in range(3):
        mine = ids[tiers == code]
        exact, sampled = curves(mine, sizes, rate, *tier_popularity(source, code))
        mean, at_seed, worst = errors(exact, sampled, sizes[mine].mean(), rate, seeds[code])
        assert mean <= 0.01 and at_seed <= 0.01 and worst <= 0.01, (code, mean, at_seed, worst)


# --- a stationary window stands for a long run -------------------------------------------------

@lru_cache(maxsize=None)
def year_like(distinct: int = 1500):
    """The year scaled down with the requests per object kept (~1,000: the full year has
    ~1,350), so its exact curve is computable: its requests, times, tiers and sizes."""
    data = load_scenario("year").to_dict()
    data["queries"]["distinct"], data["traffic"]["base_qps"] = distinct, 40 * distinct / 2_700_000
    data["run"]["sample_rate"] = 1.0
    scenario = scenario_from_dict(data, "year-like")
    policy = scenario.policy()
    source = build_source(scenario, policy, None)
    times, ids = take(source.batches(), 10**12)
    sizes = object_sizes(scenario, policy, source, np.unique(ids), max_measured=800)
    return scenario, policy, source, times, ids, sizes


def test_window_weights_stand_for_the_whole_run():
    scenario, policy, source, times, ids, _ = year_like()
    n = ids.size // 5
    window = window_of(times[:n], scenario.workload_spec(), policy)
    weights = window.weights(times[:n])
    assert weights[: n // 2].tolist() == [1.0] * (n // 2) and weights[-1] == window.weight > 4
    assert weights.sum() == pytest.approx(ids.size, rel=0.01)  # the window's weight is the run's length
    assert expected_between(scenario.workload_spec(), policy, 0, window.end_seconds) == pytest.approx(n, rel=0.01)


def test_popularity_weights_restore_each_bins_mass():
    p = np.array([0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    ids = np.array([1, 1, 1, 4, 4, 5, 2, 2])  # objects 0 and 3 unsampled
    w = popularity_weights(ids, p, p, expected=10.0, per_bin=2)
    # bins of 2 sampled objects: {1, 2} (hottest: kept as is), {4, 5} and the colder rest
    assert w[:3].tolist() == [1.0] * 3 and w[6:].tolist() == [1.0] * 2
    assert w[3:6].sum() == pytest.approx(10.0 * 0.05 * 4)  # the bin of p <= 0.05: 4 objects


def test_stationary_window_matches_exact():
    """The year-like run's first fifth, its second half weighted for the rest of the year,
    against the exact curve of the whole year, per market tier: within 1 point everywhere."""
    scenario, policy, source, times, ids, sizes = year_like()
    n = ids.size // 5
    window = window_of(times[:n], scenario.workload_spec(), policy)
    weights, head = window.weights(times[:n]), ids[:n]
    for code in range(3):
        mine = ids[source.tier_codes[ids] == code]
        exact = MissRatioCurve.from_distances(stack_distances(mine, sizes[mine]))
        mask = source.tier_codes[head] == code
        windowed = tier_curve(head[mask], sizes, 1.0, mine.size, weights[mask])
        grid = np.geomspace(sizes[mine].mean(), 2 * exact.saturation_bytes, 100)
        error = np.abs(exact.hit_rate(grid) - windowed.hit_rate(grid))
        assert error.mean() <= 0.005 and error.max() <= 0.015, (code, error.mean(), error.max())
        assert windowed.max_hit_rate == pytest.approx(exact.max_hit_rate, abs=0.002)


def test_sizing_reads_a_window_when_the_sample_is_too_long():
    scenario, *_ = year_like()
    result = size_market_tiers(scenario, method="shards", sample_rate=0.5, max_measured=500, max_requests=200_000)
    assert result.window is not None and result.requests == 200_000
    assert 0 < result.window.cut_seconds < result.window.end_seconds < 365 * 86400
    for tier in result.tiers.values():
        assert tier.curve.weight > 3 * tier.curve.requests  # the window (a fifth) stands for the year
        assert 0.99 < tier.curve.max_hit_rate <= 1


def che_hit_rate(p: np.ndarray, sizes: np.ndarray, capacity: float) -> float:
    """Che's approximation of LRU under independent references (popularity ``p``, bytes
    ``sizes``): the characteristic time ``T`` fills the cache, ``sum s (1 - e^{-pT}) = C``,
    and the hit rate is ``sum p (1 - e^{-pT}) / sum p``. An independent reference for a run
    too long to count exactly (the full year)."""
    from scipy.optimize import brentq

    if capacity >= sizes.sum():
        return 1.0
    T = brentq(lambda t: (sizes * -np.expm1(-p * t)).sum() - capacity, 0.0, 1e3 / p.min())
    return float((p * -np.expm1(-p * T)).sum() / p.sum())


@pytest.mark.slow
def test_auto_on_the_full_year_agrees_with_che():
    """The full year through `auto` (a window at the object rule's rate, ~30 s) against Che's
    approximation from the catalogue's exact popularity and the measured sizes: within 1 point
    at sizes from 1 % to 90 % of each tier's bytes."""
    scenario = load_scenario("year")
    result = size_market_tiers(scenario)
    assert result.window is not None and not any(result.to_dict()["tiers"][t]["under_sampled"] for t in result.tiers)
    source = build_source(scenario.with_overrides(sample_rate=1.0), scenario.policy(), None)
    p = source.workload.catalogue.probabilities
    for code, (name, tier) in enumerate(result.tiers.items()):
        mine = np.flatnonzero(source.tier_codes == code)
        sizes = np.full(mine.size, tier.mean_entry_bytes)
        for share in (0.01, 0.05, 0.2, 0.5, 0.9):
            capacity = share * sizes.sum()
            assert tier.curve.hit_rate(capacity) == pytest.approx(che_hit_rate(p[mine], sizes, capacity), abs=0.01), \
                (name, share)


def libcachesim_miss_ratio(ids: np.ndarray, sizes: np.ndarray, capacity: int) -> float:
    """libCacheSim's LRU (bytes), driven as simulations/bench.py drives it."""
    import libcachesim as lcs

    cache, request = lcs.LRU(cache_size=capacity), lcs.Request()
    misses = 0
    for obj, size in zip(ids.tolist(), sizes[ids].astype(np.int64).tolist()):
        request.obj_id, request.obj_size = obj, size
        misses += not cache.get(request)
    return misses / ids.size


def test_exact_curve_agrees_with_libcachesim_lru():
    ids, tiers, sizes, _ = exact_stream("smoke", None)
    for code in range(3):
        mine = ids[tiers == code]
        curve = MissRatioCurve.from_distances(stack_distances(mine, sizes[mine]))
        for capacity in (20_000, 60_000, 150_000, 400_000):
            assert 1 - curve.hit_rate(capacity) == pytest.approx(
                libcachesim_miss_ratio(mine, sizes, capacity), abs=0.005), (code, capacity)


def test_entry_counts_agree_exactly_with_libcachesim():
    ids, _, _, _ = exact_stream("smoke", None)
    ones = np.ones(int(ids.max()) + 1)
    curve = MissRatioCurve.from_distances(stack_distances(ids))
    for capacity in (10, 100, 500):
        assert 1 - curve.hit_rate(capacity) == pytest.approx(libcachesim_miss_ratio(ids, ones, capacity), abs=1e-12)


# --- sizing, report and the command -----------------------------------------------------------

def test_choose_method():
    assert choose_method("auto", None, 10_000) == ("exact", 1.0)
    assert choose_method("auto", None, 1e10) == ("shards", 0.001)
    assert choose_method("auto", None, 1e8, [1e6, 1e6, 2e6]) == ("shards", 0.02)  # objects: 20,000 / 1e6
    assert choose_method("auto", None, 1e9, [1e6, 1e6]) == ("shards", MAX_SAMPLED_REQUESTS / 1e9)  # capped
    assert auto_rate(5e6, [1e4, 0, 3e4]) == pytest.approx(MAX_SAMPLED_REQUESTS / 5e6)
    assert choose_method("auto", None, 1e9, [1e6, 1e6], capped=False) == ("shards", 0.02)  # a window reads it
    assert choose_method("shards", 0.2, 10) == ("shards", 0.2)
    with pytest.raises(ValueError, match="--sample-rate"):
        choose_method("exact", 0.5, 10)
    with pytest.raises(ValueError, match="--method"):
        choose_method("fast", None, 10)


def test_sizing_reads_the_policy_and_the_curve():
    result = size_market_tiers(load_scenario("smoke"), max_measured=500)
    assert result.method == "exact" and result.requests > 10_000
    tier_2 = result.tiers["tier_2"]
    assert (tier_2.target, tier_2.seed_bytes) == (0.87, 512_000_000)
    assert tier_2.curve.hit_rate(tier_2.required_bytes) >= 0.87
    assert tier_2.curve.hit_rate(tier_2.required_bytes * 0.999) < 0.87
    assert result.conclusions()[1].startswith("tier_2 needs ")


def test_cli_writes_json_report_and_figure(tmp_path):
    out = tmp_path / "size"
    result = CliRunner().invoke(app, ["tune", "size", "smoke", "--out", str(out), "--method", "exact"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "sizing.json").read_text())
    assert data["method"] == "exact" and data["sample_rate"] == 1.0
    tier = data["tiers"]["tier_1"]
    assert {"curve", "target_hit_rate", "required_bytes", "seed_bytes", "hit_rate_at_seed", "requests",
            "method", "sample_rate"} <= set(tier)
    assert tier["seed_bytes"] == 1_000_000_000 and len(tier["curve"]) > 10
    assert {p.name for p in out.iterdir()} >= {"sizing.json", "report.html", "report.md", "mrc.png"}
    assert data["conclusions"][0] in (out / "report.md").read_text()


def test_cli_trace_with_shards(tmp_path):
    rng = np.random.default_rng(3)
    keys = [f"q{k}" for k in (rng.zipf(1.2, 4000) % 300)]
    trace = write_trace(tmp_path / "t.csv", np.arange(4000.0), keys, sizes=[700] * 4000,
                        market_tiers=["tier_1", "tier_2"] * 2000)
    result = CliRunner().invoke(app, ["tune", "size", "--trace", str(trace), "--out", str(tmp_path / "o"),
                                      "--method", "shards", "--sample-rate", "0.5"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "o" / "sizing.json").read_text())
    assert data["method"] == "shards" and data["tiers"]["tier_1"]["sample_rate"] == 0.5
    assert data["tiers"]["tier_3"]["requests"] == 0
    assert data["tiers"]["tier_1"]["mean_entry_bytes"] == 700
    assert data["tiers"]["tier_1"]["under_sampled"] and not data["tiers"]["tier_3"]["under_sampled"]  # 300 keys
    assert "Caution: tier_1, tier_2" in (tmp_path / "o" / "report.md").read_text()


@pytest.mark.parametrize("args,option", [(["smoke", "--method", "fast"], "--method"),
                                         (["smoke", "--sample-rate", "0"], "--sample-rate"),
                                         (["smoke", "--method", "exact", "--sample-rate", "0.5"], "--sample-rate"),
                                         ([], "SCENARIO"), (["--days", "1", "--trace", "x.csv"], "--days")])
def test_cli_bad_options_exit_2_naming_them(args, option):
    result = CliRunner().invoke(app, ["tune", "size", *args])
    assert result.exit_code == 2 and option in result.output
