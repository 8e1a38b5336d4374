"""The core benchmark: each tier's hit path against the raw client underneath it.

:func:`run_core_bench` measures, in one run and interleaved so machine noise hits both
sides alike:

- L1: ``TieredCache.get(key)`` served from memory vs ``cachetools.TTLCache`` get;
- L2: ``TieredCache.get(key)`` served from Redis (no memory tier) vs a raw redis-py GET of
  the same stored bytes;
- L3: ``TieredCache.get(key)`` served from PostgreSQL (no faster tier) vs a raw psycopg
  SELECT of the same row.

Each figure is the median over ``repeats`` rounds of ``iterations`` calls; each ratio is
the median of the per-round ratios. Results go to ``reports/bench/bench.json``
(:data:`BENCH_KEYS`).
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cachetools
import psycopg
import redis

from .cache import TieredCache
from .clock import SystemClock
from .tiers.memory import MemoryTier

BENCH_KEYS = ("l1_hit_us", "cachetools_get_us", "l1_ratio", "l2_hit_us", "redis_get_us", "l2_ratio",
              "l3_hit_us", "pg_select_us", "l3_ratio", "payload_bytes")
TARGETS = {"l1_ratio": 2.0, "l2_ratio": 1.3, "l3_ratio": 1.3}
BENCH_ORG = "wedcache-bench"
QUERY = "rustic barn venues near Austin for 150 guests with outdoor ceremony space"
CONTEXT = {"weddingDate": "2026-06-06", "location": "Austin, TX", "vendorTypes": ["venue"], "guestCount": 150}
ANSWER = {"answer": ("Consider these barn venues with outdoor ceremony space and capacity for 150 guests. "
                     * 12)[:1000], "model": "bench", "tokens": 180}
PG_BASELINE_SQL = "SELECT cache_value, expires_at FROM ai_cache_entries WHERE cache_key = %s"


@dataclass
class Pair:
    """One comparison: ``ours`` against ``baseline``, per-call microseconds per round."""

    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(o / b for o, b in zip(self.ours, self.baseline))


def per_call_us(fn: Callable[[], Any], iterations: int) -> float:
    """Microseconds per call of ``fn`` over ``iterations`` calls."""
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations * 1e6


def compare(ours: Callable[[], Any], baseline: Callable[[], Any], iterations: int, repeats: int) -> Pair:
    """Alternate ``ours`` and ``baseline`` rounds (after one warm-up round of each)."""
    pair = Pair()
    per_call_us(ours, max(1, iterations // 10))
    per_call_us(baseline, max(1, iterations // 10))
    for _ in range(repeats):
        pair.ours.append(per_call_us(ours, iterations))
        pair.baseline.append(per_call_us(baseline, iterations))
    return pair


def _check_hit(cache: TieredCache, key: str, tier: str) -> None:
    result = cache.get(key)
    if result is None or result.tier != tier:
        raise RuntimeError(f"benchmark set-up: expected a {tier} hit for {key}, got {result}")


def bench_l1(iterations: int, repeats: int, eviction: str = "lru") -> tuple[Pair, str]:
    cache = TieredCache([MemoryTier(eviction=eviction)], clock=SystemClock())
    entry = cache.set(BENCH_ORG, QUERY, CONTEXT, ANSWER)
    baseline = cachetools.TTLCache(maxsize=1_000_000, ttl=3600)
    baseline[entry.key] = ANSWER
    _check_hit(cache, entry.key, "memory")
    key = entry.key
    return compare(lambda: cache.get(key), lambda: baseline[key], iterations, repeats), entry.key


def bench_l2(redis_url: str, iterations: int, repeats: int) -> tuple[Pair, int]:
    from .tiers.redis import RedisTier
    tier = RedisTier(redis_url, timeout_ms=1000)
    cache = TieredCache([tier], clock=SystemClock())
    entry = cache.set(BENCH_ORG, QUERY, CONTEXT, ANSWER)
    raw = redis.Redis.from_url(redis_url)
    key = entry.key
    _check_hit(cache, key, "redis")
    pair = compare(lambda: cache.get(key), lambda: raw.get(key), iterations, repeats)
    raw.close()
    cache.close()
    return pair, len(entry.encode())


def bench_l3(database_url: str, iterations: int, repeats: int) -> Pair:
    from .tiers.postgres import PostgresTier
    tier = PostgresTier(database_url, timeout_ms=2000)
    cache = TieredCache([tier], clock=SystemClock())
    key = cache.set(BENCH_ORG, QUERY, CONTEXT, ANSWER).key
    _check_hit(cache, key, "postgres")
    with psycopg.connect(database_url, autocommit=True) as conn:
        pair = compare(lambda: cache.get(key), lambda: conn.execute(PG_BASELINE_SQL, (key,)).fetchone(),
                       iterations, repeats)
    cache.close()
    return pair


def bench_database(server_url: str, name: str = "wedcache_bench") -> str:
    """A migrated database for the benchmark on ``server_url``'s server (created once)."""
    from .migrations import apply_migrations
    from .services import with_database
    with psycopg.connect(server_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    apply_migrations(url)
    return url


def run_core_bench(redis_url: str, database_url: str, *, iterations: int = 2000, repeats: int = 7,
                   out: Path | None = Path("reports/bench/bench.json")) -> dict[str, Any]:
    """Run the three comparisons and write ``bench.json``; returns the figures."""
    l1, _ = bench_l1(iterations * 10, repeats)
    l1_tinylfu, _ = bench_l1(iterations * 10, repeats, eviction="tinylfu")
    l2, payload = bench_l2(redis_url, iterations, repeats)
    l3 = bench_l3(bench_database(database_url), iterations, repeats)
    med = statistics.median
    result = {
        "l1_hit_us": med(l1.ours), "cachetools_get_us": med(l1.baseline), "l1_ratio": l1.ratio,
        "l2_hit_us": med(l2.ours), "redis_get_us": med(l2.baseline), "l2_ratio": l2.ratio,
        "l3_hit_us": med(l3.ours), "pg_select_us": med(l3.baseline), "l3_ratio": l3.ratio,
        "payload_bytes": payload,
        "l1_tinylfu_hit_us": med(l1_tinylfu.ours), "l1_tinylfu_ratio": l1_tinylfu.ratio,
        "iterations": iterations, "repeats": repeats, "targets": TARGETS,
    }
    result["passed"] = all(result[k] <= v for k, v in TARGETS.items())
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return result
