"""Latency measured on real servers: :func:`run_calibration` (behind ``wedcache calibrate``).

The real :class:`~wedcache.tiers.memory.MemoryTier`, :class:`~wedcache.tiers.redis.RedisTier`
and :class:`~wedcache.tiers.postgres.PostgresTier` each store a few hundred realistic
entries (wedding queries from :class:`~simulations.workload.Catalogue`, answers shaped like
:func:`wedcache.origin.compose_answer`'s), under one dedicated organization
(:data:`CALIBRATION_ORG`). After a warm-up, the wall time (``time.perf_counter_ns``) of
``samples`` hit ``get`` calls and ``samples`` ``set`` calls (upserts of the stored entries)
is measured per tier, decoding included: what the cache itself waits for (garbage
collection paused, see :func:`time_calls`). The timed calls run in interleaved rounds, tier
after tier, so a noisy moment on the machine does not land on one tier only. The entries are
invalidated afterwards. PostgreSQL is measured in its own migrated database
(``wedcache_calibrate``) on the given server.
"""
from __future__ import annotations

import gc
import platform
import time
from contextlib import ExitStack, closing
from datetime import date
from typing import Callable, Sequence

import numpy as np
import psycopg

from wedcache.cache import TieredCache
from wedcache.clock import SystemClock
from wedcache.context import parse_context
from wedcache.entry import CacheEntry, Selector
from wedcache.keys import cache_key, organization_uuid
from wedcache.origin import compose_answer
from wedcache.tiers import Tier

from .latency import Calibration, LatencyModel
from .workload import Catalogue, WorkloadSpec

CALIBRATION_ORG = organization_uuid("wedcache-calibrate")
DATABASE = "wedcache_calibrate"
MODEL = "calibration"
ROUNDS = 10
"""Interleaved rounds the timed calls are split into."""


def calibration_entries(n: int, seed: int = 0) -> list[CacheEntry]:
    """``n`` entries of :data:`CALIBRATION_ORG` with realistic queries, contexts and answers."""
    cache = TieredCache([], clock=SystemClock())
    catalogue = Catalogue(WorkloadSpec(distinct=n), np.random.default_rng(seed))
    entries = []
    for qid in range(n):
        query, context = catalogue.query(qid), parse_context(catalogue.context(qid))
        key = cache_key(CALIBRATION_ORG, query, context, "vendor_recommendation")
        entries.append(cache.make_entry(key, CALIBRATION_ORG, query, context,
                                        compose_answer(query, context, MODEL), "vendor_recommendation"))
    return entries


def time_calls(call: Callable[[CacheEntry], object], entries: Sequence[CacheEntry], samples: int,
               first: int = 0) -> np.ndarray:
    """Seconds per ``call(entry)`` over ``samples`` calls, on the entries in turn from index ``first``.

    The garbage collector is paused while timing: its pauses belong to the whole process's
    allocations, not to the tier call that happens to trigger one.
    """
    n, out, clock = len(entries), [0] * samples, time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for i in range(samples):
            entry = entries[(first + i) % n]
            start = clock()
            call(entry)
            out[i] = clock() - start
    finally:
        gc.enable()
    return np.array(out, dtype=float) / 1e9


def tier_calls(tier: Tier, entries: Sequence[CacheEntry]) -> dict[str, Callable[[CacheEntry], object]]:
    """Store ``entries`` in ``tier`` (checking they read back); its ``get`` and ``set`` as calls on an entry."""
    for entry in entries:
        tier.set(entry)
    missing = [e.key for e in entries if tier.get(e.key) is None]
    if missing:
        raise RuntimeError(f"calibration set-up: {tier.name} does not hold {missing[0]} after set")
    return {"get": lambda entry: tier.get(entry.key), "set": tier.set}


def measure(tiers: Sequence[Tier], entries: Sequence[CacheEntry], samples: int, warmup: int,
            rounds: int = ROUNDS) -> dict[str, dict[str, np.ndarray]]:
    """Seconds per call, by tier and operation: ``warmup`` untimed calls, then ``samples`` timed
    ones in ``rounds`` interleaved rounds (so machine noise hits every tier alike)."""
    calls = {tier.name: tier_calls(tier, entries) for tier in tiers}
    for ops in calls.values():
        for call in ops.values():
            time_calls(call, entries, warmup)
    timed: dict[str, dict[str, list]] = {name: {op: [] for op in ops} for name, ops in calls.items()}
    bounds = np.linspace(0, samples, min(rounds, samples) + 1).astype(int)
    for start, stop in zip(bounds[:-1], bounds[1:]):
        for name, ops in calls.items():
            for op, call in ops.items():
                timed[name][op].append(time_calls(call, entries, stop - start, start))
    return {name: {op: np.concatenate(parts) for op, parts in ops.items()} for name, ops in timed.items()}


def open_tiers(redis_url: str, database_url: str, stack: ExitStack) -> list[Tier]:
    """The real tiers (closed with ``stack``), with timeouts long enough that a slow call is measured, not failed."""
    from wedcache.bench import bench_database
    from wedcache.tiers.memory import MemoryTier
    from wedcache.tiers.postgres import PostgresTier
    from wedcache.tiers.redis import RedisTier
    makers = (lambda: MemoryTier(eviction="tinylfu"), lambda: RedisTier(redis_url, timeout_ms=2000),
              lambda: PostgresTier(bench_database(database_url, DATABASE), timeout_ms=5000))
    return [stack.enter_context(closing(make())) for make in makers]


def run_calibration(redis_url: str, database_url: str, *, samples: int = 2000, entries: int = 300,
                    seed: int = 0) -> Calibration:
    """Measure every tier's ``get`` and ``set`` and return the calibration (``source = "wedcache calibrate"``).

    :param redis_url: a Redis server.
    :param database_url: a PostgreSQL server (any database; the measurement uses its own).
    :param samples: timed calls per tier and operation.
    :param entries: distinct entries stored per tier.
    """
    if samples < 1 or entries < 1:
        raise ValueError("samples and entries must be >= 1")
    stored = calibration_entries(entries, seed)
    warmup = max(50, samples // 10)
    with ExitStack() as stack:
        tiers = open_tiers(redis_url, database_url, stack)
        stack.callback(_forget, tiers)  # before the tiers close
        timings = measure(tiers, stored, samples, warmup)
        versions = _server_versions(tiers)
    models = {name: {op: LatencyModel.from_samples(timings[name][op]) for op in ("get", "set")}
              for name in timings}
    return Calibration(models, "wedcache calibrate", date.today().isoformat(),
                       _notes(samples, warmup, stored, versions))


def _forget(tiers: Sequence[Tier]) -> None:
    """Remove the calibration entries from every tier."""
    selector = Selector.build(org_id=CALIBRATION_ORG)
    for tier in tiers:
        tier.invalidate(selector)


def _server_versions(tiers: Sequence[Tier]) -> str:
    by_name = {t.name: t for t in tiers}
    redis_version = by_name["redis"].client.info("server").get("redis_version", "?")
    with psycopg.connect(by_name["postgres"].url, autocommit=True) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
    return f"Redis {redis_version}, PostgreSQL {pg_version}, Python {platform.python_version()}"


def _notes(samples: int, warmup: int, entries: Sequence[CacheEntry], versions: str) -> str:
    size = int(np.median([e.size for e in entries]))
    return (f"wall time of each tier's own get (hits, decoding included) and set (upserts), garbage collector "
            f"paused; {samples} timed calls per tier and operation in {min(ROUNDS, samples)} interleaved rounds "
            f"after {warmup} warm-up calls, over {len(entries)} entries of ~{size} bytes; {versions}")
