"""The simulation end to end (:func:`simulations.run.simulate`): closed forms, an independent
simulator, determinism, live against modeled backends, and the output contract.

Statistical checks use tolerances derived from the run's own sample (standard errors over
independent units), never wall-clock time. Scenarios are small: the whole file runs in
well under a minute on two cores.

The closed-form and libCacheSim tests use an instant origin (``latency_median_ms = 0``,
``latency_p95_ms = 0``): a miss stores its entry at once, so no request ever waits for a fill
in flight and every miss opens a TTL window exactly at its arrival.
"""
from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import psycopg
import pytest
import redis

import simulations.run as run_module
from simulations.engine import COALESCED, MISS_COLD
from simulations.run import WALL_FIELDS, build_source, simulate
from simulations.scenario import load_scenario, scenario_from_dict
from simulations.trace import write_trace
from simulations.workload import zipf_probabilities
from wedcache.keys import organization_uuid
from wedcache.policy import VENDOR_TYPES

# Memory tier only, a memory far larger than the catalogue, a fixed TTL without jitter or
# grace, constant Poisson traffic, uniform popularity and an instant origin.
BASE = {
    "name": "closed-form",
    "run": {"start_date": "2026-01-05", "duration_seconds": 10_000.0, "seed": 7},
    "traffic": {"base_qps": 10.0, "seasonal": False, "weekly": False, "daily": False, "arrivals": "poisson"},
    "queries": {"distinct": 100, "zipf_alpha": 0.0, "organizations": 3},
    "cache": {"memory_entries": 1_000_000, "memory_mb": 1024.0, "eviction": "lru", "ttl_seconds": 10.0,
              "jitter": 0.0, "redis": False, "postgres": False, "stale_while_revalidate_seconds": 0.0,
              "seasonal_scaling": False},
    "origin": {"latency_median_ms": 0.0, "latency_p95_ms": 0.0},
}


