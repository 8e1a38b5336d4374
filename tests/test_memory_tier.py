"""The memory tier and its eviction policies."""
import numpy as np
import pytest

from wedcache.entry import CacheEntry, Selector
from wedcache.tiers import tier_from_url
from wedcache.tiers.memory import MemoryTier


def entry(key, org="o1", size_hint="v", **kw):
    return CacheEntry(key, size_hint, 0.0, 1e12, org, **kw)


@pytest.mark.parametrize("eviction", ["lru", "tinylfu"])
def test_bounded_by_entries(eviction):
    tier = MemoryTier(max_bytes=10**9, max_entries=100, eviction=eviction)
    for i in range(1000):
        tier.set(entry(f"k{i}"))
    assert tier.stats()["entries"] <= 100
    assert tier.stats()["evictions"] >= 900


@pytest.mark.parametrize("eviction", ["lru", "tinylfu"])
def test_bounded_by_bytes(eviction):
    tier = MemoryTier(max_bytes=50_000, max_entries=10**6, eviction=eviction)
    for i in range(1000):
        tier.set(entry(f"k{i}", size_hint="x" * 400))
    assert tier.stats()["bytes"] <= 50_000


def test_lru_keeps_the_recently_used():
    tier = MemoryTier(max_bytes=10**9, max_entries=3, eviction="lru")
    for k in "abc":
        tier.set(entry(k))
    tier.get("a")
    tier.set(entry("d"))
    assert tier.get("b") is None and tier.get("a") is not None


def _hit_ratio(eviction, trace, capacity):
    tier, hits = MemoryTier(max_bytes=10**9, max_entries=capacity, eviction=eviction), 0
    for r in trace:
        if tier.get(f"k{r}") is not None:
            hits += 1
        else:
            tier.set(entry(f"k{r}"))
    return hits / len(trace)


def test_tinylfu_beats_lru_on_a_skewed_trace_with_scans():
    """Frequency-gated admission protects popular keys from one-off keys."""
    rng = np.random.default_rng(7)
    popular = rng.zipf(1.2, 60_000) % 5_000
    scans = np.arange(60_000) + 100_000  # one-hit wonders interleaved
    trace = np.empty(120_000, dtype=np.int64)
    trace[0::2], trace[1::2] = popular, scans
    assert _hit_ratio("tinylfu", trace, 500) > _hit_ratio("lru", trace, 500) + 0.02


def test_invalidate_touches_only_the_selected_organization():
    tier = MemoryTier(eviction="tinylfu")
    tier.set(entry("a1", org="a", vendor_types=("venue",)))
    tier.set(entry("a2", org="a", vendor_types=("florist",)))
    tier.set(entry("b1", org="b", vendor_types=("venue",)))
    assert tier.invalidate(Selector(org_id="a", vendor_types=("venue",))) == 1
    assert tier.get("a1") is None and tier.get("a2") and tier.get("b1")
    assert tier.invalidate(Selector(scope="global")) == 2


def test_resize_evicts_down_to_the_new_budget():
    tier = MemoryTier(max_bytes=10**9, max_entries=1000, eviction="tinylfu")
    for i in range(1000):
        tier.set(entry(f"k{i}"))
    evicted = tier.resize(10**9, 100)
    assert tier.stats()["entries"] <= 100 and evicted >= 900


def test_built_from_a_url():
    tier = tier_from_url("memory://?max_mb=1&max_entries=7&eviction=lru")
    assert (tier.stats()["max_entries"], tier.eviction, tier.stats()["max_bytes"]) == (7, "lru", 1024 * 1024)
