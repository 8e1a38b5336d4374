"""``make bench-sim``: the simulation engine against libCacheSim on one trace (:func:`run_sim_bench`).

One Zipf trace (default 2,000,000 requests over 100,000 objects, alpha 1.0) is replayed by

- the simulation: the real :class:`~wedcache.cache.TieredCache` with the memory tier only
  (LRU, ``capacity`` entries, a 30-day TTL: the policy is active but nothing expires),
  driven by :class:`~simulations.engine.Engine` exactly as ``wedcache simulate --trace`` does;
- libCacheSim's LRU (the ``libcachesim`` package) with the same capacity, fed the same
  requests from the same kind of Python loop: one reused ``Request`` whose ``obj_id`` and
  ``clock_time`` are set per request, then ``cache.get(request)`` — time-aware, as the
  simulation is (its TTL policy reads the clock).

Both loops are timed alone (building keys and the trace is set-up), in alternating rounds;
figures are medians, and ``ratio`` is the median of the rounds' own ratios (each round's two
loops ran back to back, so a busy spell on a shared machine slows both sides of one ratio). The result goes to ``reports/bench/sim.json``.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .engine import Engine
from .model import build_system
from .scenario import scenario_from_dict
from .sources import TraceSource
from .trace import Trace
from .workload import zipf_probabilities

TARGETS = {"ratio": 0.5, "miss_ratio_points": 0.5}


def zipf_trace(requests: int, objects: int, alpha: float, seed: int = 7, span_seconds: float = 86_400.0) -> Trace:
    """A synthetic trace: Zipf(alpha) ids over ``objects``, Poisson-like times over ``span_seconds``."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(zipf_probabilities(objects, alpha))
    ids = np.minimum(np.searchsorted(cdf, rng.random(requests) * cdf[-1], side="right"), objects - 1)
    times = np.sort(rng.random(requests) * span_seconds)
    keys = [f"obj-{i}" for i in range(objects)]
    return Trace(times, ids.astype(np.int64), keys, None, ["bench"] * objects, ["other"] * objects,
                 ["tier_3"] * objects)


def bench_scenario(capacity: int) -> Any:
    return scenario_from_dict({
        "run": {"start_date": "2026-01-05", "days": 1, "seed": 1},
        "cache": {"memory_entries": capacity, "memory_mb": 64 * 1024, "eviction": "lru", "redis": False,
                  "postgres": False, "ttl_seconds": 30 * 86_400, "jitter": 0.0,
                  "stale_while_revalidate_seconds": 0.0, "seasonal_scaling": False},
        "origin": {"latency_median_ms": 0.0, "latency_p95_ms": 0.0},
    }, name="bench-sim")


def time_simulation(trace: Trace, capacity: int) -> tuple[float, float]:
    """``(requests per second of the engine loop, miss ratio)``."""
    scenario = bench_scenario(capacity)
    policy = scenario.policy()
    system = build_system(scenario, policy)
    try:
        source = TraceSource(trace, scenario.workload_spec(), policy, np.random.default_rng(1))
        records = Engine(system, source).run()
    finally:
        system.close()
    return len(trace) / records.loop_seconds, float((records.code > 2).mean())


def time_libcachesim(trace: Trace, capacity: int) -> tuple[float, float]:
    """``(requests per second, miss ratio)`` of libCacheSim's LRU driven per request from Python."""
    import libcachesim as lcs

    cache, request = lcs.LRU(cache_size=capacity), lcs.Request()
    request.obj_size = 1
    get, misses = cache.get, 0
    started = time.perf_counter()
    for clock_time, obj in zip(trace.times.astype(np.int64).tolist(), trace.ids.tolist()):
        request.obj_id, request.clock_time = obj, clock_time
        if not get(request):
            misses += 1
    elapsed = time.perf_counter() - started
    return len(trace) / elapsed, misses / len(trace)


def run_sim_bench(requests: int = 2_000_000, objects: int = 100_000, alpha: float = 1.0, capacity: int = 10_000,
                  repeats: int = 5, out: Path | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Medians over ``repeats`` alternating rounds; writes ``out`` (JSON) when given."""
    trace = zipf_trace(requests, objects, alpha)
    sim, lcs = [], []
    for round_ in range(repeats):
        sim.append(time_simulation(trace, capacity))
        lcs.append(time_libcachesim(trace, capacity))
        if progress is not None:
            progress(f"round {round_ + 1}/{repeats}: simulation {sim[-1][0]:,.0f} req/s, "
                     f"libcachesim {lcs[-1][0]:,.0f} req/s, ratio {sim[-1][0] / lcs[-1][0]:.2f}")
    sim_rps, lcs_rps = statistics.median(r for r, _ in sim), statistics.median(r for r, _ in lcs)
    ratios = [s / c for (s, _), (c, _) in zip(sim, lcs)]
    result = {"requests": requests, "objects": objects, "alpha": alpha, "capacity": capacity, "repeats": repeats,
              "sim_rps": sim_rps, "libcachesim_rps": lcs_rps, "ratio": statistics.median(ratios), "ratio_rounds": ratios,
              "sim_miss_ratio": sim[0][1], "libcachesim_miss_ratio": lcs[0][1],
              "sim_rps_rounds": [r for r, _ in sim], "libcachesim_rps_rounds": [r for r, _ in lcs],
              "targets": TARGETS}
    result["miss_ratio_points"] = abs(result["sim_miss_ratio"] - result["libcachesim_miss_ratio"]) * 100
    result["passed"] = result["ratio"] >= TARGETS["ratio"] and result["miss_ratio_points"] <= TARGETS["miss_ratio_points"]
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return result