def _merge(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def scenario(**tables):
    """:data:`BASE` with ``tables`` merged in, key by key (a ``None`` value removes the key)."""
    return scenario_from_dict(_merge(BASE, tables))


def ratio_stderr(numerators: np.ndarray, denominators: np.ndarray) -> float:
    """Standard error of ``sum(numerators) / sum(denominators)`` over independent units."""
    ratio = numerators.sum() / denominators.sum()
    n = numerators.size
    return float(math.sqrt(n / (n - 1) * np.sum((numerators - ratio * denominators) ** 2)) / denominators.sum())


def _without_wall(summary: dict) -> str:
    return json.dumps({k: v for k, v in summary.items() if k not in WALL_FIELDS}, sort_keys=True, default=str)


# --- 1. TTL cache under Poisson arrivals ------------------------------------------------------

@pytest.mark.parametrize("ttl", [10.0, 40.0])
def test_ttl_cache_hit_ratio_matches_the_poisson_closed_form(ttl):
    """Per object, requests are Poisson at rate r = λ/N; a miss opens a TTL window of length T
    in which every request hits (r·T hits on average), then the next request misses again. So
    a renewal cycle holds 1 + rT requests of which rT hit: hit ratio x / (1 + x), x = λT/N."""
    qps, n = 10.0, 100
    result = simulate(scenario(cache={"ttl_seconds": ttl}))
    rec, x = result.records, qps * ttl / n
    expected = x / (1 + x)
    # Objects are independent renewal processes: the standard error of the ratio estimator
    # over objects. The run starts cold (each object's first request misses, whatever its
    # phase), an edge effect of at most one miss per object.
    hits = np.bincount(rec.object_id, weights=rec.code <= 2, minlength=n)
    requests = np.bincount(rec.object_id, minlength=n).astype(float)
    stderr = ratio_stderr(hits, requests)
    edge = n / requests.sum()
    measured = result.summary["hit_rate"]
    assert rec.code.size > 90_000 and stderr < 0.002
    assert abs(measured - expected) <= 4 * stderr + edge, (measured, expected, stderr)
    assert result.summary["misses"]["evicted"] == 0 and result.summary["misses"]["coalesced"] == 0


# --- 2. Poisson data changes: the stale hit fraction ------------------------------------------

@pytest.mark.parametrize("mu_t", [0.5, 2.0])
def test_stale_hit_fraction_matches_the_poisson_closed_form(mu_t):
    """Data changes are Poisson at rate μ; a hit at age a is stale iff a change fell within
    the last a seconds (probability 1 - e^(-μa)). Hits of a TTL window come at Poisson times,
    so their ages are uniform on (0, T): stale fraction 1 - (1 - e^(-μT)) / (μT)."""
    ttl = 60.0
    mu = mu_t / ttl
    s = scenario(run={"duration_seconds": 36_000.0, "seed": 3}, traffic={"base_qps": 5.0},
                 queries={"distinct": 240, "vendor_mix": {v: 1.0 for v in VENDOR_TYPES}},
                 cache={"ttl_seconds": ttl}, data_changes={"rate_per_hour": mu * 3600})
    result = simulate(s)
    rec = result.records
    expected = 1 - (1 - math.exp(-mu_t)) / mu_t
    measured = result.summary["stale_hit_fraction"]
    # All objects of one vendor type share its change times, so hits are not independent: a
    # single change makes every entry of that vendor created before it stale. The correlation
    # spans about 2T (a change touches entries created up to T before it and served up to T
    # after it), and the twelve vendor types have independent change processes. So the
    # standard error is taken by batch means over (vendor type, 10·T block of time): ~720
    # nearly independent batches (checked against the spread over seeds: both ~0.004 at μT=1).
    hits = rec.code <= 2
    vendors = build_source(s, s.policy(), None).vendor_codes[rec.object_id[hits]].astype(np.int64)
    blocks = (rec.t[hits] // (10 * ttl)).astype(np.int64)
    _, batch = np.unique(vendors * 1_000_000 + blocks, return_inverse=True)
    stderr = ratio_stderr(np.bincount(batch, weights=rec.stale[hits]), np.bincount(batch).astype(float))
    assert hits.sum() > 80_000 and batch.max() > 500
    assert abs(measured - expected) <= 4 * stderr, (measured, expected, stderr)
    # Staleness is only marked on hits, and hit ratio is untouched by data changes.
    assert not rec.stale[~hits].any()
    x = 5.0 * ttl / 240
    assert abs(result.summary["hit_rate"] - x / (1 + x)) < 0.01


# --- 3. Agreement with libCacheSim -----------------------------------------------------------

@pytest.mark.parametrize("capacity", [100, 500])
def test_lru_trace_replay_agrees_with_libcachesim(capacity, tmp_path):
    """The same Zipf(1.0) id sequence through our memory tier (LRU, ``capacity`` entries, a TTL
    far longer than the trace) and through libCacheSim's LRU: the miss ratios agree."""
    lcs = pytest.importorskip("libcachesim")
    rng = np.random.default_rng(20260601)
    n_objects, n_requests = 2_000, 100_000
    ids = rng.choice(n_objects, size=n_requests, p=zipf_probabilities(n_objects, 1.0))
    # Evenly spaced over a day (0.86 s apart): no two requests share a timestamp.
    times = np.arange(n_requests) * (86_400.0 / n_requests)
    path = write_trace(tmp_path / "zipf.csv", times, [f"obj-{i}" for i in ids])

    cache, req = lcs.LRU(cache_size=capacity), lcs.Request()
    req.obj_size = 1
    misses = 0
    for object_id in ids.tolist():
        req.obj_id = object_id
        misses += not cache.get(req)
    reference = misses / n_requests

    s = scenario(run={"start_date": "2026-06-01"},
                 cache={"memory_entries": capacity, "memory_mb": 256.0, "ttl_seconds": 30 * 86_400.0})
    result = simulate(s, trace=path)
    ours = 1 - result.summary["hit_rate"]
    assert result.summary["sampled_requests"] == n_requests
    assert abs(ours - reference) <= 0.005, (ours, reference)
    assert result.summary["misses"]["expired"] == 0


# --- 4. Determinism --------------------------------------------------------------------------

def test_same_seed_same_summary_other_seed_other_summary():
    smoke = load_scenario("smoke")
    first, second = simulate(smoke).summary, simulate(smoke).summary
    assert _without_wall(first) == _without_wall(second)
    other = simulate(smoke.with_overrides(seed=smoke.run.seed + 1)).summary
    assert _without_wall(other) != _without_wall(first)
    assert other["requests"] != first["requests"] or other["hit_rate"] != first["hit_rate"]


_SUMMARY_IN_A_PROCESS = """
import json, sys
from simulations.run import WALL_FIELDS, simulate
from simulations.scenario import scenario_from_dict
summary = simulate(scenario_from_dict(json.loads(sys.argv[1]))).summary
print(json.dumps({k: v for k, v in summary.items() if k not in WALL_FIELDS}, sort_keys=True, default=str))
"""


def test_tinylfu_runs_are_identical_across_processes_with_different_hash_salts():
    """TinyLFU admission hashes keys; the hash must not depend on the process's salt."""
    evicting = _merge(BASE, {"queries": {"zipf_alpha": 0.8},
                             "cache": {"memory_entries": 30, "eviction": "tinylfu", "ttl_seconds": 600.0}})
    outputs = []
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        done = subprocess.run([sys.executable, "-c", _SUMMARY_IN_A_PROCESS, json.dumps(evicting)],
                              env=env, capture_output=True, text=True, check=True)
        outputs.append(done.stdout)
    assert json.loads(outputs[0])["hit_rate"] < 0.9  # the memory is small: admission decides
    assert outputs[0] == outputs[1]


# --- 5. Live backends against modeled ones ---------------------------------------------------

@pytest.mark.integration
def test_live_smoke_run_matches_modeled_and_leaves_nothing_behind(services, database_url, state_dir, monkeypatch):
    """The smoke scenario against the suite's real Redis and PostgreSQL (the session's own
    database) and against the modeled tiers: the same hit rate within 2 points; afterwards
    the live run's organizations hold no entries in either server."""
    monkeypatch.setenv("AI_CACHE_REDIS_URL", services.redis_url)
    monkeypatch.setenv("AI_CACHE_DATABASE_URL", database_url)
    monkeypatch.setenv("WEDCACHE_STATE_DIR", str(state_dir))
    systems = []

    def recording_build_system(*args, **kwargs):
        system = real_build_system(*args, **kwargs)
        systems.append(system)
        return system

    real_build_system = run_module.build_system
    monkeypatch.setattr(run_module, "build_system", recording_build_system)
    client = redis.Redis.from_url(services.redis_url)
    keys_before = client.dbsize()
    smoke = load_scenario("smoke")

    modeled = simulate(smoke, backends="modeled").summary
    live = simulate(smoke, backends="live").summary

    namespace = systems[-1].namespace
    orgs = [organization_uuid(f"{namespace}org-{i:03d}") for i in range(smoke.queries.organizations)]
    try:
        assert namespace.startswith("sim-") and live["backends"] == "live"
        assert live["requests"] == modeled["requests"]
        assert abs(live["hit_rate"] - modeled["hit_rate"]) <= 0.02, (live["hit_rate"], modeled["hit_rate"])
        assert live["tier_hit_rate"]["redis"] > 0
        for org in orgs:
            assert not list(client.scan_iter(match=f"ai:{{{org}}}*", count=1000)), org
        with psycopg.connect(database_url) as conn:
            left = conn.execute("SELECT count(*) FROM ai_cache_entries WHERE organization_id = ANY(%s::uuid[])",
                                (orgs,)).fetchone()[0]
        assert left == 0
        assert client.dbsize() <= keys_before + 2  # at most the shared ``ai:orgs`` set appears
    finally:
        client.srem("ai:orgs", *orgs)  # the organization registry keeps members after invalidation
        client.close()


# --- 6. Stale-while-revalidate ----------------------------------------------------------------

def test_stale_while_revalidate_raises_hit_rate_and_lowers_p95():
    def run(grace: float) -> dict:
        s = scenario(run={"duration_seconds": 7_200.0}, traffic={"base_qps": 5.0},
                     queries={"distinct": 500, "zipf_alpha": 0.8},
                     cache={"ttl_seconds": 120.0, "redis": True, "stale_while_revalidate_seconds": grace},
                     origin={"latency_median_ms": 50.0, "latency_p95_ms": 120.0})
        return simulate(s).summary

    with_swr, without = run(600.0), run(0.0)
    assert with_swr["swr"]["grace_served"] > 0 and without["swr"]["grace_served"] == 0
    assert with_swr["hit_rate"] > without["hit_rate"] + 0.1
    assert with_swr["latency_ms"]["p95"] <= without["latency_ms"]["p95"]
    assert with_swr["misses"]["expired"] < without["misses"]["expired"]
    assert with_swr["swr"]["p95_ms_without"] >= with_swr["swr"]["p95_ms"]
    # Without the grace window nobody is served stale: both p95 figures are the same.
    assert without["swr"]["p95_ms_without"] == without["swr"]["p95_ms"]


# --- 7. Output contract -----------------------------------------------------------------------

SUMMARY_KEYS = ("scenario", "seed", "sample_rate", "requests", "wall_seconds", "sim_requests_per_second",
                "hit_rate", "tier_hit_rate", "stale_hit_fraction", "latency_ms", "origin_calls",
                "origin_cost_usd", "cost_saved_usd", "by_season", "by_market_tier", "by_vendor_type", "sla")
TIMESERIES_COLUMNS = ("hour", "requests", "hits_memory", "hits_redis", "hits_postgres", "misses", "stale_hits",
                      "p95_ms", "memory_bytes", "memory_entries")
CHARTS = ("load_and_hit_rate", "latency_by_season", "hit_rate_by_market_tier", "hit_rate_by_vendor_type",
          "staleness", "cost")


def test_smoke_run_writes_every_contract_file_and_key(tmp_path):
    import pandas as pd

    result = simulate(load_scenario("smoke"), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary)
    assert set(summary["tier_hit_rate"]) >= {"memory", "redis", "postgres"}
    assert set(summary["latency_ms"]) >= {"mean", "p50", "p95", "p99"}
    for group in ("by_season", "by_market_tier", "by_vendor_type"):
        assert summary[group], group
        for name, stats in summary[group].items():
            assert {"requests", "hit_rate", "p95_ms", "stale_hit_fraction"} <= set(stats), (group, name)
    assert summary["scenario"] == "smoke" and summary["sample_rate"] == 1.0
    assert summary["requests"] == sum(g["requests"] for g in summary["by_market_tier"].values())
    assert 0 < summary["hit_rate"] < 1

    sla = summary["sla"]
    assert isinstance(sla["passed"], bool)
    for check in sla["checks"]:
        assert {"name", "target", "actual", "passed"} <= set(check)
    assert sla["passed"] == all(c["passed"] for c in sla["checks"])
    names = [c["name"] for c in sla["checks"]]
    for prefix in ("response_time.memory", "end_to_end.p95", "hit_rate", "seasonal.", "market_tier."):
        assert any(name.startswith(prefix) for name in names), prefix

    series = pd.read_csv(tmp_path / "timeseries.csv")
    assert set(TIMESERIES_COLUMNS) <= set(series.columns)
    assert len(series) == 1 and series["requests"].sum() == pytest.approx(summary["requests"])
    hits = series[["hits_memory", "hits_redis", "hits_postgres"]].sum().sum()
    assert hits + series["misses"].sum() == pytest.approx(summary["requests"])

    for name in ("report.html", "report.md", *(f"{chart}.png" for chart in CHARTS)):
        path = tmp_path / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert (tmp_path / "load_and_hit_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.files["summary"] == tmp_path / "summary.json"


# --- 8. Seasonal scaling ----------------------------------------------------------------------

def test_seasonal_scaling_applies_the_spring_plan_on_the_first_of_march():
    def run(enabled: bool):
        s = scenario(run={"start_date": "2026-02-28", "duration_seconds": 2 * 86_400.0},
                     traffic={"base_qps": 0.2}, queries={"distinct": 2_000, "zipf_alpha": 1.0},
                     cache={"memory_entries": 500, "memory_mb": 16.0, "ttl_seconds": None, "jitter": None,
                            "redis": True, "postgres": True, "seasonal_scaling": enabled},
                     origin={"latency_median_ms": 50.0, "latency_p95_ms": 120.0})
        return simulate(s)

    scaled, fixed = run(True), run(False)
    events = scaled.summary["scaling_events"]
    assert [e["season"] for e in events] == ["winter", "spring"]
    winter, spring = events
    assert winter["at"] == datetime(2026, 2, 28, tzinfo=timezone.utc).timestamp()
    assert spring["at"] == datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()
    assert winter["cache_size_multiplier"] == 1.0 and spring["cache_size_multiplier"] == 2.5
    assert spring["memory_bytes"] == int(winter["memory_bytes"] * 2.5)
    assert spring["memory_entries"] == int(winter["memory_entries"] * 2.5) == 1250
    # The larger budget is used: only the scaled run holds more than 500 entries on 1 March.
    assert scaled.timeseries["memory_entries"].max() > 500
    assert fixed.timeseries["memory_entries"].max() <= 500
    assert fixed.summary["scaling_events"] == []


# --- 9. Sampling ----------------------------------------------------------------------------

def test_sampled_run_estimates_the_full_run():
    """SHARDS: a quarter of the keys, with a quarter of the memory, sees about the same hit
    rate, and its counts are scaled back to the full workload."""
    def run(rate: float) -> dict:
        s = scenario(run={"duration_seconds": 20_000.0, "seed": 1, "sample_rate": rate},
                     traffic={"base_qps": 10.0}, queries={"distinct": 20_000, "zipf_alpha": 0.5},
                     cache={"memory_entries": 4_000, "ttl_seconds": 30 * 86_400.0})
        return simulate(s).summary

    full, sampled = run(1.0), run(0.25)
    stderr = sampled["sampling"]["hit_rate_stderr"]
    assert 0 < stderr < 0.015  # small enough for the comparison to mean something
    assert 0.2 < full["hit_rate"] < 0.5  # capacity-bound: the memory size matters
    assert abs(full["hit_rate"] - sampled["hit_rate"]) <= 3 * stderr, (full["hit_rate"], sampled["hit_rate"], stderr)
    assert sampled["sampled_requests"] < 0.4 * full["sampled_requests"]
    assert abs(sampled["requests"] - full["requests"]) <= 0.1 * full["requests"]
    assert sampled["sampling"]["scale"] == pytest.approx(4, rel=0.2)


# --- 10. Origin concurrency --------------------------------------------------------------------

def test_origin_concurrency_one_queues_a_burst_of_cold_misses():
    """50 requests/s, almost all first requests, against an origin that takes ~60 ms per call:
    one call at a time cannot keep up, so misses queue (M/G/1, first come first served)."""
    def run(concurrency: int | None):
        s = scenario(run={"duration_seconds": 120.0}, traffic={"base_qps": 50.0},
                     queries={"distinct": 20_000}, cache={"ttl_seconds": None, "jitter": None},
                     origin={"latency_median_ms": 50.0, "latency_p95_ms": 120.0, "concurrency": concurrency})
        return simulate(s)

    free, single = run(None), run(1)
    a, b = free.records, single.records
    # Everything else is equal: the same requests, the same first requests, the same calls.
    assert np.array_equal(a.t, b.t) and np.array_equal(a.object_id, b.object_id)
    cold = a.code == MISS_COLD
    assert np.array_equal(cold, b.code == MISS_COLD) and cold.mean() > 0.8
    assert free.summary["origin_calls"] == single.summary["origin_calls"] == cold.sum()
    assert free.summary["requests"] == single.summary["requests"]
    assert free.summary["misses"]["coalesced"] == 0 < single.summary["misses"]["coalesced"]
    assert single.summary["hit_rate"] < free.summary["hit_rate"]
    assert single.summary["latency_ms"]["mean"] > 10 * free.summary["latency_ms"]["mean"]
    assert single.summary["latency_ms"]["p95"] > free.summary["latency_ms"]["p95"]

    # The queue is exactly Lindley's: wait_i = max(0, wait_{i-1} + service_{i-1} - gap_i), with
    # service times read off the unlimited run (same origin draws, in the same order). Those
    # readings include each request's memory-lookup time, at most the slowest hit's latency,
    # so the predicted waits may drift by that much per queued call.
    t, service = a.t[cold], a.latency_ms[cold] / 1000
    wait = np.zeros(t.size)
    for i in range(1, t.size):
        wait[i] = max(0.0, wait[i - 1] + service[i - 1] - (t[i] - t[i - 1]))
    drift = a.latency_ms[a.code <= 2].max() * cold.sum()
    assert np.max(np.abs(a.latency_ms[cold] + wait * 1000 - b.latency_ms[cold])) <= drift + 1e-6
    assert wait.max() > 60  # a real backlog: over a minute at the end of the burst
    # A request that waited for a fill under way was released when that fill landed.
    waited = b.code == COALESCED
    assert np.all(b.latency_ms[waited] > 0)


def test_a_scenario_starts_from_the_policy_file_as_serve_does(tmp_path, monkeypatch):
    from simulations.scenario import load_scenario
    from wedcache.policy import dump_policy, load_policy, policy_from_dict, policy_to_dict

    data = policy_to_dict(load_policy())
    data["vendors"]["venue"]["baseTtl"] = 1234
    path = dump_policy(policy_from_dict(data), tmp_path / "tuned-policy.toml")
    scenario = load_scenario("smoke")
    assert scenario.policy().vendors["venue"].baseTtl != 1234
    monkeypatch.setenv("AI_CACHE_POLICY_FILE", str(path))
    assert scenario.policy().vendors["venue"].baseTtl == 1234


# --- The engine's inline memory hits -------------------------------------------------------------

def _records(s, with_hit_listener: bool):
    from simulations.engine import Engine
    from simulations.model import build_system

    policy = s.policy()
    system = build_system(s, policy)
    try:
        if with_hit_listener:  # hits must then fire one by one: the engine calls the whole lookup
            system.cache.events.hit.add_listener(lambda **_: None)
        rec = Engine(system, build_source(s, policy, None)).run()
        return rec, {name: (c.hits, c.misses) for name, c in system.cache.counters.items()}
    finally:
        system.close()


def test_inline_memory_hits_give_exactly_what_the_whole_lookup_gives():
    """TieredCache.memory_reader's split path (a fresh memory hit served by the engine inline)
    against lookup per request, on a run with expiries, evictions, a grace window and a modeled
    Redis below memory: every outcome, served entry, latency and tier counter is the same."""
    s = scenario(queries={"distinct": 400, "zipf_alpha": 0.9},
                 cache={"memory_entries": 60, "ttl_seconds": 30.0, "stale_while_revalidate_seconds": 5.0,
                        "redis": True},
                 origin={"latency_median_ms": 200.0, "latency_p95_ms": 600.0})
    (inline, inline_counts), (whole, whole_counts) = _records(s, False), _records(s, True)
    assert inline.code.size > 50_000 and (inline.code == 0).sum() > 10_000
    assert inline_counts == whole_counts and inline_counts["redis"][0] > 0
    for field in ("code", "object_id", "created", "latency_ms", "grace", "latency_without_grace_ms"):
        np.testing.assert_array_equal(getattr(inline, field), getattr(whole, field), err_msg=field)
